#pragma once
// The engine's decisions, as pure functions and values: given counts, state
// and the time, what to do. Nothing here locks, reads a clock, or does I/O;
// the pool's orchestrator (pool_state.hpp) asks and acts. Each is unit-tested
// without threads (tests/unit/test_decisions.cpp).
//
//   need_connect        whether to open a connection now
//   Breaker             the circuit breaker: closed, open, half-open
//   ConnectState        connects in flight, the backoff, the breaker, their counters
//   idle_verdict        what housekeeping does with one idle connection
//   *_text              the texts of the pool's errors

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "../assert.hpp"
#include "../clock.hpp"
#include "../concepts.hpp"
#include "../histogram.hpp"
#include "../stats.hpp"

namespace reservoir::detail {

// `resized`: above a max lowered at run time (Pool::resize, or a sizing policy's max_size()).
enum class CloseReason { idle_timeout, lifetime, broken, discarded, reset_failed, evicted, shutdown, resized };

inline constexpr std::string_view to_string(CloseReason why) noexcept {
    constexpr std::string_view names[] = {"idle_timeout", "lifetime", "broken",  "discarded",
                                          "reset_failed", "evicted",  "shutdown", "resized"};
    return names[static_cast<int>(why)];
}

inline void count_close(CloseCounts& closes, CloseReason why) noexcept {
    switch (why) {
        case CloseReason::idle_timeout: ++closes.idle_timeout; break;
        case CloseReason::lifetime: ++closes.lifetime; break;
        case CloseReason::broken: ++closes.broken; break;
        case CloseReason::discarded: ++closes.discarded; break;
        case CloseReason::reset_failed: ++closes.reset_failed; break;
        case CloseReason::evicted:
        case CloseReason::resized:  // closed at the operator's request, as evict_all's are
            ++closes.evicted;
            break;
        case CloseReason::shutdown: ++closes.shutdown; break;
    }
}

// ---- the circuit breaker ------------------------------------------------------
//
//   closed     connecting as usual, with a backoff after each failure;
//   open       `threshold` connects in a row failed: no dialing until the
//              cooldown ends, and an acquire that no open connection can serve
//              fails at once with PoolUnavailable;
//   half_open  the cooldown is over: one probe connect, started as soon as
//              anyone needs a connection (a waiter, or the pool below min).
//              Acquirers queue for its outcome: success closes the breaker and
//              serves them; failure opens it again, and the pool fails the
//              waiters no open connection can serve, at once.
// Open turns half-open by the clock alone, so state(now) derives it from the
// end of the cooldown: no timer has to fire for it.
class Breaker {
public:
    // What a failure did to the breaker.
    enum class Trip { none, opened, reopened };

    Breaker(unsigned threshold, duration cooldown) noexcept : threshold_(threshold), cooldown_(cooldown) {
        RESERVOIR_ASSERT(cooldown.count() >= 0, "the breaker's cooldown is negative");
    }

    BreakerState state(time_point now) const noexcept {
        if (open_ && now >= until_) return BreakerState::half_open;
        return open_ ? BreakerState::open : BreakerState::closed;
    }

    // A connect failed. Opens after `threshold` consecutive failures (0: never);
    // a failure while open or half-open (a failed probe) re-opens it for another cooldown.
    Trip on_failure(time_point now) noexcept {
        ++failures_;
        if (threshold_ == 0 || failures_ < threshold_) return Trip::none;
        const bool opening = !open_;
        if (opening) ++trips_;
        open_ = true;
        until_ = now + cooldown_;
        return opening ? Trip::opened : Trip::reopened;
    }

    // A connect succeeded; true when that closed an open (or half-open) breaker.
    bool on_success() noexcept {
        failures_ = 0;
        return std::exchange(open_, false);
    }

    unsigned consecutive_failures() const noexcept { return failures_; }
    std::uint64_t trips() const noexcept { return trips_; }
    // How long until the cooldown ends (zero once it has).
    duration retry_in(time_point now) const noexcept { return std::max(duration::zero(), until_ - now); }
    // The end of the cooldown, when an open breaker turns half-open.
    time_point cooldown_end() const noexcept { return until_; }

private:
    unsigned threshold_;
    duration cooldown_;
    bool open_ = false;
    time_point until_{};
    unsigned failures_ = 0;
    std::uint64_t trips_ = 0;
};

// ---- connects -------------------------------------------------------------------

struct ConnectInputs {
    std::size_t live;            // connections open
    std::size_t connecting;      // connects in flight
    std::size_t waiting;         // waiters queued
    std::size_t retrying;        // of which woken to claim an idle connection
    std::size_t min;             // the sizing policy's min, now
    std::size_t max;             // the sizing policy's max, now (may be below live + connecting while shrinking)
    std::size_t max_connecting;  // connects at once
    bool closing;
};

// A connect is wanted when someone waits and fewer connects are in flight
// than waiters, or when the pool is below min; never beyond max, never more
// than max_connecting at once, and, with the breaker closed, not before the
// backoff after a failure (retry_at) has passed. Min and max are read at each
// decision, so a max lowered below live + connecting (shrinking) starts no
// connect until enough have closed, and a max raised lets waiters' connects start.
inline bool need_connect(const ConnectInputs& in, BreakerState breaker, time_point now, time_point retry_at) noexcept {
    RESERVOIR_ASSERT(in.retrying <= in.waiting, "more waiters woken than queued");
    if (in.closing || in.connecting >= in.max_connecting) return false;
    const std::size_t open = in.live + in.connecting;
    if (open >= in.max) return false;
    switch (breaker) {
        case BreakerState::closed:
            if (now < retry_at) return false;  // the backoff after a failed connect
            break;
        case BreakerState::open: return false;
        case BreakerState::half_open:
            // The probe: one at a time, and at once. The cooldown was its
            // backoff; waiting for retry_at as well (up to retry_max) left
            // queued acquirers with no connect in flight until they timed out.
            if (in.connecting > 0) return false;
            break;
    }
    // Woken waiters have an idle connection to claim: they need no connect.
    return in.waiting - in.retrying > in.connecting || open < in.min;
}

// Connects in flight, the backoff and the breaker, with their counters: the
// state need_connect reads, and what a connect's outcome changes.
struct ConnectState {
    explicit ConnectState(unsigned breaker_threshold, duration breaker_cooldown) noexcept
        : breaker(breaker_threshold, breaker_cooldown) {}

