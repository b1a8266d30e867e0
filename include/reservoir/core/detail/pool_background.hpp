#pragma once
// PoolState, part three: the work that does I/O outside the lock. Connects,
// session resets, pings, closes, housekeeping, leak reports, shutdown, and
// the worker threads that run them. What is due is decided in decisions.hpp
// and workers.hpp.

#include "pool_state.hpp"

namespace reservoir::detail {

// One reset or one connect, if any is due. False when there was nothing to do.
template <class D, class S, class H, class C, class K>
inline bool PoolState<D, S, H, C, K>::run_one_job_locked() {
    if (const auto job = jobs_.pop()) {
        job->kind == Jobs::reset ? reset(*job->slot) : ping_then_keep(*job->slot, ping_verdict_time, true);
        return true;
    }
    if (need_connect_locked(clock_.now())) {
        connect();
        return true;
    }
    return false;
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::connect() noexcept {
    SlotT* s = slots_.find_empty();
    RESERVOIR_ASSERT(s, "a connect starts with no empty slot");
    set_state_locked(*s, slot_connecting);
    conn_.started();
    // need_connect starts none at or above max, shrinking or not.
    RESERVOIR_ASSERT(conn_.live + conn_.connecting <= sizes_locked().max, "open + connecting exceeds max_size");
    const std::uint64_t random = next_random(random_);
    mu_.unlock();

    std::string error;
    const time_point begin = clock_.now();
    try {
        s->conn.emplace(driver_.connect(begin + options_.connect_timeout));
    } catch (const std::exception& e) {
        error = e.what();
    } catch (...) {
        error = "reservoir: connect failed with an unknown exception";
    }
    const time_point end = clock_.now();
    if (s->conn) {
        emit({EventKind::connected, end - begin, {}, {}});
        s->created = end;
        s->expires = health_.expiry(end, random);
        s->mark_used(end);
        s->uses.store(0, std::memory_order_relaxed);
    } else {
        emit({EventKind::connect_failed, end - begin, error, {}});
    }

    mu_.lock();
    if (s->conn && over_max_locked()) {
        // Above a max lowered meanwhile: closed while its slot still counts
        // as connecting, so that the counts match the slots throughout.
        mu_.unlock();
        s->conn.reset();
        emit({EventKind::closed, {}, to_string(CloseReason::resized), {}});
        mu_.lock();
        const bool breaker_closed = conn_.succeeded(end - begin, options_.latency_histograms);
        closed_locked(*s, CloseReason::resized);
        if (breaker_closed) emit_unlocked({EventKind::breaker_closed, {}, {}, {}});
    } else if (s->conn) {
        s->generation = generation_;
        const bool breaker_closed = conn_.succeeded(end - begin, options_.latency_histograms);
        make_available_locked(*s);
        if (breaker_closed) emit_unlocked({EventKind::breaker_closed, {}, {}, {}});
    } else {
        const Breaker::Trip trip = conn_.failed(end, error, health_, next_random(random_));
        set_state_locked(*s, slot_empty);
        drained_cv_.notify_all();
        // Open (again), and no connection can serve the waiters: they fail now.
        if (trip != Breaker::Trip::none && conn_.live == 0) wake_all_waiters_locked(WaitOutcome::unavailable);
        if (trip == Breaker::Trip::opened) emit_unlocked({EventKind::breaker_opened, {}, error, {}});
    }
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::reset(SlotT& s) noexcept {
    if (closing_) return close_locked(s, CloseReason::shutdown);
    const time_point deadline = clock_.now() + options_.reset_timeout;
    mu_.unlock();
    bool ok = false;
    try {
        ok = context_.reset(*s.conn, deadline) && driver_.is_usable(*s.conn);
    } catch (...) {
        ok = false;
    }
    mu_.lock();
    if (ok) {
        s.mark_checked(clock_.coarse_now());
        keep_or_retire_locked(s);
    } else {
        close_locked(s, CloseReason::reset_failed);
    }
}

// Keeps the (busy) slot if its connection answers a ping within `budget`,
// else closes it. `for_borrower`: the ping stands in for a borrower's.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::ping_then_keep(SlotT& s, duration budget, bool for_borrower) noexcept {
    if (closing_) return close_locked(s, CloseReason::shutdown);
    const time_point deadline = clock_.now() + budget;
    mu_.unlock();
    const bool ok = ping(s, deadline);
    mu_.lock();
    s.rechecked = ok && for_borrower;
    ok ? keep_or_retire_locked(s) : close_locked(s, CloseReason::broken);
}

// Closes an owned slot's connection outside the lock, then frees the slot.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::close_locked(SlotT& s, CloseReason why) noexcept {
    mu_.unlock();
    s.conn.reset();
    emit({EventKind::closed, {}, to_string(why), {}});
    mu_.lock();
    closed_locked(s, why);
}

// The slot of a connection just closed is free.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::closed_locked(SlotT& s, CloseReason why) noexcept {
    if (s.generation & retire_mark) {  // a marked slot closed, whatever the reason
        s.generation &= ~retire_mark;
        --retiring_;
    }
    set_state_locked(s, slot_empty);
    conn_.closed_one();
    count_close(closes_, why);
    drained_cv_.notify_all();
    wake_worker_if_needed_locked();
}

