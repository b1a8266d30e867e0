#pragma once
// The wait queue: acquirers waiting for a connection, blocked threads and
// async callbacks in one FIFO, and the rules of who gets a connection.
//
// It holds no mutex, reads no clock, wakes no one and does no I/O: every
// member is called under the pool's lock, takes the time when it needs it, and
// says what to do. The orchestrator (pool_state.hpp) wakes threads, finishes
// async waiters and moves slots. This is the file to change the hand-off rule in.
//
// THE HAND-OFF RULE (bounded barging). Handing every returned connection
// straight to the oldest waiter (strict FIFO) costs a context switch per
// hand-off: the waiter is asleep, and the thread that returned the connection
// usually asks for one again at once, then sleeps in turn. Under contention
// throughput falls to the scheduler's wake-up rate (2 threads on a pool of 1
// measured up to 8.6 us per cycle, against ~40-110 ns for a plain mutex pool
// that lets the returning thread take it back). So a release decides
// (on_release):
//   - hand over now: the oldest waiter's hand-off is due, or it is an async
//     waiter (no thread of its own could claim a connection left idle), or
//     handoff_after is 0 (strict FIFO);
//   - else leave the connection idle and wake the head to claim it, unless it
//     is already awake or barged; a thread arriving meanwhile may claim it
//     first (barging). A waiter that loses its claim sleeps until its hand-off
//     is due, without being woken by the releases in between;
//   - else just leave it idle.
// Waiters among themselves are served in order, and none is passed over for
// longer than its patience plus the time to the next release.
//
// PATIENCE (patience). A waiter's hand-off falls due handoff_patience times
// what a strict FIFO would make it wait: its place in line over the pool's
// pace (lends a second, sampled every pace_window by whoever queues), and
// never less than handoff_after. A fixed bound fails both ways: 1 ms, shorter
// than any wait with 10 times more threads than connections, handed every
// return over (200 threads on 20 connections: 2.2 context switches a point
// select, 27,000 a second against a mutex pool's 38,000), and one long enough
// for that load lets a waiter on a lightly loaded pool be passed over far
// longer than its fair wait. Scaled to the FIFO wait, the tail stays a fixed
// multiple of it (at 1.75 the p99 of 2 ms queries stays under twice workers /
// throughput) while about four returns in ten are retaken by a running thread:
// 1.6 context switches a point select instead of 2.2.

// THE GATE RULE (head_needs_help). While the oldest waiter needs a release's
// help (a wake-up, or the connection itself once its hand-off is due), every
// idle and lent slot carries the attention bit, so no lock-free move can skip
// the queue. A head already woken, or one that lost a claim and sleeps until
// its hand-off is due, needs nothing: the gate comes down and returns stay
// lock-free. With 64 threads on a pool of 32 on 2 cores, keeping the gate up
// while anyone waited sent most releases through the lock (160 ns a cycle, no
// faster than a mutex pool); with it down while the head needs nothing, fewer
// than one in ten thousand go there, and a cycle costs 11 ns.
//
// CANCEL (cancel). A waiter whose std::stop_token is stopped leaves the queue
// under the lock, unless it was settled first: a hand-off, a timeout or a
// cancel, whichever settles it first wins. Cancelling the head leaves a new
// head, which the caller serves like any other.
//
// TIMEOUTS (time_out_due). Whoever finds a deadline passed times out every
// waiter due, in one pass: waiters that queued together time out together,
// and taking the lock one by one made a convoy (the last of 80 was measured
// 35 ms past its deadline, from the lock alone).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

#include "../assert.hpp"
#include "../clock.hpp"
#include "../source_location.hpp"

