#pragma once
// The pool's engine. Pool and Lease are thin handles onto one PoolState, which
// lives on the heap so that a lease may outlive the Pool object. It is freed by
// the last holder of a reference (see "lifetime" below). Worker threads never
// outlive the Pool: its destructor asks them to stop (see stop.hpp) and joins them.
//
// Paths:
//   acquire  fast: claim an idle slot by CAS, the thread's last slot first.
//            slow: under the lock, claim an idle slot or queue as a waiter
//            (FIFO) and sleep on the waiter's own parker (parker.hpp).
//   async    the same, with a callback queued in place of a sleeping thread;
//            finished outside the lock by whoever settles it.
//   release  fast: CAS lent -> idle. slow (attention bit set, or the
//            connection needs a reset or must close): under the lock, hand it
//            to the oldest waiter, queue it for a reset, or close it.
//   workers  max_connecting threads that open connections, reset returned
//            ones and run housekeeping. Connects and resets run outside the lock.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "../assert.hpp"
#include "../concepts.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "../random.hpp"
#include "../source_location.hpp"
#include "../stats.hpp"
#include "../stop.hpp"
#include "parker.hpp"
#include "slot.hpp"

namespace reservoir::detail {

enum class CloseReason { idle_timeout, lifetime, broken, discarded, reset_failed, evicted, shutdown };

inline constexpr std::string_view to_string(CloseReason why) noexcept {
    constexpr std::string_view names[] = {"idle_timeout", "lifetime", "broken", "discarded",
                                          "reset_failed", "evicted",  "shutdown"};
    return names[static_cast<int>(why)];
}

inline std::string ms_text(duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

template <class D, class S, class H, class C, class K>
class PoolState {
public:
    using connection_type = typename D::connection_type;
    using SlotT = Slot<connection_type>;

    PoolState(D driver, PoolOptions options, S sizing, H health, C context, K clock)
        : driver_(std::move(driver)),
          sizing_(std::move(sizing)),
          health_(std::move(health)),
          context_(std::move(context)),
          clock_(std::move(clock)),
          options_(std::move(options)),
          nslots_(validated_max_size()),
          slots_(std::make_unique<SlotT[]>(nslots_)),
          // Jitter must differ between pools and processes started together.
          random_(reinterpret_cast<std::uintptr_t>(this) ^
                  static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {
        jobs_.reserve(nslots_);  // so that queueing a job never allocates
        next_housekeeping_ = clock_.now();
        if (options_.background_threads) start_workers();
    }

    PoolState(const PoolState&) = delete;
    PoolState& operator=(const PoolState&) = delete;

    // ---- acquire / release ------------------------------------------------

    SlotT* acquire(duration timeout, const source_location& where) {
        time_point start{};  // the precise clock is read only once we must wait
        for (SlotT* s = claim_idle_fast();; s = claim_idle_fast()) {
            if (!s) {
                if (start == time_point{}) start = clock_.now();
                s = wait_for_slot(start, start + timeout);
            }
            if (checkout(*s, start, timeout, where)) return s;  // on failure, start is set
        }
    }

    // Never waits for a connection: nullptr when none is free right now.
    SlotT* try_acquire(const source_location& where) {
        SlotT* s = claim_idle_fast();
        if (!s) {
            std::unique_lock lk(mu_);
            if (closing_) throw closed_error();
            if (!head_) s = claim_idle_locked();
            if (!s) {
                wake_worker_if_needed_locked();
                return nullptr;
            }
        }
        time_point start{};
        return checkout(*s, start, options_.acquire_timeout, where) ? s : nullptr;
    }

    // Calls done(slot, nullptr) with a checked-out connection, or
    // done(nullptr, error) with what acquire() would throw: at once when a
    // connection is idle or the pool cannot serve, else later, from the thread
    // that frees a connection for it, or from a worker (timeouts). Never
    // blocks: a connection due a ping is pinged by a worker, not here.
    template <class F>
    void async_acquire(duration timeout, const source_location& where, F done) {
        for (SlotT* s = claim_idle_fast(); s; s = claim_idle_fast()) {
            switch (checkout_async(*s, {}, where)) {
                case Checkout::lent: return done(s, nullptr);
                case Checkout::closed: return done(nullptr, std::make_exception_ptr(closed_error()));
                case Checkout::failed: break;  // closed, or left to a worker to ping: try another
            }
        }
        auto w = std::make_unique<AsyncCall<F>>(std::move(done), where);
        w->since = clock_.now();
        w->deadline = w->since + timeout;
        std::unique_lock lk(mu_);
        try {
            if (closing_) throw closed_error();
            admit_locked();
        } catch (...) {
            lk.unlock();
            w->finish(nullptr, std::current_exception());
            return;
        }
        AsyncWaiter& queued = *w.release();
        enqueue_locked(queued);  // served at once if it is the head and a connection is idle
        wake_worker_if_needed_locked();
        if (!queued.settled_locked() && queued.deadline < timer_at_) {
            timer_at_ = queued.deadline;  // a worker times it out
            if (options_.background_threads) work_cv_.notify_one();
        }
        finish_completed_locked(lk);
    }

    void release(SlotT& s, bool discard) noexcept {
        const time_point now = clock_.coarse_now();
        s.mark_used(now);
        if (options_.latency_histograms) s.hold_time.record_single_writer(now - s.lent_time());
        if (options_.leak_threshold.count() > 0 &&
            s.leak_reported.load(std::memory_order_relaxed) == s.lends.load(std::memory_order_relaxed))
            emit({EventKind::leak_returned, now - s.lent_time(), {}, s.lent_where()});
        ReleaseAction action = ReleaseAction::discard;
        CloseReason why = CloseReason::discarded;
        if (!discard) {
            action = context_.on_release(*s.conn);
            // No local check here: every borrow makes one (checkout), so a
            // connection that broke while lent is closed before anyone gets it,
            // and the common case saves a system call per lease.
            if (action != ReleaseAction::discard && health_.retire(s.info(), now)) {
                action = ReleaseAction::discard;
                why = CloseReason::lifetime;
            }
        }
        if (action == ReleaseAction::reuse) {
            std::uint32_t expected = slot_lent;
            if (s.word.compare_exchange_strong(expected, slot_idle, std::memory_order_release,
                                               std::memory_order_relaxed))
                return;
        }
        release_slow(s, action, why);
    }

    // ---- lifecycle --------------------------------------------------------

    // Stops new acquires, wakes waiters with pool-closed, closes idle
    // connections, and waits up to `timeout` for lent ones to come back.
    // True when every connection is closed.
    bool shutdown(duration timeout) {
        const time_point deadline = clock_.now() + timeout;
        std::unique_lock lk(mu_);
        begin_close_locked(lk);
        finish_completed_locked(lk);
        while (!drained_locked()) {
            if (!wait_until(drained_cv_, lk, deadline)) return drained_locked();
        }
        return true;
    }

    // Called once by the Pool's destructor: shut down without waiting for
    // leases, stop and join the workers, and hand the state to the leases
    // still out. A worker inside a connect, ping or reset is asked to stop
    // (stop.hpp); one whose driver ignores that ends at the operation's deadline.
    void destroy_handle() noexcept {
        std::unique_lock lk(mu_);
        begin_close_locked(lk);
        stop_ = true;
        work_cv_.notify_all();
        std::vector<std::thread> workers = std::move(workers_);
        lk.unlock();
        stop_source_.request_stop();
        for (auto& t : workers) t.join();
        lk.lock();  // every connection a worker finished with since was closed, not made idle
        while (finish_completed_locked(lk)) {  // async waiters fail with PoolClosed
        }
        // From now on no slot becomes lent (the pool is closing: nothing is
        // idle or handed over), so each lent slot is a lease that still holds
        // its reference when it comes back.
        for (std::size_t i = 0; i < nslots_; ++i)
            if ((slots_[i].word.load(std::memory_order_acquire) & slot_state_mask) == slot_lent) ++refs_;
        orphaned_ = true;
        unref(lk);  // the Pool's own
    }

    // Closes every idle connection now and every lent one when it comes back
    // (after a failover, say). Connections opened from now on are kept.
    void evict_all() {
        std::unique_lock lk(mu_);
        ++generation_;
        for (std::size_t i = 0; i < nslots_; ++i) {
            SlotT& s = slots_[i];
            std::uint32_t w = s.word.load(std::memory_order_acquire);
            if ((w & slot_state_mask) == slot_lent) {
                // Force its release through the lock, where its generation is checked.
                s.word.fetch_or(slot_attention, std::memory_order_acq_rel);
            } else if ((w & slot_state_mask) == slot_idle &&
                       s.word.compare_exchange_strong(w, slot_busy | (w & slot_attention), std::memory_order_acquire)) {
                close_locked(s, CloseReason::evicted, lk);
            }
        }
    }

    // Manual mode (background_threads = false): run due work in the caller.
    void maintain() {
        std::unique_lock lk(mu_);
        while (run_one_job_locked(lk)) {
        }
        housekeep_locked(lk);
        do {  // a finished async waiter may leave work: a connection to ping or replace
            while (run_one_job_locked(lk)) {
            }
            if (const time_point now = clock_.now(); now >= async_deadline_locked()) time_out_due_locked(now);
        } while (finish_completed_locked(lk));
    }

    PoolStats stats() const {
        PoolStats st;
        std::lock_guard lk(mu_);
        for (std::size_t i = 0; i < nslots_; ++i) {
            switch (slots_[i].state()) {
                case slot_idle: ++st.idle; break;
                case slot_lent: ++st.in_use; break;
                case slot_busy: ++st.resetting; break;
                case slot_connecting: ++st.connecting; break;
                default: break;
            }
            st.acquires += slots_[i].lends.load(std::memory_order_relaxed);
            if (options_.latency_histograms) {
                st.acquire_wait.merge(slots_[i].acquire_wait.snapshot());
                st.hold_time.merge(slots_[i].hold_time.snapshot());
            }
        }
        st.connect_time = connect_time_.snapshot();
        st.leaks = leaks_;
        st.total = st.idle + st.in_use + st.resetting;
        RESERVOIR_ASSERT(st.total == live_, "idle + in_use + resetting differs from the connections open");
        RESERVOIR_ASSERT(st.connecting == connecting_, "slots connecting differ from the connects in flight");
        st.waiting = waiting_;
        st.min = sizing_.min_size();
        st.max = nslots_;
        st.acquire_timeouts = acquire_timeouts_;
        st.connects = connects_;
        st.connect_failures = connect_failures_;
        st.closes = closes_;
        st.last_connect_error = last_connect_error_;
        st.breaker = breaker_locked(clock_.now());
        st.breaker_trips = breaker_trips_;
        return st;
    }

    std::string last_connect_error() const {
        std::lock_guard lk(mu_);
        return last_connect_error_;
    }

    const PoolOptions& options() const noexcept { return options_; }
    D& driver() noexcept { return driver_; }
    C& context() noexcept { return context_; }

private:
    // An acquirer in the queue. It lives on the acquirer's stack; everything
    // but the parker is read and written under the pool's lock. The parker's
    // signal says why it was woken: `settled` (slot and outcome are final, and
    // the acquirer returns without taking the pool's lock again) or `retry`
    // (still queued: claim a connection left idle).
    struct Waiter {
        static constexpr std::uint32_t retry = 1, settled = 2;

        Waiter* prev = nullptr;
        Waiter* next = nullptr;
        time_point since{};     // when it began to wait
        time_point deadline{};  // when it gives up
        SlotT* slot = nullptr;  // the connection handed to this waiter
        enum { waiting, timed_out, closed, unavailable } outcome = waiting;  // or why it was woken without one
        duration waited{};      // when timed out: for how long, and the error's text
        std::string message;    // (written by whichever waiter timed it out)
        bool barged = false;  // lost a claim to a newcomer: not woken again before its hand-off is due
        bool async = false;   // an AsyncWaiter: settling queues it to be finished, wakes no thread
        Parker parker;

        bool settled_locked() const noexcept { return slot || outcome != waiting; }
    };

    // Hands the (already unlinked) waiter its result and wakes it. Posting the
    // signal is the last touch of the waiter, which may return at once. An
    // async waiter joins the completed list instead: a release finishes what
    // it settles itself; anything else settled leaves it to a worker.
    void settle_locked(Waiter& w, SlotT* slot, decltype(Waiter::outcome) outcome) noexcept {
        w.slot = slot;
        w.outcome = outcome;
        if (w.async) {
            *completed_end_ = &w;
            completed_end_ = &w.next;
            if (!deferred_ && options_.background_threads) work_cv_.notify_one();
            return;
        }
        signal_locked(w.parker, Waiter::settled);
    }

    // ---- async waiters ------------------------------------------------------

    // A queued async_acquire: a callback on the heap in place of a sleeping
    // thread, in the same FIFO queue. It is settled under the lock like any
    // waiter, then finished (checked out, its callback run) outside it.
    struct AsyncWaiter : Waiter {
        explicit AsyncWaiter(const source_location& w) noexcept : where(w) { this->async = true; }
        AsyncWaiter(const AsyncWaiter&) = delete;
        AsyncWaiter& operator=(const AsyncWaiter&) = delete;
        virtual ~AsyncWaiter() = default;
        virtual void finish(SlotT* slot, std::exception_ptr error) noexcept = 0;
        source_location where;
    };

    template <class F>
    struct AsyncCall final : AsyncWaiter {
        AsyncCall(F&& f, const source_location& w) : AsyncWaiter(w), done(std::move(f)) {}
        void finish(SlotT* slot, std::exception_ptr error) noexcept override { done(slot, std::move(error)); }
        F done;
    };

    enum class Checkout { lent, failed, closed };

    // The borrow check of an async_acquire, which never waits: a connection
    // due a ping goes to a worker (Job::recheck) instead. `start` is when the
    // borrower began to wait, or zero. On `closed` the slot is gone, and so
    // may be this state (a release after the Pool's end frees it).
    Checkout checkout_async(SlotT& s, time_point start, const source_location& where) noexcept {
        const time_point now = clock_.coarse_now();
        const bool usable = driver_.is_usable(*s.conn);
        if (usable && !ping_due(s, now)) {
            lend(s, now, start, where);
            return Checkout::lent;
        }
        std::unique_lock lk(mu_);
        if (closing_) {
            lk.unlock();
            release_slow(s, ReleaseAction::discard, CloseReason::shutdown);
            return Checkout::closed;
        }
        if (usable) {
            queue_job_locked(s, Job::recheck);
        } else {
            set_state_locked(s, slot_busy);
            close_locked(s, CloseReason::broken, lk);
        }
        return Checkout::failed;
    }

    Waiter* take_completed_locked() noexcept {
        completed_end_ = &completed_;
        return std::exchange(completed_, nullptr);
    }

    // Finishes the settled async waiters outside the lock; false if there were none.
    bool finish_completed_locked(std::unique_lock<std::mutex>& lk) noexcept {
        Waiter* list = take_completed_locked();
        if (!list) return false;
        lk.unlock();
        finish_async(list);
        lk.lock();
        return true;
    }

    void finish_async(Waiter* list) noexcept {
        while (list) {
            auto& w = static_cast<AsyncWaiter&>(*list);
            list = list->next;
            finish_one(w);
        }
    }

    // Checks out the connection a waiter was handed and runs its callback.
    // One whose connection fails the check goes back to the head of the queue.
    void finish_one(AsyncWaiter& w) noexcept {
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
        } else if (w.outcome == Waiter::timed_out) {
            emit({EventKind::acquire_timeout, w.waited, w.message, {}});
            error = std::make_exception_ptr(AcquireTimeout(std::move(w.message), w.waited));
        } else if (w.outcome == Waiter::unavailable) {
            std::lock_guard lk(mu_);
            error = std::make_exception_ptr(unavailable_error_locked());
        } else {
            error = std::make_exception_ptr(closed_error());
        }
        w.finish(w.slot, std::move(error));
        delete &w;
    }

    void requeue_async(AsyncWaiter& w) noexcept {
        std::unique_lock lk(mu_);
        w.slot = nullptr;
        if (closing_) {
            settle_locked(w, nullptr, Waiter::closed);
        } else {
            w.next = head_;  // first in line still
            (head_ ? head_->prev : tail_) = &w;
            head_ = &w;
            ++waiting_;
            serve_head_locked();
            wake_worker_if_needed_locked();
        }
        finish_completed_locked(lk);
    }

    // The earliest deadline of a queued async waiter, which a worker keeps.
    time_point async_deadline_locked() const noexcept {
        time_point due = time_point::max();
        for (const Waiter* w = head_; w; w = w->next)
            if (w->async) due = std::min(due, w->deadline);
        return due;
    }

    // Wake-ups owed to waiters by a release, delivered once it has let go of
    // the lock (see Parker::Wake). Two at most: a hand-off and a turn passed on.
    struct DeferredWakes {
        Parker::Wake wakes[2];
        std::size_t count = 0;
    };

    void signal_locked(Parker& p, std::uint32_t signal) noexcept {
        Parker::Wake wake = p.post(signal);
        if (deferred_ && deferred_->count < std::size(deferred_->wakes))
            deferred_->wakes[deferred_->count++] = std::move(wake);
        // otherwise delivered here, by the destructor
    }

    // Checks the options and the sizing policy's numbers before anything is allocated.
    std::size_t validated_max_size() const {
        options_.validate();
        validate_sizes(sizing_.min_size(), sizing_.max_size());
        return sizing_.max_size();
    }

    // ---- slot claiming ----------------------------------------------------

    // An idle slot may carry the attention bit: left idle for a woken waiter
    // (see make_available_locked), whoever claims it first takes it.
    static bool claim(SlotT& s) noexcept {
        std::uint32_t w = s.word.load(std::memory_order_relaxed);
        return (w & slot_state_mask) == slot_idle &&
               s.word.compare_exchange_strong(w, slot_lent | (w & slot_attention), std::memory_order_acquire,
                                              std::memory_order_relaxed);
    }

    // Lock-free: the thread's last slot, then the lowest idle one. Low slots
    // stay busy and high ones age out, which is what idle reaping wants.
    SlotT* claim_idle_fast() noexcept {
        SlotHint& hint = thread_slot_hint();
        if (hint.pool == this && hint.index < nslots_ && claim(slots_[hint.index])) return &slots_[hint.index];
        for (std::size_t i = 0; i < nslots_; ++i) {
            if (claim(slots_[i])) {
                hint = {this, i};
                return &slots_[i];
            }
        }
        return nullptr;
    }

    SlotT* claim_idle_locked() noexcept {
        for (std::size_t i = 0; i < nslots_; ++i) {
            std::uint32_t w = slots_[i].word.load(std::memory_order_relaxed);
            if ((w & slot_state_mask) == slot_idle &&
                slots_[i].word.compare_exchange_strong(w, slot_lent | attention_locked(),
                                                       std::memory_order_acquire)) {
                thread_slot_hint() = {this, i};
                return &slots_[i];
            }
        }
        return nullptr;
    }

    // Local check always; a ping when the health policy asks. A connection
    // that fails is closed and the caller tries again. `start` is when the
    // caller began to wait, or zero on the lock-free path (no wait); a ping or
    // a failed check sets it, so that the ping, the close and any retry share
    // the caller's one deadline.
    bool checkout(SlotT& s, time_point& start, duration timeout, const source_location& where) {
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
                std::lock_guard lk(mu_);
                queue_job_locked(s, Job::recheck);
                return false;
            }
        }
        if (!ok) {
            if (start == time_point{}) start = clock_.now();  // closing it counts against the deadline
            std::unique_lock lk(mu_);
            set_state_locked(s, slot_busy);
            close_locked(s, CloseReason::broken, lk);
            return false;
        }
        lend(s, now, start, where);
        return true;
    }