// Reaps idle connections above min, retires expired ones, pings idle ones
// due a keepalive (idle_verdict). Least-used (highest) slots first. A max
// lowered by the sizing policy itself is acted on here (trim_locked).
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::housekeep_locked() {
    report_leaks_locked();
    trim_locked();
    for (std::size_t i = slots_.reach(); i-- > 0;) {
        if (closing_) return;
        SlotT& s = slots_[i];
        const std::uint32_t w = Table::peek(s);
        if (!Table::is(w, slot_idle)) continue;
        const Sizes sizes = sizes_locked();
        const IdleVerdict verdict =
            idle_verdict(health_, s.info(), clock_.coarse_now(), conn_.live, conn_.live + conn_.connecting - retiring_,
                         sizes.min, sizes.max, sizing_.idle_timeout());
        if (verdict.keep()) continue;
        if (!Table::take_if_unchanged(s, w)) continue;  // just lent out: leave it
        if (verdict.close)
            close_locked(s, *verdict.close);
        else
            ping_then_keep(s, options_.connect_timeout, false);
    }
}

// A lease held past leak_threshold is reported once; its late return too
// (see release()).
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::report_leaks_locked() {
    const duration threshold = options_.leak_threshold;
    if (threshold.count() <= 0) return;
    const time_point now = clock_.coarse_now();
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        SlotT& s = slots_[i];
        if (s.state() != slot_lent) continue;
        const std::uint64_t lease = s.lends.load(std::memory_order_acquire);
        const duration held = now - s.lent_time();
        if (held < threshold || s.leak_reported.load(std::memory_order_relaxed) == lease) continue;
        const CodeLocation where = s.lent_where();
        if (s.lends.load(std::memory_order_acquire) != lease) continue;  // returned and lent again meanwhile
        s.leak_reported.store(lease, std::memory_order_relaxed);
        ++leaks_;
        emit_unlocked({EventKind::leak, held, {}, where});
    }
}

// ---- sizes at run time ---------------------------------------------------------
//
// The sizing policy's min and max are read at each decision (need_connect,
// housekeeping, a connection coming back from a connect, reset or ping), not
// once: Pool::resize changes sizing::Dynamic's under the lock, and a policy of
// the user's own may change its answers whenever it likes (the pool notices at
// the next decision, and trims at the next housekeeping). Max is clamped to
// the slots (the capacity) and to at least 1, min to max.
//
// Shrinking: idle connections above max close at once, highest slots first;
// lent ones are marked (retire_mark, and the attention bit so that their
// release takes the lock) and close when they come back; a connect, reset or
// ping that finishes above max closes its connection. `retiring_` counts the
// marked ones, so that no more are marked or closed than the excess.

template <class D, class S, class H, class C, class K>
inline auto PoolState<D, S, H, C, K>::sizes_locked() const noexcept -> Sizes {
    const std::size_t max = std::clamp<std::size_t>(sizing_.max_size(), 1, slots_.size());
    const std::size_t min = std::min<std::size_t>(sizing_.min_size(), max);
    const std::size_t open = conn_.live + conn_.connecting;
    if (max < last_max_) shrinking_ = true;
    if (open <= max) shrinking_ = false;
    last_max_ = max;
    RESERVOIR_ASSERT(open <= max || shrinking_, "open + connecting exceeds max_size, and max was not lowered");
    return {min, max};
}

