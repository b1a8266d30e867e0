#pragma once
// PoolState, part two: waiting for a connection, handing one over, and
// finishing async waiters. The rules are the wait queue's (wait_queue.hpp);
// this is where they meet the lock, the parkers and the slots.

#include "pool_state.hpp"

namespace reservoir::detail {

inline std::string cancelled_text(duration waited, const std::string& pool) {
    return "reservoir: acquire cancelled by its stop_token after " + ms_text(waited) + " (" + pool + ")";
}

// The slow path of acquire: claim an idle slot under the lock if nobody
// waits, else queue and sleep on the waiter's own parker, not on the pool's
// lock: once settled it returns without touching the lock again, so a
// hand-off is never held up behind threads contending for it.
template <class D, class S, class H, class C, class K>
template <class Stop>
inline auto PoolState<D, S, H, C, K>::wait_for_slot(time_point start, time_point deadline, Stop stop) -> SlotT* {
    constexpr bool cancellable = !std::is_null_pointer_v<Stop>;
    ThreadWaiter w;  // the order of these three matters: see ThreadStopHook
    struct NoHook {};
    [[maybe_unused]] std::conditional_t<cancellable, ThreadStopHook, NoHook> on_stop;
    Lock lk(mu_);
    if (closing_) throw closed_error();
    if (queue_.empty()) {
        if (SlotT* s = claim_idle_locked()) return s;
    }
    admit_locked();
    w.since = start;
    w.deadline = deadline;
    if constexpr (cancellable) {
        if (stop->stop_requested()) throw cancelled_error_locked(w);  // never queued
    }
    enqueue_locked(w);
    wake_worker_if_needed_locked();
    if constexpr (cancellable) {
        if (stop->stop_possible()) {
            // Not orphaned (the pool is open), so this is a reference of its own.
            refs_.take();
            on_stop.state = this;
            lk.unlock();  // a token stopped meanwhile runs the cancel in here, which takes the lock
            on_stop.callback.emplace(*stop, cancel_on_stop(w));
            lk.lock();
        }
    }
    const auto now = [this] { return clock_.now(); };
    for (;;) {
        if (w.settled()) break;
        const typename Queue::Turn turn = queue_.take_turn(w, now);
        if (turn == Queue::Turn::woken) w.parker.clear();
        if (turn != Queue::Turn::none) {
            if (SlotT* s = claim_idle_locked()) {
                queue_.unlink(w);
                serve_head_locked();  // one waiter is woken at a time: pass the turn on
                return s;
            }
            if (queue_.missed(w, turn)) serve_head_locked();
        }
        if (!options_.background_threads && run_one_job_locked()) continue;
        const time_point wake_at = queue_.wake_at(w);
        lk.unlock();
        const std::uint32_t why = park(w.parker, wake_at);
        if (why == ThreadWaiter::settled_signal || (why == 0 && !lock_unless_settled(w, lk))) break;
        if (why != 0) lk.lock();
        if (w.woken || w.settled()) continue;
        if (const time_point t = clock_.now(); t >= deadline) time_out_due_locked(t);
    }
    if (w.outcome == WaitOutcome::timed_out) {
        if (lk.owns_lock()) lk.unlock();
        emit({EventKind::acquire_timeout, w.waited, w.message, {}});
        throw AcquireTimeout(std::move(w.message), w.waited);
    }
    if (w.outcome == WaitOutcome::cancelled) throw AcquireCancelled(std::move(w.message), w.waited);
    if (w.outcome == WaitOutcome::closed) throw closed_error();
    if (w.outcome == WaitOutcome::unavailable) {
        if (!lk.owns_lock()) lk.lock();
        throw unavailable_error_locked();
    }
    return w.slot;
}

// After a wake at a deadline: takes the lock, or returns false once the
// waiter is settled meanwhile. Waiters that queued together wake together,
// and the first to take the lock times them all out; queued on the lock one
// behind another, each would wait a scheduling delay for its turn (a wave
// of 68 was measured up to 190 ms late), so they wait on their parkers.
template <class D, class S, class H, class C, class K>
inline bool PoolState<D, S, H, C, K>::lock_unless_settled(ThreadWaiter& w, Lock& lk) noexcept {
    while (!lk.try_lock()) {
        const std::uint32_t s = w.parker.sleep_until(Parker::clock::now() + std::chrono::milliseconds(1));
        if (s == ThreadWaiter::settled_signal) return false;
        if (s != 0) {  // a retry: it needs the lock
            lk.lock();
            return true;
        }
    }
    return true;
}

// Throws when a newcomer may not queue: the breaker fails fast, or max_waiters are queued.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::admit_locked() const {
    if (failing_fast_locked()) throw unavailable_error_locked();
    if (options_.max_waiters != 0 && queue_.waiting() >= options_.max_waiters)
        throw PoolSaturated(saturated_text(queue_.waiting(), options_.max_waiters, describe_locked()));
}