    bool ping_due(const SlotT& s, time_point now) const noexcept {
        return !s.rechecked && health_.borrow_check(s.info(), now) == BorrowCheck::ping;
    }

    // Records a checked-out slot as lent. `start` is when its borrower began
    // to wait, or zero when it did not.
    void lend(SlotT& s, time_point now, time_point start, const source_location& where) noexcept {
        s.rechecked = false;
        s.record_lent(now);
        if (options_.leak_threshold.count() > 0) s.record_where(where);
        if (options_.latency_histograms)
            s.acquire_wait.record_single_writer(start == time_point{} ? duration::zero() : clock_.now() - start);
        SlotT::bump(s.uses);
        SlotT::bump(s.lends);
    }

    bool ping(SlotT& s, time_point deadline) noexcept {
        try {
            if (!driver_.ping(*s.conn, deadline)) return false;
        } catch (...) {
            return false;
        }
        s.mark_checked(clock_.coarse_now());
        return true;
    }

    // Throws when a newcomer may not queue: the breaker fails fast, or max_waiters are queued.
    void admit_locked() const {
        if (failing_fast_locked()) throw unavailable_error_locked();
        if (options_.max_waiters != 0 && waiting_ >= options_.max_waiters)
            throw PoolSaturated("reservoir: pool saturated: " + std::to_string(waiting_) +
                                " acquirers already waiting (max_waiters = " +
                                std::to_string(options_.max_waiters) + "); " + describe_locked());
    }

