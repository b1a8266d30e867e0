#pragma once
// The pool's orchestrator. Pool and Lease are thin handles onto one PoolState,
// which lives on the heap so that a lease may outlive the Pool object; it is
// freed by the last holder of a reference (lifetime.hpp, unref() below).
// Worker threads never outlive the Pool: its destructor asks them to stop
// (see stop.hpp) and joins them.
//
// It owns the mutex and does all the I/O (connect, ping, reset, close, events);
// what to do is decided by the parts it calls:
//   slot_table.hpp  the slots' atomic words: the lock-free claim and release, every other move
//   wait_queue.hpp  the FIFO of waiters; the hand-off, barging, gate and timeout rules
//   decisions.hpp   connects wanted, the breaker, housekeeping verdicts, error texts
//   workers.hpp     the job list, and what an idle worker does next
//   lifetime.hpp    the references that keep the state alive
//
// Paths:
//   acquire  fast: claim an idle slot by CAS, the thread's last slot first.
//            slow: under the lock, claim an idle slot or queue as a waiter
//            (FIFO) and sleep on the waiter's own parker (parker.hpp).
//   async    the same, with a callback queued in place of a sleeping thread;
//            finished outside the lock by whoever settles it.
//   cancel   a queued waiter's std::stop_callback, on the thread that stops
//            its token: out of the queue under the lock, AcquireCancelled.
//   release  fast: CAS lent -> idle. slow (attention bit set, or the
//            connection needs a reset or must close): under the lock, hand it
//            to the oldest waiter, queue it for a reset, or close it.
//   workers  max_connecting threads that open connections, reset returned
//            ones and run housekeeping. Connects and resets run outside the lock.
//
// The lock (mu_) guards the members marked RESERVOIR_GUARDED_BY(mu_) (the wait
// queue and its waiters, the job list, the connect state, the counters), and
// every slot move but the two lock-free ones. A function marked
// RESERVOIR_REQUIRES(mu_) runs with it held, and one that lets go of it for
// I/O calls mu_.unlock() and mu_.lock() itself; clang checks both
// (thread_safety.hpp). The owner of a lent or busy slot uses its connection
// without the lock. Invariants, checked with RESERVOIR_ASSERT:
//   - open + connecting never exceed max_size (need_connect, connect), except
//     while shrinking after max was lowered; then no connect starts (resize);
//   - idle + in use + resetting equal the connections open (stats);
//   - while the head needs help (gate_needed_locked) every idle and lent slot
//     carries the attention bit, and no connection stays idle: each one
//     returned comes through the lock (serve_head_locked);
//   - a waiter is settled once, after it left the queue; a settled async
//     waiter is finished once, outside the lock;
//   - the I/O that lets go of the lock (close, connect, ping, reset, events,
//     finishing async waiters) does so only on a slot it owns (busy or
//     connecting) or on waiters it took off the queue.

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
#include "decisions.hpp"
#include "lifetime.hpp"
#include "parker.hpp"
#include "slot_table.hpp"
#include "thread_safety.hpp"
#include "wait_queue.hpp"
#include "workers.hpp"