// Local check always; a ping when the health policy asks. A connection that
// fails is closed and the caller tries again. `start` is when the caller
// began to wait, or zero on the lock-free path (no wait); a ping or a failed
// check sets it, so that the ping, the close and any retry share the
// caller's one deadline.
template <class D, class S, class H, class C, class K>
inline bool PoolState<D, S, H, C, K>::checkout(SlotT& s, time_point& start, duration timeout,
                                               const source_location& where) {
    const time_point now = clock_.coarse_now();
    bool ok = driver_.is_usable(*s.conn);
    if (ok && ping_due(s, now)) {
        const time_point ping_start = clock_.now();
        if (start == time_point{}) start = ping_start;
        const time_point deadline = start + timeout;
        ok = ping(s, deadline);
        if (!ok && deadline - ping_start < ping_verdict_time && clock_.now() >= deadline) {
            // Out of the caller's (short) time, which says nothing of the
            // connection: a worker gives it a fair ping.
            Lock lk(mu_);
            queue_job_locked(s, Jobs::recheck);
            return false;
        }
    }
    if (!ok) {
        if (start == time_point{}) start = clock_.now();  // closing it counts against the deadline
        Lock lk(mu_);
        set_state_locked(s, slot_busy);
        close_locked(s, CloseReason::broken);
        return false;
    }
    lend(s, now, start, where);
    return true;
}

// The borrow check of an async_acquire, which never waits: a connection due
// a ping goes to a worker (Jobs::recheck) instead. `start` is when the
// borrower began to wait, or zero. On `closed` the slot is gone, and so may
// be this state (a release after the Pool's end frees it).
template <class D, class S, class H, class C, class K>
inline auto PoolState<D, S, H, C, K>::checkout_async(SlotT& s, time_point start, const source_location& where) noexcept
    -> Checkout {
    const time_point now = clock_.coarse_now();
    const bool usable = driver_.is_usable(*s.conn);
    if (usable && !ping_due(s, now)) {
        lend(s, now, start, where);
        return Checkout::lent;
    }
    Lock lk(mu_);
    if (closing_) {
        lk.unlock();
        release_slow(s, ReleaseAction::discard, CloseReason::shutdown);
        return Checkout::closed;
    }
    if (usable) {
        queue_job_locked(s, Jobs::recheck);
    } else {
        set_state_locked(s, slot_busy);
        close_locked(s, CloseReason::broken);
    }
    return Checkout::failed;
}

// Records a checked-out slot as lent. `start` is when its borrower began to
// wait, or zero when it did not.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::lend(SlotT& s, time_point now, time_point start,
                                           const source_location& where) noexcept {
    s.rechecked = false;
    s.record_lent(now);
    if (options_.leak_threshold.count() > 0) s.record_where(where);
    if (options_.latency_histograms)
        s.acquire_wait.record_single_writer(start == time_point{} ? duration::zero() : clock_.now() - start);
    SlotT::bump(s.uses);
    SlotT::bump(s.lends);
}

template <class D, class S, class H, class C, class K>
inline bool PoolState<D, S, H, C, K>::ping(SlotT& s, time_point deadline) noexcept {
    try {
        if (!driver_.ping(*s.conn, deadline)) return false;
    } catch (...) {
        return false;
    }
    s.mark_checked(clock_.coarse_now());
    return true;
}