    SlotT* wait_for_slot(time_point start, time_point deadline) {
        std::unique_lock lk(mu_);
        if (closing_) throw closed_error();
        if (!head_) {
            if (SlotT* s = claim_idle_locked()) return s;
        }
        admit_locked();
        Waiter w;
        w.since = start;
        w.deadline = deadline;
        enqueue_locked(w);
        wake_worker_if_needed_locked();
        // The waiter sleeps on its own parker, not on the pool's lock: once
        // settled it returns without touching the pool's lock again, so a
        // hand-off is never held up behind threads contending for it.
        const time_point due = start + options_.handoff_after;
        for (;;) {
            if (w.settled_locked()) break;
            const bool woken = take_retry_locked(w);
            if (woken || (w.barged && clock_.now() >= due)) {
                if (SlotT* s = claim_idle_locked()) {
                    unlink_locked(w);
                    serve_head_locked();  // one waiter is woken at a time: pass the turn on
                    return s;
                }
                // Woken and beaten to it by a newcomer: sleep until the
                // hand-off is due rather than be woken by every release.
                // Once due, releases hand their connection straight over.
                w.barged = woken;
                if (!woken) serve_head_locked();
            }
            if (!options_.background_threads && run_one_job_locked(lk)) continue;
            lk.unlock();
            const std::uint32_t why = park(w.parker, w.barged ? std::min(due, deadline) : deadline);
            if (why == Waiter::settled || (why == 0 && !lock_unless_settled(w, lk))) break;
            if (why != 0) lk.lock();
            if (w.parker.signal() == Waiter::retry || w.settled_locked()) continue;
            if (const time_point now = clock_.now(); now >= deadline) time_out_due_locked(now);
        }
        if (w.outcome == Waiter::timed_out) {
            if (lk.owns_lock()) lk.unlock();
            emit({EventKind::acquire_timeout, w.waited, w.message, {}});
            throw AcquireTimeout(std::move(w.message), w.waited);
        }
        if (w.outcome == Waiter::closed) throw closed_error();
        if (w.outcome == Waiter::unavailable) {
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
    static bool lock_unless_settled(Waiter& w, std::unique_lock<std::mutex>& lk) noexcept {
        while (!lk.try_lock()) {
            const std::uint32_t s = w.parker.sleep_until(Parker::clock::now() + std::chrono::milliseconds(1));
            if (s == Waiter::settled) return false;
            if (s != 0) {  // a retry: it needs the lock
                lk.lock();
                return true;
            }
        }
        return true;
    }

    // ---- waiters ------------------------------------------------------------

    // The gate: while the oldest waiter needs a release's help (a wake-up, or
    // the connection itself once its hand-off is due), or the pool is closing,
    // every idle and lent slot carries the attention bit, so that no lock-free
    // move can skip the queue. A waiter already woken, or one that lost a claim
    // and sleeps until its hand-off is due, needs no help: the gate is down
    // and returns stay lock-free. Under contention that is most of the time.
    bool gate_needed_locked() const noexcept {
        if (closing_) return true;
        if (!head_) return false;
        return options_.handoff_after.count() == 0 ||
               (!head_->barged && head_->parker.signal() != Waiter::retry);
    }

    // The attention bit for a slot stored under the lock now. A slot stored
    // without it lowers the gate for that slot (armed_ tells serve_head_locked).
    std::uint32_t attention_locked() noexcept {
        if (gate_needed_locked()) return slot_attention;
        armed_ = false;
        return 0;
    }

    void set_state_locked(SlotT& s, std::uint32_t state) noexcept {
        RESERVOIR_ASSERT(slot_move_allowed(s.state(), state), "a slot makes a move its state does not allow");
        s.word.store(state | attention_locked(), std::memory_order_release);
    }

    // Called whenever the oldest waiter may newly need help: a new head, or a
    // barged one whose hand-off is due. Raises the gate on every slot, then
    // wakes the head if a connection is idle (one that went idle just before
    // its bit was set included). So while a head needs help no connection is
    // idle: each one returned comes through the lock and goes to it or wakes it.
    void serve_head_locked() noexcept {
        if (!head_ || !gate_needed_locked()) return;
        bool idle = false;
        for (std::size_t i = 0; i < nslots_; ++i) {
            const std::uint32_t w = armed_ ? slots_[i].word.load(std::memory_order_acquire)
                                           : slots_[i].word.fetch_or(slot_attention, std::memory_order_acq_rel);
            idle = idle || (w & slot_state_mask) == slot_idle;
        }
        armed_ = true;
        if (!idle) return;
        if (!head_->async) {
            wake_for_retry_locked(*head_);
            return;
        }
        // No thread to wake: hand it a connection now, then serve the next head.
        if (SlotT* s = claim_idle_locked()) {
            Waiter& w = *head_;
            unlink_locked(w);
            settle_locked(w, s, Waiter::waiting);
            serve_head_locked();
        }
    }

    void enqueue_locked(Waiter& w) noexcept {
        RESERVOIR_ASSERT(!w.prev && !w.next && head_ != &w, "a waiter is queued twice");
        RESERVOIR_ASSERT(!tail_ || !tail_->next, "the waiter queue's tail has a successor");
        w.prev = tail_;
        (tail_ ? tail_->next : head_) = &w;
        tail_ = &w;
        ++waiting_;
        if (head_ == &w) serve_head_locked();
    }

    void unlink_locked(Waiter& w) noexcept {
        RESERVOIR_ASSERT((w.prev ? w.prev->next : head_) == &w && (w.next ? w.next->prev : tail_) == &w,
                         "a waiter unlinked from the queue is not linked where its neighbours say");
        RESERVOIR_ASSERT(waiting_ > 0, "more waiters unlinked than queued");
        if (w.parker.signal() == Waiter::retry) --retrying_;  // its wake-up is moot now
        (w.prev ? w.prev->next : head_) = w.next;
        (w.next ? w.next->prev : tail_) = w.prev;
        w.prev = w.next = nullptr;
        --waiting_;
    }

    // Gives an owned slot holding a good connection to the oldest waiter, or
    // makes it idle; closes it when the pool is closing.
    //
    // Bounded barging: a waiter queued for less than handoff_after is not
    // handed the slot. The slot is left idle and, unless a waiter is already
    // awake to claim one, the oldest is woken to claim it; a thread arriving
    // meanwhile may take it first. Under contention that saves a context switch per hand-off (the
    // releasing thread usually reacquires at once), and no waiter is passed
    // over for longer than handoff_after: from then on the slot goes straight
    // to it. Waiters among themselves are always served in order.
    void make_available_locked(SlotT& s, std::unique_lock<std::mutex>& lk) noexcept {
        if (closing_) {
            close_locked(s, CloseReason::shutdown, lk);
        } else if (Waiter* w = head_; w && hand_off_now_locked(*w)) {
            // A head that needed help leaves no connection idle (serve_head_locked):
            // the next one needs only the gate, which is up.
            const bool idle_possible = w->barged || w->parker.signal() == Waiter::retry;
            unlink_locked(*w);
            RESERVOIR_ASSERT(slot_move_allowed(s.state(), slot_lent), "a slot handed over from a state that cannot be");
            s.word.store(slot_lent | slot_attention, std::memory_order_release);
            settle_locked(*w, &s, Waiter::waiting);
            if (idle_possible) serve_head_locked();
        } else {
            if (head_ && !head_->barged) wake_for_retry_locked(*head_);
            set_state_locked(s, slot_idle);  // after the wake: the gate may be down now
        }
    }

    // An async waiter has no thread that could claim a connection left idle for it.
    bool hand_off_now_locked(const Waiter& w) const noexcept {
        return w.async || options_.handoff_after.count() == 0 || clock_.now() - w.since >= options_.handoff_after;
    }

    // Wakes a queued waiter to claim an idle slot; false if it was already woken.
    bool wake_for_retry_locked(Waiter& w) noexcept {
        if (w.parker.signal() == Waiter::retry) return false;
        ++retrying_;
        signal_locked(w.parker, Waiter::retry);
        return true;
    }

    bool take_retry_locked(Waiter& w) noexcept {
        if (w.parker.signal() != Waiter::retry) return false;
        RESERVOIR_ASSERT(retrying_ > 0, "more wake-ups taken than given");
        w.parker.clear();
        --retrying_;
        return true;
    }

    void release_slow(SlotT& s, ReleaseAction action, CloseReason why) noexcept {
        DeferredWakes wakes;  // destroyed after the lock below is let go: that delivers them
        std::unique_lock lk(mu_);
        ref_for_release_locked();
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
                make_available_locked(s, lk);
                deferred_ = nullptr;
                break;
            case ReleaseAction::reset:
                queue_job_locked(s, Job::reset);
                break;
            case ReleaseAction::discard:
                set_state_locked(s, slot_busy);
                close_locked(s, why, lk);
                break;
        }
        // Async waiters this release settled are finished here, after the
        // lock, still under this call's reference: a callback may return its
        // lease at once, and a connection that fails its check is closed here.
        if (Waiter* done = take_completed_locked()) {
            lk.unlock();
            finish_async(done);
            lk.lock();
        }
        unref(lk);
    }

    // Closes an owned slot's connection outside the lock, then frees the slot.
    void close_locked(SlotT& s, CloseReason why, std::unique_lock<std::mutex>& lk) noexcept {
        lk.unlock();
        s.conn.reset();
        emit({EventKind::closed, {}, to_string(why), {}});
        lk.lock();
        set_state_locked(s, slot_empty);
        RESERVOIR_ASSERT(live_ > 0, "more connections closed than opened");
        --live_;
        count_close(why);
        drained_cv_.notify_all();
        wake_worker_if_needed_locked();
    }

    void count_close(CloseReason why) noexcept {
        switch (why) {
            case CloseReason::idle_timeout: ++closes_.idle_timeout; break;
            case CloseReason::lifetime: ++closes_.lifetime; break;
            case CloseReason::broken: ++closes_.broken; break;
            case CloseReason::discarded: ++closes_.discarded; break;
            case CloseReason::reset_failed: ++closes_.reset_failed; break;
            case CloseReason::evicted: ++closes_.evicted; break;
            case CloseReason::shutdown: ++closes_.shutdown; break;
        }
    }

    // ---- background work ----------------------------------------------------

    bool need_connect_locked(time_point now) const noexcept {
        if (closing_ || connecting_ >= options_.max_connecting) return false;
        const std::size_t open = live_ + connecting_;
        if (open >= nslots_) return false;
        switch (breaker_locked(now)) {
            case BreakerState::closed:
                if (now < retry_at_) return false;  // the backoff after a failed connect
                break;
            case BreakerState::open:
                return false;
            case BreakerState::half_open:
                // The probe: one at a time, and at once. The cooldown was its
                // backoff; waiting for retry_at_ as well (up to retry_max) left
                // queued acquirers with no connect in flight until they timed out.
                if (connecting_ > 0) return false;
                break;
        }
        // Woken waiters have an idle connection to claim: they need no connect.
        return waiting_ - retrying_ > connecting_ || open < sizing_.min_size();
    }

    // The circuit breaker is in one of three states:
    //   closed     connecting as usual, with a backoff after each failure;
    //   open       breaker_threshold connects in a row failed: no dialing until
    //              the cooldown ends (breaker_until_), and an acquire that no open
    //              connection can serve fails at once with PoolUnavailable;
    //   half_open  the cooldown is over: one probe connect, started as soon as
    //              anyone needs a connection (a waiter, or the pool below min).
    //              Acquirers queue for its outcome: success closes the breaker
    //              and serves them; failure opens it again and fails the waiters
    //              no open connection can serve, at once (trip_breaker_if_due_locked).
    // Open turns half-open by the clock alone, so only `open` is stored.
    BreakerState breaker_locked(time_point now) const noexcept {
        if (breaker_ == BreakerState::open && now >= breaker_until_) return BreakerState::half_open;
        return breaker_;
    }

    // Open, and no connection can serve: fail at once rather than queue
    // behind connects that are not being made.
    bool failing_fast_locked() const noexcept {
        return live_ == 0 && breaker_locked(clock_.now()) == BreakerState::open;
    }

    PoolUnavailable unavailable_error_locked() const {
        const duration retry_in = std::max(duration::zero(), breaker_until_ - clock_.now());
        return PoolUnavailable("reservoir: pool unavailable: circuit breaker open after " +
                                   std::to_string(consecutive_failures_) + " consecutive connect failures; next attempt in " +
                                   ms_text(retry_in) + " (" + describe_locked() + ")",
                               retry_in);
    }

    void wake_worker_if_needed_locked() noexcept {
        if (options_.background_threads && need_connect_locked(clock_.now())) work_cv_.notify_one();
    }

    // One reset or one connect, if any is due. False when there was nothing to do.
    bool run_one_job_locked(std::unique_lock<std::mutex>& lk) {
        if (!jobs_.empty()) {
            const Job job = jobs_.back();
            jobs_.pop_back();
            job.kind == Job::reset ? reset(*job.slot, lk) : ping_then_keep(*job.slot, ping_verdict_time, true, lk);
            return true;
        }
        if (need_connect_locked(clock_.now())) {
            connect(lk);
            return true;
        }
        return false;
    }

    // Opens after breaker_threshold consecutive failures; a failed probe
    // re-opens it for another cooldown. True when it has just opened.
    bool trip_breaker_if_due_locked(time_point now) noexcept {
        if (options_.breaker_threshold == 0 || consecutive_failures_ < options_.breaker_threshold) return false;
        const bool opening = breaker_ == BreakerState::closed;
        if (opening) ++breaker_trips_;
        breaker_ = BreakerState::open;
        breaker_until_ = now + options_.breaker_cooldown;
        if (live_ == 0) wake_all_waiters_locked(Waiter::unavailable);
        return opening;
    }

    struct Job {
        SlotT* slot;
        enum { reset, recheck } kind;  // a session reset, or a ping the borrower had no time for
    };

    void queue_job_locked(SlotT& s, decltype(Job::kind) kind) noexcept {
        set_state_locked(s, slot_busy);
        jobs_.push_back({&s, kind});
        if (options_.background_threads) work_cv_.notify_one();
    }

    // A ping that times out with less time than this is no verdict on the
    // connection (acquire(0ms) would otherwise close every connection due a
    // ping): a worker pings it again with this much. One that had more is.
    static constexpr duration ping_verdict_time = std::chrono::milliseconds(100);

    // Keeps the (busy) slot if its connection answers a ping within `budget`,
    // else closes it. `for_borrower`: the ping stands in for a borrower's.
    void ping_then_keep(SlotT& s, duration budget, bool for_borrower, std::unique_lock<std::mutex>& lk) noexcept {
        if (closing_) return close_locked(s, CloseReason::shutdown, lk);
        const time_point deadline = clock_.now() + budget;
        lk.unlock();
        const bool ok = ping(s, deadline);
        lk.lock();
        s.rechecked = ok && for_borrower;
        ok ? make_available_locked(s, lk) : close_locked(s, CloseReason::broken, lk);
    }

    void reset(SlotT& s, std::unique_lock<std::mutex>& lk) noexcept {
        if (closing_) return close_locked(s, CloseReason::shutdown, lk);
        const time_point deadline = clock_.now() + options_.reset_timeout;
        lk.unlock();
        bool ok = false;
        try {
            ok = context_.reset(*s.conn, deadline) && driver_.is_usable(*s.conn);
        } catch (...) {
            ok = false;
        }
        lk.lock();
        if (ok) {
            s.mark_checked(clock_.coarse_now());
            make_available_locked(s, lk);
        } else {
            close_locked(s, CloseReason::reset_failed, lk);
        }
    }

    void connect(std::unique_lock<std::mutex>& lk) noexcept {
        SlotT* s = nullptr;
        for (std::size_t i = 0; i < nslots_ && !s; ++i)
            if (slots_[i].state() == slot_empty) s = &slots_[i];
        RESERVOIR_ASSERT(s, "a connect starts with no empty slot");
        set_state_locked(*s, slot_connecting);
        ++connecting_;
        RESERVOIR_ASSERT(live_ + connecting_ <= nslots_, "open + connecting exceeds max_size");
        const std::uint64_t random = next_random(random_);
        lk.unlock();

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
        if (s->conn)
            emit({EventKind::connected, end - begin, {}, {}});
        else
            emit({EventKind::connect_failed, end - begin, error, {}});
        if (s->conn) {
            s->created = end;
            s->expires = health_.expiry(end, random);
            s->mark_used(end);
            s->uses.store(0, std::memory_order_relaxed);
        }

        lk.lock();
        --connecting_;
        if (s->conn) {
            ++live_;
            ++connects_;
            if (options_.latency_histograms) connect_time_.record(end - begin);
            consecutive_failures_ = 0;
            retry_at_ = time_point{};  // the backoff is for failures: the next waiter's connect need not wait
            last_connect_error_.clear();
            s->generation = generation_;
            const bool breaker_closed = std::exchange(breaker_, BreakerState::closed) != BreakerState::closed;
            make_available_locked(*s, lk);
            if (breaker_closed) emit_unlocked(lk, {EventKind::breaker_closed, {}, {}, {}});
        } else {
            ++connect_failures_;
            ++consecutive_failures_;
            last_connect_error_ = error;
            retry_at_ = end + health_.retry_delay(consecutive_failures_, next_random(random_));
            set_state_locked(*s, slot_empty);
            drained_cv_.notify_all();
            if (trip_breaker_if_due_locked(end)) emit_unlocked(lk, {EventKind::breaker_opened, {}, error, {}});
        }
    }

    // Reaps idle connections above min, retires expired ones, pings idle ones
    // due a keepalive. Least-used (highest) slots first.
    void housekeep_locked(std::unique_lock<std::mutex>& lk) {
        report_leaks_locked(lk);
        for (std::size_t i = nslots_; i-- > 0;) {
            if (closing_) return;
            SlotT& s = slots_[i];
            std::uint32_t w = s.word.load(std::memory_order_acquire);
            if ((w & slot_state_mask) != slot_idle) continue;
            const time_point now = clock_.coarse_now();
            const ConnectionInfo info = s.info();
            std::optional<CloseReason> close;
            if (health_.retire(info, now))
                close = CloseReason::lifetime;
            else if (live_ > sizing_.min_size() && now - info.last_used >= sizing_.idle_timeout())
                close = CloseReason::idle_timeout;
            const bool keepalive = !close && health_.keepalive_due(info, now);
            if (!close && !keepalive) continue;
            if (!s.word.compare_exchange_strong(w, slot_busy | (w & slot_attention), std::memory_order_acquire))
                continue;  // just lent out: leave it
            if (close) {
                close_locked(s, *close, lk);
                continue;
            }
            ping_then_keep(s, options_.connect_timeout, false, lk);
        }
    }

    void start_workers() {
        const std::size_t n = std::min(options_.max_connecting, nslots_);
        std::lock_guard lk(mu_);
        for (std::size_t i = 0; i < n; ++i) {
            workers_.emplace_back([this] { worker_main(); });
        }
    }

    void worker_main() noexcept {
        detail::worker_stop_token() = stop_source_.get_token();
        std::unique_lock lk(mu_);
        while (!stop_) {
            if (finish_completed_locked(lk) || run_one_job_locked(lk)) continue;
            const time_point now = clock_.now();
            const time_point async_due = async_deadline_locked();
            if (now >= async_due) {
                time_out_due_locked(now);
                continue;
            }
            if (now >= next_housekeeping_) {
                // Set first, so that the other workers sleep while this one
                // housekeeps (it lets go of the lock to ping and close).
                next_housekeeping_ = now + options_.housekeeping_interval;
                housekeep_locked(lk);
                continue;
            }
            time_point wake = std::min(next_housekeeping_, async_due);
            if (retry_at_ > now) wake = std::min(wake, retry_at_);
            // The cooldown's end: the pool below min probes at once.
            if (breaker_locked(now) == BreakerState::open) wake = std::min(wake, breaker_until_);
            timer_at_ = wake;
            wait_until(work_cv_, lk, wake);
        }
    }

    // ---- closing ------------------------------------------------------------

    void begin_close_locked(std::unique_lock<std::mutex>& lk) noexcept {
        if (closing_) return;
        closing_ = true;
        for (std::size_t i = 0; i < nslots_; ++i) slots_[i].word.fetch_or(slot_attention, std::memory_order_acq_rel);
        wake_all_waiters_locked(Waiter::closed);
        for (std::size_t i = 0; i < nslots_; ++i) {
            SlotT& s = slots_[i];
            std::uint32_t w = s.word.load(std::memory_order_acquire);
            if ((w & slot_state_mask) == slot_idle &&
                s.word.compare_exchange_strong(w, slot_busy | slot_attention, std::memory_order_acquire))
                close_locked(s, CloseReason::shutdown, lk);
        }
        // Resets and rechecks not yet begun would only close their connection
        // now: close it here. Left queued, nobody might run them (no workers,
        // or the Pool's end), and the connection stayed open as long as a lease
        // kept the state alive.
        while (!jobs_.empty()) {
            SlotT& s = *jobs_.back().slot;
            jobs_.pop_back();
            close_locked(s, CloseReason::shutdown, lk);
        }
        work_cv_.notify_all();
    }

    // Times out every waiter whose deadline has passed, not just the caller.
    // Waiters that queued together time out together, and each would take
    // the lock in turn as it woke: on a busy machine every turn costs a
    // scheduling delay, and the last of 80 was measured 35 ms past its
    // deadline. Settled here, the others return without taking the lock.
    void time_out_due_locked(time_point now) {
        const std::string pool = describe_locked();
        const Waiter* const head = head_;
        for (Waiter* w = head_; w;) {
            Waiter* const next = w->next;
            if (w->deadline <= now) {
                ++acquire_timeouts_;
                w->waited = now - w->since;
                w->message = "reservoir: acquire timed out after " + ms_text(w->waited) + " (" + pool + ")";
                unlink_locked(*w);
                settle_locked(*w, nullptr, Waiter::timed_out);
            }
            w = next;
        }
        if (head_ != head) serve_head_locked();
    }

    void wake_all_waiters_locked(decltype(Waiter::outcome) outcome) noexcept {
        while (Waiter* w = head_) {
            unlink_locked(*w);
            settle_locked(*w, nullptr, outcome);
        }
    }

    bool drained_locked() const noexcept {
        for (std::size_t i = 0; i < nslots_; ++i)
            if (slots_[i].state() != slot_empty) return false;
        return true;
    }

    // ---- lifetime -------------------------------------------------------------
    //
    // One rule: a reference is held by whoever can still touch the state, and
    // the last one to drop its reference frees it, in unref() and nowhere else.
    // The holders are the Pool (until its destructor ends); once the Pool is
    // gone, each lease still out (its slot is lent), counted by destroy_handle
    // so that a lease costs nothing while the Pool lives; and every release
    // that reaches the lock, for as long as it runs: it may let go of the lock
    // to close a connection or to finish async waiters, and the Pool may be
    // destroyed meanwhile (its slot is then busy, not lent, so it is not
    // counted there). Workers need none: the Pool's destructor joins them.

    // A release holds one reference from the moment it has the lock: once
    // the Pool is gone, its lease's (its slot is still lent here); before,
    // a new one.
    void ref_for_release_locked() noexcept {
        if (!orphaned_) ++refs_;
    }

    // Drops a reference and lets go of the lock; the last one frees the state.
    void unref(std::unique_lock<std::mutex>& lk) noexcept {
        RESERVOIR_ASSERT(refs_ > 0, "the state's reference count drops below zero");
        const bool last = --refs_ == 0;
        lk.unlock();
        if (last) delete this;
    }

    // ---- events -------------------------------------------------------------

    void emit(const Event& e) const noexcept {
        if (options_.listener) options_.listener->on_event(e);
    }

    // Listeners run outside the lock.
    void emit_unlocked(std::unique_lock<std::mutex>& lk, const Event& e) noexcept {
        if (!options_.listener) return;
        lk.unlock();
        emit(e);
        lk.lock();
    }

    // A lease held past leak_threshold is reported once; its late return too
    // (see release()).
    void report_leaks_locked(std::unique_lock<std::mutex>& lk) {
        const duration threshold = options_.leak_threshold;
        if (threshold.count() <= 0) return;
        const time_point now = clock_.coarse_now();
        for (std::size_t i = 0; i < nslots_; ++i) {
            SlotT& s = slots_[i];
            if (s.state() != slot_lent) continue;
            const std::uint64_t lease = s.lends.load(std::memory_order_acquire);
            const duration held = now - s.lent_time();
            if (held < threshold || s.leak_reported.load(std::memory_order_relaxed) == lease) continue;
            const CodeLocation where = s.lent_where();
            if (s.lends.load(std::memory_order_acquire) != lease) continue;  // returned and lent again meanwhile
            s.leak_reported.store(lease, std::memory_order_relaxed);
            ++leaks_;
            emit_unlocked(lk, {EventKind::leak, held, {}, where});
        }
    }

    // ---- waiting and messages ---------------------------------------------

    // The real-time point to sleep until for a deadline on the pool's clock:
    // the clock decides (core/clock.hpp).
    time_point sleep_bound(time_point now, time_point deadline) const noexcept {
        return reservoir::wake_time(clock_, now, deadline);
    }

    // Waits until notified or the deadline; false once the deadline has passed.
    bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, time_point deadline) {
        const time_point now = clock_.now();
        if (now >= deadline) return false;
        cv.wait_until(lk, sleep_bound(now, deadline));
        return clock_.now() < deadline;
    }

