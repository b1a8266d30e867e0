#pragma once
// Cancelling a running statement without blocking the caller. libpq 15's
// PQcancel is blocking: it opens a second connection and waits until the
// server closes it, with no timeout, so on a network that accepts and then
// forwards nothing it blocks until traffic resumes. libpq 15 has no
// non-blocking cancel (PQcancelStart came in 17), and the cancel key it would
// need to send the request itself is private. So each request runs PQcancel
// on a detached thread of its own, and the caller only waits for it as long
// as its own deadline allows.
//
// Detaching is safe: a sender holds only its PGcancel copy (PQgetCancel; no
// PGconn, which the caller may close meanwhile), a shared state that it
// co-owns, and a process-wide counter with static storage and a trivial
// destructor. PQcancel itself touches no libpq global state (libpq documents
// it as safe from another thread, even from a signal handler) and never uses
// SSL, so a sender still blocked at exit holds only its own memory and socket,
// and the exit ends it. It does not stay blocked for ever on a real outage:
// PQcancel applies the connection's keepalives and tcp_user_timeout.

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "../../core/clock.hpp"
#include "../../core/stop.hpp"

namespace reservoir::pg::detail {

// Senders in flight in the process, at most max_cancels_in_flight: each blocked
// one is a thread and a socket. Past that, no cancel is sent (the statement is
// then given up with its connection), which only happens when that many
// cancels are already stuck on an unreachable network.
inline constexpr int max_cancels_in_flight = 64;
inline std::atomic<int> cancels_in_flight{0};

// The cancel requests of one timed-out statement, one at a time.
class CancelSender {
public:
    CancelSender() = default;
    CancelSender(const CancelSender&) = delete;
    CancelSender& operator=(const CancelSender&) = delete;

    // Starts a cancel request for the statement running on `c`. False when
    // none could be started (no cancel key, out of memory or threads, or too
    // many in flight); never blocks.
    bool start(PGconn* c) noexcept {
        if (busy()) return false;
        if (cancels_in_flight.fetch_add(1) >= max_cancels_in_flight) {
            cancels_in_flight.fetch_sub(1);
            return false;
        }
        PGcancel* cancel = PQgetCancel(c);
        try {
            if (!cancel) throw std::bad_alloc();
            auto state = std::make_shared<State>();
            std::thread([cancel, state]() mutable {
                char error[256];
                PQcancel(cancel, error, sizeof error);
                PQfreeCancel(cancel);
                {
                    const std::lock_guard lock(state->mutex);
                    state->done = true;
                }
                state->done_cv.notify_all();
                state.reset();
                cancels_in_flight.fetch_sub(1);  // last: once it is 0, no sender runs any of our code
            }).detach();
            state_ = std::move(state);
            return true;
        } catch (...) {
            if (cancel) PQfreeCancel(cancel);
            cancels_in_flight.fetch_sub(1);
            return false;
        }
    }

    // A request is in flight: the server has not yet confirmed it (by closing
    // the cancel connection). A statement that ends meanwhile must not be
    // followed by another on the same session, which the late cancel could hit.
    bool busy() const noexcept {
        if (!state_) return false;
        const std::lock_guard lock(state_->mutex);
        return !state_->done;
    }

    // Waits until no request is in flight; false at the deadline (or, on a
    // pool's worker, once the pool is being destroyed).
    bool wait(time_point deadline) const noexcept {
        if (!state_) return true;
        std::unique_lock lock(state_->mutex);
        // In slices, so that a pool's worker sees a stop request.
        while (!state_->done) {
            const time_point now = std::chrono::steady_clock::now();
            if (now >= deadline || stop_requested()) return false;
            state_->done_cv.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(20)));
        }
        return true;
    }

private:
    struct State {
        std::mutex mutex;
        std::condition_variable done_cv;
        bool done = false;
    };
    std::shared_ptr<State> state_;
};

}  // namespace reservoir::pg::detail