// Called whenever the oldest waiter may newly need help: a new head, or a
// barged one whose hand-off is due. Raises the gate on every slot, then wakes
// the head if a connection is idle (one that went idle just before its bit
// was set included). So while a head needs help no connection is idle: each
// one returned comes through the lock and goes to it or wakes it.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::serve_head_locked() noexcept {
    if (queue_.empty() || !gate_needed_locked()) return;
    if (!slots_.raise_gate()) return;
    Waiter<SlotT>& head = *queue_.head();
    if (!head.async) {
        if (queue_.wake(head)) signal_locked(parker_of(head), ThreadWaiter::retry_signal);
        return;
    }
    // No thread to wake: hand it a connection now, then serve the next head.
    if (SlotT* s = claim_idle_locked()) {
        queue_.unlink(head);
        settle_locked(head, s, WaitOutcome::waiting);
        serve_head_locked();
    }
}

// Gives an owned slot holding a good connection to the oldest waiter, or
// makes it idle and maybe wakes the head, as the hand-off rule says
// (wait_queue.hpp); closes it when the pool is closing.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::make_available_locked(SlotT& s) noexcept {
    if (closing_) return close_locked(s, CloseReason::shutdown);
    const auto d = queue_.on_release([this] { return clock_.now(); });
    switch (d.what) {
        case Queue::Release::hand_over:
            slots_.hand_over_locked(s);
            settle_locked(*d.waiter, &s, WaitOutcome::waiting);
            if (d.serve_next) serve_head_locked();
            break;
        case Queue::Release::wake_head:
            signal_locked(parker_of(*d.waiter), ThreadWaiter::retry_signal);
            set_state_locked(s, slot_idle);  // after the wake: the gate may be down now
            break;
        case Queue::Release::leave_idle: set_state_locked(s, slot_idle); break;
    }
}

// Hands an unlinked waiter its result. A thread is woken: posting the signal
// is the last touch of the waiter, which may return at once. An async waiter
// joins the settled list instead: a release finishes what it settles itself;
// anything else settled leaves it to a worker.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::settle_locked(Waiter<SlotT>& w, SlotT* slot, WaitOutcome outcome) noexcept {
    if (!queue_.settle(w, slot, outcome)) return signal_locked(parker_of(w), ThreadWaiter::settled_signal);
    if (!deferred_ && options_.background_threads) work_cv_.notify_one();
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::signal_locked(Parker& p, std::uint32_t signal) noexcept {
    Parker::Wake wake = p.post(signal);
    if (deferred_ && deferred_->count < std::size(deferred_->wakes))
        deferred_->wakes[deferred_->count++] = std::move(wake);
    // otherwise delivered here, by the destructor
}

// Times out every waiter whose deadline has passed, not just the caller
// (wait_queue.hpp says why). Settled here, the others return without the lock.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::time_out_due_locked(time_point now) {
    const std::string pool = describe_locked();
    const auto [first, new_head] = queue_.time_out_due(now);
    for (Waiter<SlotT>* w = first; w;) {
        Waiter<SlotT>& due = *std::exchange(w, w->next);  // a thread settled may return at once
        due.next = nullptr;
        ++acquire_timeouts_;
        due.message = timeout_text(due.waited, pool);
        settle_locked(due, nullptr, WaitOutcome::timed_out);
    }
    if (new_head) serve_head_locked();
}

// Finishes the settled async waiters outside the lock; false if there were none.
template <class D, class S, class H, class C, class K>
inline bool PoolState<D, S, H, C, K>::finish_completed_locked() noexcept {
    Waiter<SlotT>* list = queue_.take_settled();
    if (!list) return false;
    mu_.unlock();
    finish_async(list);
    mu_.lock();
    return true;
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::finish_async(Waiter<SlotT>* list) noexcept {
    while (list) {
        auto& w = static_cast<AsyncWaiter<SlotT>&>(*list);
        list = list->next;
        finish_one(w);
    }
}

// Checks out the connection a waiter was handed and runs its callback. One
// whose connection fails the check goes back to the head of the queue.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::finish_one(AsyncWaiter<SlotT>& w) noexcept {
    std::exception_ptr error;
    if (w.slot) {
        switch (checkout_async(*w.slot, w.since, w.where)) {
            case Checkout::lent: break;
            case Checkout::closed:
                w.slot = nullptr;
                error = std::make_exception_ptr(closed_error());
                break;
            case Checkout::failed: return requeue_async(w);
        }
    } else if (w.outcome == WaitOutcome::timed_out) {
        emit({EventKind::acquire_timeout, w.waited, w.message, {}});
        error = std::make_exception_ptr(AcquireTimeout(std::move(w.message), w.waited));
    } else if (w.outcome == WaitOutcome::cancelled) {
        error = std::make_exception_ptr(AcquireCancelled(std::move(w.message), w.waited));
    } else if (w.outcome == WaitOutcome::unavailable) {
        Lock lk(mu_);
        error = std::make_exception_ptr(unavailable_error_locked());
    } else {
        error = std::make_exception_ptr(closed_error());
    }
    // Outside the lock: this waits for a cancel running on another thread
    // (it finds the waiter settled). Run by the cancel itself, it returns at once.
    w.on_stop.reset();
    w.finish(w.slot, std::move(error));
    delete &w;
}