    // Sleeps on a waiter's parker until a signal or the deadline; returns the signal.
    std::uint32_t park(Parker& p, time_point deadline) const noexcept {
        const time_point now = clock_.now();
        return p.sleep_until(now >= deadline ? time_point::min() : sleep_bound(now, deadline));
    }

    std::string describe_locked() const {
        std::size_t idle = 0, in_use = 0, connecting = 0;
        for (std::size_t i = 0; i < nslots_; ++i) {
            const auto st = slots_[i].state();
            idle += st == slot_idle;
            in_use += st == slot_lent || st == slot_busy;
            connecting += st == slot_connecting;
        }
        std::string text = "pool: total=" + std::to_string(live_) + " idle=" + std::to_string(idle) +
                           " in_use=" + std::to_string(in_use) + " waiting=" + std::to_string(waiting_) +
                           " connecting=" + std::to_string(connecting) + " max=" + std::to_string(nslots_);
        if (!last_connect_error_.empty()) text += "; last connect error: " + last_connect_error_;
        return text;
    }

    static PoolClosed closed_error() { return PoolClosed("reservoir: pool is closed (shutdown has begun)"); }

    // ---- members --------------------------------------------------------------

    D driver_;
    S sizing_;
    H health_;
    C context_;
    K clock_;
    const PoolOptions options_;
    const std::size_t nslots_;
    std::unique_ptr<SlotT[]> slots_;