namespace reservoir::detail {

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
          slots_(validated_capacity()),
          queue_(options_.handoff_after, options_.handoff_patience),
          jobs_(slots_.size()),
          conn_(options_.breaker_threshold, options_.breaker_cooldown),
          // Jitter must differ between pools and processes started together.
          random_(reinterpret_cast<std::uintptr_t>(this) ^
                  static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {
        next_housekeeping_ = clock_.now();
        if (options_.background_threads) start_workers();
    }

    PoolState(const PoolState&) = delete;
    PoolState& operator=(const PoolState&) = delete;

    // ---- acquire / release ------------------------------------------------

    // `stop` (a pointer to a std::stop_token, or nullptr) is looked at only if the
    // acquirer must queue. Its type says at compile time whether the acquire
    // can be cancelled: one that cannot compiles no cancel code at all, so the
    // inlining of the fast path is the same as before cancels existed.
    template <class Stop = std::nullptr_t>
    SlotT* acquire(duration timeout, const source_location& where, Stop stop = nullptr) {
        time_point start{};  // the precise clock is read only once we must wait
        for (SlotT* s = slots_.claim_idle_fast();; s = slots_.claim_idle_fast()) {
            if (!s) {
                if (start == time_point{}) start = clock_.now();
                s = wait_for_slot(start, start + timeout, stop);
            }
            if (checkout(*s, start, timeout, where)) return s;  // on failure, start is set
        }
    }

    // Never waits for a connection: nullptr when none is free right now.
    SlotT* try_acquire(const source_location& where) {
        SlotT* s = slots_.claim_idle_fast();
        if (!s) {
            Lock lk(mu_);
            if (closing_) throw closed_error();
            if (queue_.empty()) s = claim_idle_locked();
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
    // `stop`, as in acquire(), is looked at only if the request must queue.
    template <class F, class Stop = std::nullptr_t>
    void async_acquire(duration timeout, const source_location& where, F done, Stop stop = nullptr) {
        for (SlotT* s = slots_.claim_idle_fast(); s; s = slots_.claim_idle_fast()) {
            switch (checkout_async(*s, {}, where)) {
                case Checkout::lent: return done(s, nullptr);
                case Checkout::closed: return done(nullptr, std::make_exception_ptr(closed_error()));
                case Checkout::failed: break;  // closed, or left to a worker to ping: try another
            }
        }
        auto w = std::make_unique<AsyncCall<SlotT, F>>(std::move(done), where);
        w->since = clock_.now();
        w->deadline = w->since + timeout;
        // Armed before anyone else can see the node, and outside the lock: a
        // token stopped already runs the cancel here, which takes the lock
        // and marks the node stop_pending (checked below).
        if constexpr (!std::is_null_pointer_v<Stop>) {
            if (stop->stop_possible()) w->on_stop.emplace(*stop, cancel_on_stop(*w));
        }
        Lock lk(mu_);
        try {
            if (closing_) throw closed_error();
            admit_locked();
            if (w->stop_pending) throw cancelled_error_locked(*w);
        } catch (...) {
            lk.unlock();
            w->on_stop.reset();  // waits for a cancel running on another thread: it takes the lock
            w->finish(nullptr, std::current_exception());
            return;
        }
        Waiter<SlotT>& queued = *w.release();
        enqueue_locked(queued);  // served at once if it is the head and a connection is idle
        wake_worker_if_needed_locked();
        if (!queued.settled() && queued.deadline < timer_at_) {
            timer_at_ = queued.deadline;  // a worker times it out
            if (options_.background_threads) work_cv_.notify_one();
        }
        finish_completed_locked();
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
        if (action == ReleaseAction::reuse && SlotTable<connection_type>::release_fast(s)) return;
        release_slow(s, action, why);
    }

    // ---- lifecycle --------------------------------------------------------

    // Stops new acquires, wakes waiters with pool-closed, closes idle
    // connections, and waits up to `timeout` for lent ones to come back.
    // True when every connection is closed.
    bool shutdown(duration timeout) {
        const time_point deadline = clock_.now() + timeout;
        Lock lk(mu_);
        begin_close_locked();
        finish_completed_locked();
        while (!slots_.drained()) {
            if (!wait_until(drained_cv_, lk, deadline)) return slots_.drained();
        }
        return true;
    }

    // Called once by the Pool's destructor: shut down without waiting for
    // leases, stop and join the workers, and hand the state to the leases
    // still out. A worker inside a connect, ping or reset is asked to stop
    // (stop.hpp); one whose driver ignores that ends at the operation's deadline.
    void destroy_handle() noexcept {
        Lock lk(mu_);
        begin_close_locked();
        stop_ = true;
        work_cv_.notify_all();
        std::vector<std::thread> workers = std::move(workers_);
        lk.unlock();
        stop_source_.request_stop();
        for (auto& t : workers) t.join();
        lk.lock();                           // every connection a worker finished with since was closed, not made idle
        while (finish_completed_locked()) {  // async waiters fail with PoolClosed
        }
        // From now on no slot becomes lent (the pool is closing: nothing is
        // idle or handed over), so each lent slot is a lease that still holds
        // its reference when it comes back.
        refs_.orphan(slots_.counts().lent);
        unref(lk);  // the Pool's own
    }

    // Closes every idle connection now and every lent one when it comes back
    // (after a failover, say). Connections opened from now on are kept.
    void evict_all() {
        Lock lk(mu_);
        ++generation_;
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            SlotT& s = slots_[i];
            const std::uint32_t w = Table::peek(s);
            if (Table::is(w, slot_lent))
                Table::flag(s);  // its release goes through the lock, where its generation is checked
            else if (Table::is(w, slot_idle) && Table::take_if_unchanged(s, w))
                close_locked(s, CloseReason::evicted);
        }
    }

    // Manual mode (background_threads = false): run due work in the caller.
    void maintain() {
        Lock lk(mu_);
        while (run_one_job_locked()) {
        }
        housekeep_locked();
        do {  // a finished async waiter may leave work: a connection to ping or replace
            while (run_one_job_locked()) {
            }
            if (const time_point now = clock_.now(); now >= queue_.earliest_async_deadline()) time_out_due_locked(now);
        } while (finish_completed_locked());
    }

    PoolStats stats() const {
        PoolStats st;
        Lock lk(mu_);
        const SlotCounts counts = slots_.counts();
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            st.acquires += slots_[i].lends.load(std::memory_order_relaxed);
            if (options_.latency_histograms) {
                st.acquire_wait.merge(slots_[i].acquire_wait.snapshot());
                st.hold_time.merge(slots_[i].hold_time.snapshot());
            }
        }
        st.idle = counts.idle;
        st.in_use = counts.lent;
        st.resetting = counts.busy;
        st.connecting = counts.connecting;
        st.connect_time = conn_.connect_time.snapshot();
        st.leaks = leaks_;
        st.total = st.idle + st.in_use + st.resetting;
        RESERVOIR_ASSERT(st.total == conn_.live, "idle + in_use + resetting differs from the connections open");
        RESERVOIR_ASSERT(st.connecting == conn_.connecting, "slots connecting differ from the connects in flight");
        st.waiting = queue_.waiting();
        const Sizes sizes = sizes_locked();
        st.min = sizes.min;
        st.max = sizes.max;
        st.acquire_timeouts = acquire_timeouts_;
        st.acquire_cancels = acquire_cancels_;
        st.connects = conn_.connects;
        st.connect_failures = conn_.failures;
        st.closes = closes_;
        st.last_connect_error = conn_.last_error;
        st.breaker = conn_.breaker.state(clock_.now());
        st.breaker_trips = conn_.breaker.trips();
        return st;
    }

    std::string last_connect_error() const {
        Lock lk(mu_);
        return conn_.last_error;
    }

    // Pool::resize (pool_background.hpp).
    void resize(std::size_t min, std::size_t max);

    const PoolOptions& options() const noexcept { return options_; }
    D& driver() noexcept { return driver_; }
    C& context() noexcept { return context_; }

private:
    using Table = SlotTable<connection_type>;
    using Queue = WaitQueue<SlotT>;
    using Jobs = JobList<SlotT>;

    // A blocked acquirer: a waiter with a parker to sleep on. The parker's
    // signal says why it was woken: `settled_signal` (slot and outcome are final, and
    // it returns without taking the pool's lock again) or `retry_signal` (still
    // queued, and marked woken: claim a connection left idle).
    struct ThreadWaiter : Waiter<SlotT> {
        static constexpr std::uint32_t retry_signal = 1, settled_signal = 2;
        Parker parker;
    };
    // A blocked acquirer's stop_callback, and the reference that keeps the
    // state alive while the callback may run (it takes the lock): the Pool may
    // be destroyed while the thread still waits. Declared after the waiter and
    // before the lock, so that it goes after the lock is let go (the callback's
    // destructor waits for a cancel running on another thread, which takes the
    // lock) and before the waiter (which that cancel reads).
    struct ThreadStopHook {
        PoolState* state = nullptr;  // set once it holds a reference
        StopHook<SlotT> callback;
        ThreadStopHook() = default;
        ThreadStopHook(const ThreadStopHook&) = delete;
        ThreadStopHook& operator=(const ThreadStopHook&) = delete;
        ~ThreadStopHook() {
            if (!state) return;
            callback.reset();
            state->drop_ref();
        }
    };
    static Parker& parker_of(Waiter<SlotT>& w) noexcept {
        RESERVOIR_ASSERT(!w.async, "an async waiter has no thread to wake");
        return static_cast<ThreadWaiter&>(w).parker;
    }

    // Checks the options and the sizing policy's numbers before anything is
    // allocated; the slots are the capacity (PoolOptions::capacity, or max).
    std::size_t validated_capacity() const {
        options_.validate();
        validate_sizes(sizing_.min_size(), sizing_.max_size());
        if (options_.capacity == 0) return sizing_.max_size();
        validate_capacity(options_.capacity, sizing_.max_size());
        return options_.capacity;
    }

    // ---- sizes at run time (pool_background.hpp) ------------------------------

    struct Sizes {
        std::size_t min, max;
    };
    Sizes sizes_locked() const noexcept RESERVOIR_REQUIRES(mu_);
    bool over_max_locked() const noexcept RESERVOIR_REQUIRES(mu_);
    void trim_locked() RESERVOIR_REQUIRES(mu_);
    void keep_or_retire_locked(SlotT& s) noexcept RESERVOIR_REQUIRES(mu_);
    // Set in a lent slot's generation: its release closes it (release_slow sees
    // a generation that is not the pool's), for a max lowered below it.
    static constexpr std::uint64_t retire_mark = std::uint64_t{1} << 63;

    // ---- the gate and slot moves under the lock ------------------------------

    // Raised while the oldest waiter needs a release's help, or the pool is closing.
    bool gate_needed_locked() const noexcept RESERVOIR_REQUIRES(mu_) { return closing_ || queue_.head_needs_help(); }

    SlotT* claim_idle_locked() noexcept RESERVOIR_REQUIRES(mu_) {
        return slots_.claim_idle_locked(gate_needed_locked());
    }

    void set_state_locked(SlotT& s, std::uint32_t state) noexcept RESERVOIR_REQUIRES(mu_) {
        slots_.set_state_locked(s, state, gate_needed_locked());
    }

    // ---- waiting, hand-off and async waiters (pool_waiting.hpp) --------------

    enum class Checkout { lent, failed, closed };

    // Whether these two hold the lock depends on the waiter's parker (a thread
    // settled returns without taking it again), which the thread-safety
    // analysis cannot follow: they are checked by the threaded tests instead.
    template <class Stop>
    SlotT* wait_for_slot(time_point start, time_point deadline, Stop stop) RESERVOIR_NO_THREAD_SAFETY_ANALYSIS;
    static bool lock_unless_settled(ThreadWaiter& w, Lock& lk) noexcept RESERVOIR_NO_THREAD_SAFETY_ANALYSIS;
    void admit_locked() const RESERVOIR_REQUIRES(mu_);
    bool checkout(SlotT& s, time_point& start, duration timeout, const source_location& where);
    Checkout checkout_async(SlotT& s, time_point start, const source_location& where) noexcept;
    void lend(SlotT& s, time_point now, time_point start, const source_location& where) noexcept;
    bool ping_due(const SlotT& s, time_point now) const noexcept {
        return !s.rechecked && health_.borrow_check(s.info(), now) == BorrowCheck::ping;
    }
    bool ping(SlotT& s, time_point deadline) noexcept;

    void enqueue_locked(Waiter<SlotT>& w) noexcept RESERVOIR_REQUIRES(mu_) {
        if (queue_.pace_sample_due(w.since)) queue_.sample_pace(w.since, slots_.lends());
        if (queue_.enqueue(w)) serve_head_locked();
    }
    void serve_head_locked() noexcept RESERVOIR_REQUIRES(mu_);
    void make_available_locked(SlotT& s) noexcept RESERVOIR_REQUIRES(mu_);
    void settle_locked(Waiter<SlotT>& w, SlotT* slot, WaitOutcome outcome) noexcept RESERVOIR_REQUIRES(mu_);
    void signal_locked(Parker& p, std::uint32_t signal) noexcept RESERVOIR_REQUIRES(mu_);
    void time_out_due_locked(time_point now) RESERVOIR_REQUIRES(mu_);
    void wake_all_waiters_locked(WaitOutcome outcome) noexcept RESERVOIR_REQUIRES(mu_) {
        while (Waiter<SlotT>* w = queue_.pop_front()) settle_locked(*w, nullptr, outcome);
    }

    // Cancel on a std::stop_token (pool_waiting.hpp): run by the waiter's
    // stop_callback, on whichever thread stops the token.
    CancelOnStop<SlotT> cancel_on_stop(Waiter<SlotT>& w) noexcept {
        return {[](void* pool, Waiter<SlotT>& waiter) noexcept { static_cast<PoolState*>(pool)->cancel(waiter); }, this,
                &w};
    }
    void cancel(Waiter<SlotT>& w) noexcept RESERVOIR_EXCLUDES(mu_);
    void note_cancel_locked(Waiter<SlotT>& w) RESERVOIR_REQUIRES(mu_);
    AcquireCancelled cancelled_error_locked(Waiter<SlotT>& w) RESERVOIR_REQUIRES(mu_) {
        note_cancel_locked(w);
        return AcquireCancelled(std::move(w.message), w.waited);
    }

    bool finish_completed_locked() noexcept RESERVOIR_REQUIRES(mu_);
    void finish_async(Waiter<SlotT>* list) noexcept RESERVOIR_EXCLUDES(mu_);
    void finish_one(AsyncWaiter<SlotT>& w) noexcept;
    void requeue_async(AsyncWaiter<SlotT>& w) noexcept;
    void release_slow(SlotT& s, ReleaseAction action, CloseReason why) noexcept RESERVOIR_EXCLUDES(mu_);

    // Wake-ups owed to waiters by a release, delivered once it has let go of
    // the lock (see Parker::Wake). Two at most: a hand-off and a turn passed on.
    struct DeferredWakes {
        Parker::Wake wakes[2];
        std::size_t count = 0;
    };

    // ---- connects, resets, housekeeping, workers (pool_background.hpp) -------

    // A ping that times out with less time than this is no verdict on the
    // connection (acquire(0ms) would otherwise close every connection due a
    // ping): a worker pings it again with this much. One that had more is.
    static constexpr duration ping_verdict_time = std::chrono::milliseconds(100);

    bool need_connect_locked(time_point now) const noexcept RESERVOIR_REQUIRES(mu_) {
        const Sizes sizes = sizes_locked();
        return need_connect({conn_.live, conn_.connecting, queue_.waiting(), queue_.retrying(), sizes.min, sizes.max,
                             options_.max_connecting, closing_},
                            conn_.breaker.state(now), now, conn_.retry_at);
    }
    void wake_worker_if_needed_locked() noexcept RESERVOIR_REQUIRES(mu_) {
        if (options_.background_threads && need_connect_locked(clock_.now())) work_cv_.notify_one();
    }
    void queue_job_locked(SlotT& s, typename Jobs::Kind kind) noexcept RESERVOIR_REQUIRES(mu_) {
        set_state_locked(s, slot_busy);
        jobs_.push(s, kind);
        if (options_.background_threads) work_cv_.notify_one();
    }
    bool run_one_job_locked() RESERVOIR_REQUIRES(mu_);
    void connect() noexcept RESERVOIR_REQUIRES(mu_);
    void reset(SlotT& s) noexcept RESERVOIR_REQUIRES(mu_);
    void ping_then_keep(SlotT& s, duration budget, bool for_borrower) noexcept RESERVOIR_REQUIRES(mu_);
    void close_locked(SlotT& s, CloseReason why) noexcept RESERVOIR_REQUIRES(mu_);
    void closed_locked(SlotT& s, CloseReason why) noexcept RESERVOIR_REQUIRES(mu_);
    void housekeep_locked() RESERVOIR_REQUIRES(mu_);
    void report_leaks_locked() RESERVOIR_REQUIRES(mu_);
    void begin_close_locked() noexcept RESERVOIR_REQUIRES(mu_);
    void start_workers();
    void worker_main() noexcept;

    // ---- lifetime (lifetime.hpp) ----------------------------------------------

    // Drops a reference and lets go of the lock; the last one frees the state.
    // The one place that does.
    void unref(Lock& lk) noexcept RESERVOIR_RELEASE(mu_) {
        const bool last = refs_.drop();
        lk.released();
        mu_.unlock();
        if (last) delete this;
    }
    void drop_ref() noexcept RESERVOIR_EXCLUDES(mu_) {
        Lock lk(mu_);
        unref(lk);
    }

    // ---- events, waits and errors ----------------------------------------------

    void emit(const Event& e) const noexcept {
        if (options_.listener) options_.listener->on_event(e);
    }

    // Listeners run outside the lock.
    void emit_unlocked(const Event& e) noexcept RESERVOIR_REQUIRES(mu_) {
        if (!options_.listener) return;
        mu_.unlock();
        emit(e);
        mu_.lock();
    }

    // Waits until notified or the deadline; false once the deadline has passed.
    // How long a wait on the pool's clock sleeps is the clock's call (clock.hpp).
    bool wait_until(std::condition_variable& cv, Lock& lk, time_point deadline) RESERVOIR_REQUIRES(mu_) {
        const time_point now = clock_.now();
        if (now >= deadline) return false;
        lk.wait_until(cv, reservoir::wake_time(clock_, now, deadline));
        return clock_.now() < deadline;
    }

    // Sleeps on a waiter's parker until a signal or the deadline; returns the signal.
    std::uint32_t park(Parker& p, time_point deadline) const noexcept {
        const time_point now = clock_.now();
        return p.sleep_until(now >= deadline ? time_point::min() : reservoir::wake_time(clock_, now, deadline));
    }

    std::string describe_locked() const RESERVOIR_REQUIRES(mu_) {
        const SlotCounts c = slots_.counts();
        return describe({conn_.live, c.idle, c.lent + c.busy, queue_.waiting(), c.connecting, sizes_locked().max,
                         conn_.last_error});
    }

    // Open, and no connection can serve: fail at once rather than queue
    // behind connects that are not being made.
    bool failing_fast_locked() const noexcept RESERVOIR_REQUIRES(mu_) {
        return conn_.live == 0 && conn_.breaker.state(clock_.now()) == BreakerState::open;
    }

    PoolUnavailable unavailable_error_locked() const RESERVOIR_REQUIRES(mu_) {
        const duration retry_in = conn_.breaker.retry_in(clock_.now());
        return PoolUnavailable(unavailable_text(conn_.breaker.consecutive_failures(), retry_in, describe_locked()),
                               retry_in);
    }

    static PoolClosed closed_error() { return PoolClosed(closed_text); }

    // ---- members --------------------------------------------------------------

    D driver_;
    S sizing_;
    H health_;
    C context_;
    K clock_;
    const PoolOptions options_;
    Table slots_;  // the words are atomic: see slot_table.hpp for who moves them without the lock

    mutable Mutex mu_;  // guards everything below marked RESERVOIR_GUARDED_BY(mu_)
    Queue queue_ RESERVOIR_GUARDED_BY(mu_);
    Jobs jobs_ RESERVOIR_GUARDED_BY(mu_);  // busy slots waiting for a worker
    ConnectState conn_ RESERVOIR_GUARDED_BY(mu_);
    DeferredWakes* deferred_ RESERVOIR_GUARDED_BY(mu_) = nullptr;  // where wake-ups go while a release holds the lock
    time_point timer_at_ RESERVOIR_GUARDED_BY(mu_) =
        time_point::max();                                    // when a sleeping worker wakes next (async deadlines)
    std::condition_variable work_cv_;                         // workers sleep here
    std::condition_variable drained_cv_;                      // shutdown and destroy wait here
    std::uint64_t generation_ RESERVOIR_GUARDED_BY(mu_) = 0;  // bumped by evict_all()
    time_point next_housekeeping_ RESERVOIR_GUARDED_BY(mu_) = {};
    std::uint64_t random_ RESERVOIR_GUARDED_BY(mu_);
    std::uint64_t acquire_timeouts_ RESERVOIR_GUARDED_BY(mu_) = 0;
    std::uint64_t acquire_cancels_ RESERVOIR_GUARDED_BY(mu_) = 0;
    std::uint64_t leaks_ RESERVOIR_GUARDED_BY(mu_) = 0;
    CloseCounts closes_ RESERVOIR_GUARDED_BY(mu_);
    bool closing_ RESERVOIR_GUARDED_BY(mu_) = false;
    bool stop_ RESERVOIR_GUARDED_BY(mu_) = false;
    std::size_t retiring_ RESERVOIR_GUARDED_BY(mu_) = 0;  // lent slots marked retire_mark
    // The max at the last decision, and whether the pool is above a lowered max.
    mutable std::size_t last_max_ RESERVOIR_GUARDED_BY(mu_) = 0;
    mutable bool shrinking_ RESERVOIR_GUARDED_BY(mu_) = false;
    References refs_ RESERVOIR_GUARDED_BY(mu_);
    std::vector<std::thread> workers_ RESERVOIR_GUARDED_BY(mu_);
    std::stop_source stop_source_;
};

}  // namespace reservoir::detail

#include "pool_background.hpp"  // IWYU pragma: keep
#include "pool_waiting.hpp"     // IWYU pragma: keep