template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::requeue_async(AsyncWaiter<SlotT>& w) noexcept {
    Lock lk(mu_);
    w.slot = nullptr;
    if (closing_) {
        settle_locked(w, nullptr, WaitOutcome::closed);
    } else if (w.stop_pending) {  // stopped while being checked out: it does not queue again
        note_cancel_locked(w);
        settle_locked(w, nullptr, WaitOutcome::cancelled);
    } else {
        queue_.requeue_front(w);
        serve_head_locked();
        wake_worker_if_needed_locked();
    }
    finish_completed_locked();
}

// Run by a waiter's stop_callback, on the thread that stops its token: takes
// the waiter out of the queue and settles it with AcquireCancelled, unless a
// hand-off or a timeout settled it first. A waiter not in the queue (not yet
// queued, or an async one being checked out) is marked instead, and fails
// when it would queue.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::cancel(Waiter<SlotT>& w) noexcept {
    Lock lk(mu_);
    const bool head = queue_.head() == &w;
    if (!queue_.cancel(w)) {
        w.stop_pending = true;
        return;
    }
    // Finishing an async waiter lets go of the lock, and the Pool may be
    // destroyed meanwhile: hold a reference, as a release does (the pool is
    // open, or the waiter would have been settled with PoolClosed).
    refs_.take();
    note_cancel_locked(w);
    settle_locked(w, nullptr, WaitOutcome::cancelled);
    if (head) serve_head_locked();  // the next head may need help, and a connection may be idle
    if (Waiter<SlotT>* done = queue_.take_settled()) {
        lk.unlock();
        finish_async(done);
        lk.lock();
    }
    unref(lk);
}

// Counts a cancel and records its wait and error text.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::note_cancel_locked(Waiter<SlotT>& w) {
    ++acquire_cancels_;
    w.waited = clock_.now() - w.since;
    w.message = cancelled_text(w.waited, describe_locked());
}

// The slow path of release: under the lock, the connection is handed over or
// made idle, queued for a reset, or closed.
template <class D, class S, class H, class C, class K>
inline void PoolState<D, S, H, C, K>::release_slow(SlotT& s, ReleaseAction action, CloseReason why) noexcept {
    DeferredWakes wakes;  // destroyed after the lock below is let go: that delivers them
    Lock lk(mu_);
    refs_.take();
    if (closing_ && action != ReleaseAction::discard) {
        action = ReleaseAction::discard;
        why = CloseReason::shutdown;
    } else if (s.generation != generation_ && action != ReleaseAction::discard) {
        action = ReleaseAction::discard;
        why = CloseReason::evicted;
    }
    switch (action) {
        case ReleaseAction::reuse:  // not closing (above), so the lock is held throughout
            deferred_ = &wakes;
            make_available_locked(s);
            deferred_ = nullptr;
            break;
        case ReleaseAction::reset: queue_job_locked(s, Jobs::reset); break;
        case ReleaseAction::discard:
            set_state_locked(s, slot_busy);
            close_locked(s, why);
            break;
    }
    // Async waiters this release settled are finished here, after the lock,
    // still under this call's reference: a callback may return its lease at
    // once, and a connection that fails its check is closed here.
    if (Waiter<SlotT>* done = queue_.take_settled()) {
        lk.unlock();
        finish_async(done);
        lk.lock();
    }
    unref(lk);
}

}  // namespace reservoir::detail