namespace reservoir::detail {

// Why a waiter left the queue without a connection (or `waiting`: it has one,
// or is still queued).
enum class WaitOutcome { waiting, timed_out, closed, unavailable, cancelled };

// An acquirer in the queue. A blocked thread's lives on its stack, an async
// one's on the heap. Every field is read and written under the pool's lock.
template <class SlotT>
struct Waiter {
    Waiter* prev = nullptr;
    Waiter* next = nullptr;  // also links the settled async waiters still to finish
    time_point since{};      // when it began to wait
    time_point deadline{};   // when it gives up
    time_point due{};        // when its hand-off is due (set when queued)
    SlotT* slot = nullptr;   // the connection handed to this waiter
    WaitOutcome outcome = WaitOutcome::waiting;
    duration waited{};          // when timed out or cancelled: for how long, and the error's text
    std::string message;        // (written by whoever settled it so)
    bool woken = false;         // woken to claim an idle connection, and has not run yet
    bool barged = false;        // lost a claim to a newcomer: not woken again before its hand-off is due
    bool async = false;         // settling queues it to be finished; no thread to wake
    bool stop_pending = false;  // stopped while out of the queue (not yet queued, or being checked out)

    bool settled() const noexcept { return slot || outcome != WaitOutcome::waiting; }
};

// What a waiter's std::stop_callback runs: the pool's cancel, through a
// function pointer so that the queue need not know the pool's type.
template <class SlotT>
struct CancelOnStop {
    void (*cancel)(void* pool, Waiter<SlotT>& w) noexcept;
    void* pool;
    Waiter<SlotT>* waiter;
    // May destroy this very object (the cancel finishes the waiter): nothing after the call.
    void operator()() const noexcept { cancel(pool, *waiter); }
};

// Registered only for a waiter that may be cancelled and must queue.
template <class SlotT>
using StopHook = std::optional<std::stop_callback<CancelOnStop<SlotT>>>;

// A queued async_acquire: a callback in place of a sleeping thread. Settled
// under the lock like any waiter, then finished (checked out, its callback
// run) outside it.
template <class SlotT>
struct AsyncWaiter : Waiter<SlotT> {
    explicit AsyncWaiter(const source_location& w) noexcept : where(w) { this->async = true; }
    AsyncWaiter(const AsyncWaiter&) = delete;
    AsyncWaiter& operator=(const AsyncWaiter&) = delete;
    virtual ~AsyncWaiter() = default;
    virtual void finish(SlotT* slot, std::exception_ptr error) noexcept = 0;
    source_location where;
    StopHook<SlotT> on_stop;  // destroyed outside the pool's lock before the callback runs
};

template <class SlotT, class F>
struct AsyncCall final : AsyncWaiter<SlotT> {
    AsyncCall(F&& f, const source_location& w) : AsyncWaiter<SlotT>(w), done(std::move(f)) {}
    void finish(SlotT* slot, std::exception_ptr error) noexcept override { done(slot, std::move(error)); }
    F done;
};

template <class SlotT>
class WaitQueue {
public:
    using W = Waiter<SlotT>;

    WaitQueue(duration handoff_after, double patience_factor) noexcept
        : handoff_after_(handoff_after), patience_factor_(patience_factor) {}
    WaitQueue(const WaitQueue&) = delete;
    WaitQueue& operator=(const WaitQueue&) = delete;

    W* head() const noexcept { return head_; }
    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t waiting() const noexcept { return waiting_; }
    std::size_t retrying() const noexcept { return retrying_; }  // woken to claim, not yet run

    // ---- links ------------------------------------------------------------------

    // True when `w` is the head now: the caller serves it (serve_head).
    // Its hand-off falls due `patience` after `since` (see the top).
    bool enqueue(W& w) noexcept {
        RESERVOIR_ASSERT(!w.prev && !w.next && head_ != &w, "a waiter is queued twice");
        w.due = w.since + patience(waiting_ + 1);
        RESERVOIR_ASSERT(!tail_ || !tail_->next, "the waiter queue's tail has a successor");
        w.prev = tail_;
        (tail_ ? tail_->next : head_) = &w;
        tail_ = &w;
        ++waiting_;
        return head_ == &w;
    }

    // An async waiter whose connection failed its check keeps its place: first in line.
    void requeue_front(W& w) noexcept {
        RESERVOIR_ASSERT(!w.prev && head_ != &w && !w.woken, "a waiter requeued while still queued");
        w.slot = nullptr;
        w.next = head_;
        (head_ ? head_->prev : tail_) = &w;
        head_ = &w;
        ++waiting_;
    }