    mutable std::mutex mu_;
    Waiter* head_ = nullptr;  // oldest waiter
    Waiter* tail_ = nullptr;
    std::size_t waiting_ = 0;
    std::size_t retrying_ = 0;  // waiters woken to claim an idle slot, not yet run
    bool armed_ = false;        // every idle and lent slot carries the attention bit (the gate is up)
    DeferredWakes* deferred_ = nullptr;  // where wake-ups go while a release holds the lock
    Waiter* completed_ = nullptr;         // settled async waiters, oldest first, to finish after the lock
    Waiter** completed_end_ = &completed_;
    time_point timer_at_ = time_point::max();  // when a sleeping worker wakes next (async deadlines)
    std::condition_variable work_cv_;     // workers sleep here
    std::condition_variable drained_cv_;  // shutdown and destroy wait here
    std::vector<Job> jobs_;  // busy slots waiting for a worker

    std::size_t live_ = 0;        // slots holding a connection
    std::size_t connecting_ = 0;  // slots with a connect in flight
    unsigned consecutive_failures_ = 0;
    BreakerState breaker_ = BreakerState::closed;  // closed or open; read it with breaker_locked()
    time_point breaker_until_{};                   // end of the cooldown: then half-open
    std::uint64_t breaker_trips_ = 0;
    std::uint64_t generation_ = 0;                 // bumped by evict_all()
    time_point retry_at_{};       // no connect before this (backoff)
    time_point next_housekeeping_{};
    std::string last_connect_error_;
    std::uint64_t random_;

    std::uint64_t acquire_timeouts_ = 0;
    std::uint64_t leaks_ = 0;
    Histogram connect_time_;
    std::uint64_t connects_ = 0;
    std::uint64_t connect_failures_ = 0;
    CloseCounts closes_;

    bool closing_ = false;
    bool stop_ = false;
    bool orphaned_ = false;
    std::size_t refs_ = 1;  // whoever can still touch the state (see "lifetime")
    std::vector<std::thread> workers_;
    std::stop_source stop_source_;
};

}  // namespace reservoir::detail