// Above max, counting the marked lent ones as gone already.
template <class D, class S, class H, class C, class K>
inline bool PoolState<D, S, H, C, K>::over_max_locked() const noexcept {
    return conn_.live + conn_.connecting - retiring_ > sizes_locked().max;
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::trim_locked() {
    if (closing_) return;
    for (std::size_t i = slots_.reach(); i-- > 0 && over_max_locked();)
        if (Table::take_idle(slots_[i])) close_locked(slots_[i], CloseReason::resized);
    // Connects in flight above max close themselves when they finish
    // (connect()): the lent cover only the rest.
    for (std::size_t i = slots_.reach(); i-- > 0 && conn_.live - retiring_ > sizes_locked().max;) {
        SlotT& s = slots_[i];
        if (s.state() != slot_lent || (s.generation & retire_mark)) continue;
        s.generation |= retire_mark;
        ++retiring_;
        Table::flag(s);
        // Returned lock-free just before the flag: idle, so closed now.
        if (Table::take_idle(s)) close_locked(s, CloseReason::resized);
    }
    // Grown again before they came back: keep as many as the new max allows.
    for (std::size_t i = 0; i < slots_.reach() && retiring_ > 0; ++i) {
        SlotT& s = slots_[i];
        if (!(s.generation & retire_mark)) continue;
        if (conn_.live + conn_.connecting - retiring_ >= sizes_locked().max) break;
        s.generation &= ~retire_mark;
        --retiring_;
    }
}

// A connection back from a reset or ping: kept (handed to a waiter or made
// idle), or closed if the pool is above a lowered max, or if it was marked
// while lent (a borrower's recheck brings a marked slot here).
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::keep_or_retire_locked(SlotT& s) noexcept {
    if ((s.generation & retire_mark) || over_max_locked())
        close_locked(s, CloseReason::resized);
    else
        make_available_locked(s);
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::resize(std::size_t min, std::size_t max) {
    validate_sizes(min, max);
    if (max > slots_.size())
        bad_option(
            "max_size", std::to_string(max),
            ("must not exceed the pool's capacity (" + std::to_string(slots_.size()) + ", PoolOptions::capacity)")
                .c_str());
    Lock lk(mu_);
    // Pool::resize exists only for a policy with set_sizes; the test is for
    // clang 14, whose explicit instantiation of a Pool compiles it anyway.
    if constexpr (requires { sizing_.set_sizes(min, max); }) sizing_.set_sizes(min, max);
    trim_locked();
    // Min raised, or room for the waiters' connects: without background
    // threads, maintain() or a waiting acquirer makes them.
    wake_worker_if_needed_locked();
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::begin_close_locked() noexcept {
    if (closing_) return;
    closing_ = true;
    slots_.flag_all();
    wake_all_waiters_locked(WaitOutcome::closed);
    for (std::size_t i = 0; i < slots_.size(); ++i)
        if (Table::take_idle(slots_[i])) close_locked(slots_[i], CloseReason::shutdown);
    // Resets and rechecks not yet begun would only close their connection
    // now: close it here. Left queued, nobody might run them (no workers, or
    // the Pool's end), and the connection stayed open as long as a lease
    // kept the state alive.
    while (const auto job = jobs_.pop()) close_locked(*job->slot, CloseReason::shutdown);
    work_cv_.notify_all();
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::start_workers() {
    const std::size_t n = std::min(options_.max_connecting, slots_.size());
    Lock lk(mu_);
    for (std::size_t i = 0; i < n; ++i) workers_.emplace_back([this] { worker_main(); });
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::worker_main() noexcept {
    detail::worker_stop_token() = stop_source_.get_token();
    Lock lk(mu_);
    while (!stop_) {
        if (finish_completed_locked() || run_one_job_locked()) continue;
        const time_point now = clock_.now();
        const Breaker& breaker = conn_.breaker;
        const WorkerPlan plan =
            plan_worker(now, queue_.earliest_async_deadline(), next_housekeeping_, conn_.retry_at,
                        breaker.state(now) == BreakerState::open ? breaker.cooldown_end() : time_point::max());
        switch (plan.step) {
            case WorkerPlan::time_out: time_out_due_locked(now); break;
            case WorkerPlan::housekeep:
                // Set first, so that the other workers sleep while this one
                // housekeeps (it lets go of the lock to ping and close).
                next_housekeeping_ = now + options_.housekeeping_interval;
                housekeep_locked();
                break;
            case WorkerPlan::sleep:
                timer_at_ = plan.wake;
                wait_until(work_cv_, lk, plan.wake);
                break;
        }
    }
}

}  // namespace reservoir::detail