    void unlink(W& w) noexcept {
        RESERVOIR_ASSERT((w.prev ? w.prev->next : head_) == &w && (w.next ? w.next->prev : tail_) == &w,
                         "a waiter unlinked from the queue is not linked where its neighbours say");
        RESERVOIR_ASSERT(waiting_ > 0, "more waiters unlinked than queued");
        if (w.woken) {  // its wake-up is moot now
            w.woken = false;
            --retrying_;
        }
        (w.prev ? w.prev->next : head_) = w.next;
        (w.next ? w.next->prev : tail_) = w.prev;
        w.prev = w.next = nullptr;
        --waiting_;
    }

    W* pop_front() noexcept {
        W* w = head_;
        if (w) unlink(*w);
        return w;
    }

    bool queued(const W& w) const noexcept { return w.prev || head_ == &w; }

    // Takes a still-queued waiter out of the queue (it gave up); false if it
    // was settled already, so its result stands, or is not in the queue (not
    // yet queued, or a thread that claimed a connection itself). When it was
    // the head, the caller serves the new head, whose needs may differ.
    bool cancel(W& w) noexcept {
        if (w.settled() || !queued(w)) return false;
        unlink(w);
        return true;
    }

    // ---- settling -----------------------------------------------------------------

    // Gives an unlinked waiter its result. True for an async waiter, which
    // joins the list to finish (take_settled); a thread's the caller wakes.
    bool settle(W& w, SlotT* slot, WaitOutcome outcome) noexcept {
        RESERVOIR_ASSERT(!w.prev && head_ != &w, "a waiter settled while still queued");
        w.slot = slot;
        w.outcome = outcome;
        if (!w.async) return false;
        // An async waiter settled again after a failed check (the pool closed
        // before it was requeued) may still link the list it was finished from.
        w.next = nullptr;
        *settled_end_ = &w;
        settled_end_ = &w.next;
        return true;
    }

    // The settled async waiters, oldest first, linked by `next`.
    W* take_settled() noexcept {
        settled_end_ = &settled_;
        return std::exchange(settled_, nullptr);
    }

    // ---- the rules ------------------------------------------------------------------

    // The gate rule: the head needs a release's help (see the top).
    bool head_needs_help() const noexcept {
        if (!head_) return false;
        return handoff_after_.count() == 0 || (!head_->barged && !head_->woken);
    }

    // The hand-off rule for one waiter. `now` is a callable giving the time,
    // read only when the rule needs it: most calls (no waiter, an async one,
    // strict FIFO) need none, and a precise clock read is most of a release.
    template <class Now>
    bool hand_off_now(const W& w, Now&& now) const {
        return w.async || handoff_after_.count() == 0 || now() >= w.due;
    }

    enum class Release { hand_over, wake_head, leave_idle };
    struct ReleaseDecision {
        Release what;
        W* waiter;                // handed the connection (unlinked), or to wake
        bool serve_next = false;  // hand_over: the next head may need help now
    };

    // The hand-off rule for a connection returned while the pool is open.
    // On hand_over the waiter is unlinked; the caller gives it the slot and
    // settles it. On wake_head the caller wakes it (it is marked woken).
    template <class Now>
    ReleaseDecision on_release(Now&& now) noexcept {
        W* w = head_;
        if (w && hand_off_now(*w, now)) {
            // A head that needed help leaves no connection idle (serve_head):
            // the next one needs only the gate, which is up.
            const bool idle_possible = w->barged || w->woken;
            unlink(*w);
            return {Release::hand_over, w, idle_possible};
        }
        if (w && !w->barged && wake(*w)) return {Release::wake_head, w};
        return {Release::leave_idle, nullptr};
    }

    // Marks a queued waiter woken to claim an idle connection; false if it
    // already was (the caller then wakes no one).
    bool wake(W& w) noexcept {
        if (w.woken) return false;
        w.woken = true;
        ++retrying_;
        return true;
    }

    // Why a queued thread may try to claim a connection now.
    enum class Turn { none, woken, due };