    std::size_t live = 0;        // slots holding a connection
    std::size_t connecting = 0;  // slots with a connect in flight
    time_point retry_at{};       // no connect before this (backoff)
    Breaker breaker;
    std::string last_error;  // empty once a connect succeeds
    std::uint64_t connects = 0;
    std::uint64_t failures = 0;
    Histogram connect_time;

    void started() noexcept { ++connecting; }

    // True when the breaker was not closed (it is now).
    bool succeeded(duration took, bool record_time) noexcept {
        RESERVOIR_ASSERT(connecting > 0, "a connect ends that never started");
        --connecting;
        ++live;
        ++connects;
        if (record_time) connect_time.record(took);
        retry_at = time_point{};  // the backoff is for failures: the next waiter's connect need not wait
        last_error.clear();
        return breaker.on_success();
    }

    // The backoff is the health policy's for the failures so far, this one
    // included; `random` feeds its jitter.
    template <class H>
    Breaker::Trip failed(time_point end, std::string error, const H& health, std::uint64_t random) {
        RESERVOIR_ASSERT(connecting > 0, "a connect ends that never started");
        --connecting;
        ++failures;
        last_error = std::move(error);
        const Breaker::Trip trip = breaker.on_failure(end);
        retry_at = end + health.retry_delay(breaker.consecutive_failures(), random);
        return trip;
    }

    void closed_one() noexcept {
        RESERVOIR_ASSERT(live > 0, "more connections closed than opened");
        --live;
    }
};

// ---- housekeeping ------------------------------------------------------------------

// What housekeeping does with one idle connection.
struct IdleVerdict {
    std::optional<CloseReason> close;  // close it, for this reason
    bool keepalive = false;            // else ping it
    bool keep() const noexcept { return !close && !keepalive; }
};

// Closed at once while the pool holds more than a max lowered at run time
// (`open`: live + connecting); retired by the health policy (lifetime, uses);
// then reaped if idle for idle_timeout while the pool holds more than min;
// then a keepalive ping if the health policy wants one.
template <class H>
IdleVerdict idle_verdict(const H& health, const ConnectionInfo& info, time_point now, std::size_t live,
                         std::size_t open, std::size_t min, std::size_t max, duration idle_timeout) noexcept {
    if (open > max) return {CloseReason::resized, false};
    if (health.retire(info, now)) return {CloseReason::lifetime, false};
    if (live > min && now - info.last_used >= idle_timeout) return {CloseReason::idle_timeout, false};
    return {std::nullopt, health.keepalive_due(info, now)};
}

// ---- the texts of errors -------------------------------------------------------------

inline std::string ms_text(duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

// The pool's state, as every error describes it.
struct PoolPicture {
    std::size_t total, idle, in_use, waiting, connecting, max;
    std::string_view last_connect_error;
};

inline std::string describe(const PoolPicture& p) {
    std::string text = "pool: total=" + std::to_string(p.total) + " idle=" + std::to_string(p.idle) +
                       " in_use=" + std::to_string(p.in_use) + " waiting=" + std::to_string(p.waiting) +
                       " connecting=" + std::to_string(p.connecting) + " max=" + std::to_string(p.max);
    if (!p.last_connect_error.empty()) text.append("; last connect error: ").append(p.last_connect_error);
    return text;
}

inline std::string timeout_text(duration waited, const std::string& pool) {
    return "reservoir: acquire timed out after " + ms_text(waited) + " (" + pool + ")";
}

inline std::string saturated_text(std::size_t waiting, std::size_t max_waiters, const std::string& pool) {
    RESERVOIR_ASSERT(max_waiters != 0 && waiting >= max_waiters, "saturated with room left in the queue");
    return "reservoir: pool saturated: " + std::to_string(waiting) +
           " acquirers already waiting (max_waiters = " + std::to_string(max_waiters) + "); " + pool;
}

inline std::string unavailable_text(unsigned failures, duration retry_in, const std::string& pool) {
    return "reservoir: pool unavailable: circuit breaker open after " + std::to_string(failures) +
           " consecutive connect failures; next attempt in " + ms_text(retry_in) + " (" + pool + ")";
}

inline constexpr const char* closed_text = "reservoir: pool is closed (shutdown has begun)";

}  // namespace reservoir::detail