    // Consumes a wake-up; else, for a barged waiter, whether its hand-off is due.
    template <class Now>
    Turn take_turn(W& w, Now&& now) noexcept {
        if (w.woken) {
            RESERVOIR_ASSERT(retrying_ > 0, "more wake-ups taken than given");
            w.woken = false;
            --retrying_;
            return Turn::woken;
        }
        return w.barged && now() >= w.due ? Turn::due : Turn::none;
    }

    // A waiter found nothing to claim on its turn. Woken and beaten to it by a
    // newcomer, it sleeps until its hand-off is due rather than be woken by
    // every release; once due, releases hand their connection straight over.
    // True when the caller must serve the head (it needs help again).
    bool missed(W& w, Turn turn) noexcept {
        w.barged = turn == Turn::woken;
        return turn == Turn::due;
    }

    // When a queued thread wakes by itself: its deadline, or its hand-off if barged.
    time_point wake_at(const W& w) const noexcept { return w.barged ? std::min(w.due, w.deadline) : w.deadline; }

    // ---- the pace --------------------------------------------------------------------

    // Whether the caller should sample the pool's lends (sample_pace) before queueing.
    bool pace_sample_due(time_point now) const noexcept {
        return handoff_after_.count() != 0 && now - paced_at_ >= pace_window;
    }

    // Records the pool's total lends at `now`. A pace measured over a gap
    // longer than pace_stale (an idle pool) says nothing of the load that
    // queues now: until the next sample, patience is handoff_after.
    void sample_pace(time_point now, std::uint64_t lends) noexcept {
        const duration gap = now - paced_at_;
        const bool fresh = paced_at_ != time_point{} && gap > duration::zero() && gap <= pace_stale;
        const double rate = fresh ? static_cast<double>(lends - lends_at_pace_) / static_cast<double>(gap.count()) : 0;
        lends_per_tick_ = fresh && lends_per_tick_ > 0 ? lends_per_tick_ + (rate - lends_per_tick_) / 4 : rate;
        paced_at_ = now;
        lends_at_pace_ = lends;
    }

    // How long the waiter at `position` (1 = the head) may be passed over:
    // patience_factor times what a strict FIFO would make it wait at the
    // pool's pace, and never less than handoff_after.
    duration patience(std::size_t position) const noexcept {
        if (handoff_after_.count() == 0 || lends_per_tick_ <= 0) return handoff_after_;
        const double fifo = static_cast<double>(position) / lends_per_tick_;
        const double ticks = std::min(fifo * patience_factor_, static_cast<double>(max_patience.count()));
        return std::max(handoff_after_, duration(static_cast<duration::rep>(ticks)));
    }

    // Unlinks every waiter whose deadline is at or before `now` and records
    // how long it waited. Returns them in queue order, linked by `next`, for
    // the caller to settle; `new_head` when the head changed (the caller
    // serves the new one).
    struct TimedOut {
        W* first;
        bool new_head;
    };
    TimedOut time_out_due(time_point now) noexcept {
        const W* const head = head_;
        W* first = nullptr;
        W** end = &first;
        for (W* w = head_; w;) {
            W* const next = w->next;
            if (w->deadline <= now) {
                w->waited = now - w->since;
                unlink(*w);
                *end = w;
                end = &w->next;
            }
            w = next;
        }
        return {first, head_ != head};
    }

    // The earliest deadline of a queued async waiter (workers keep those).
    time_point earliest_async_deadline() const noexcept {
        time_point at = time_point::max();
        for (const W* w = head_; w; w = w->next)
            if (w->async) at = std::min(at, w->deadline);
        return at;
    }

    static constexpr duration pace_window = std::chrono::milliseconds(2);
    static constexpr duration pace_stale = std::chrono::milliseconds(50);
    static constexpr duration max_patience = std::chrono::seconds(1);

private:
    const duration handoff_after_;
    const double patience_factor_;
    time_point paced_at_{};
    std::uint64_t lends_at_pace_ = 0;
    double lends_per_tick_ = 0;  // 0: unknown
    W* head_ = nullptr;  // oldest
    W* tail_ = nullptr;
    std::size_t waiting_ = 0;
    std::size_t retrying_ = 0;
    W* settled_ = nullptr;  // settled async waiters to finish after the lock
    W** settled_end_ = &settled_;
};

}  // namespace reservoir::detail
