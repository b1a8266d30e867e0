#pragma once
// PoolOptions: every setting of the pool and of the default policies, as one
// aggregate with documented defaults. validate() runs once, in the pool's
// constructor, and names the field and the value it rejects.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "error.hpp"
#include "events.hpp"

namespace reservoir {

using namespace std::chrono_literals;

struct PoolOptions {
    // Sizing (used by sizing::Dynamic)
    std::size_t min_size = 2;            // idle floor: opened at start, kept open
    std::size_t max_size = 20;           // hard ceiling, counting connects in flight
    std::chrono::milliseconds idle_timeout = 30s;  // idle connections above min close after this
    // Slots allocated at construction: the most that Pool::resize() (or a sizing
    // policy whose max_size() changes) can raise max to. Each slot costs about
    // 3 kB whether used or not. 0 = max_size (the pool cannot grow).
    std::size_t capacity = 0;

    // Acquiring
    std::chrono::milliseconds acquire_timeout = 5s;  // default deadline of acquire()
    std::size_t max_waiters = 0;         // waiters allowed to queue; 0 = no limit
    // Waiters are served in order. A returned connection goes straight to the
    // oldest waiter once its hand-off is due; before that it is left idle for
    // the woken waiter, and a thread arriving at that moment may take it
    // first, which saves a context switch per hand-off under contention.
    // A waiter's hand-off is due after handoff_patience times what a strict
    // FIFO would make it wait at the pool's current pace (its place in line
    // over the lends a second), and never before handoff_after.
    // handoff_after = 0: always straight to the oldest waiter (strict FIFO).
    std::chrono::milliseconds handoff_after = 1ms;
    double handoff_patience = 1.75;

    // Connecting
    std::chrono::milliseconds connect_timeout = 10s;  // deadline to open one connection
    std::size_t max_connecting = 2;      // connects in flight at once (background threads)

    // Health (used by health::Default)
    std::chrono::milliseconds validate_after_idle = 500ms;  // ping on borrow if idle longer; 0 = always
    std::chrono::milliseconds keepalive_interval = 0ms;     // ping idle connections this often; 0 = off
    std::chrono::milliseconds max_lifetime = 30min;         // retire connections this old; 0 = never
    double lifetime_jitter = 0.1;        // each connection's lifetime is shortened by up to this fraction
    std::uint64_t max_uses = 0;          // retire after this many leases; 0 = no limit
    std::chrono::milliseconds retry_initial = 50ms;  // first backoff after a failed connect
    std::chrono::milliseconds retry_max = 5s;        // backoff cap (full jitter below it)

    // Circuit breaker: after this many consecutive connect failures the pool
    // stops dialing for breaker_cooldown, and an acquire that no open
    // connection can serve fails at once with PoolUnavailable. Then it is
    // half-open: one probe connect starts as soon as a connection is wanted
    // (not after the connect backoff), and acquirers wait for its outcome:
    // success closes the breaker and serves them, failure opens it again and
    // fails them at once with PoolUnavailable. 0 = no breaker.
    unsigned breaker_threshold = 5;
    std::chrono::milliseconds breaker_cooldown = 1s;

    // Release
    std::chrono::milliseconds reset_timeout = 5s;  // bound on cleaning a returned connection

    // Observability
    std::shared_ptr<EventListener> listener = nullptr;  // receives events; null = none
    std::chrono::milliseconds leak_threshold = 0ms;  // report leases held longer; 0 = off
    bool latency_histograms = true;  // acquire wait and hold time, per slot (no lock, no allocation)

    // Housekeeping
    std::chrono::milliseconds housekeeping_interval = 1s;  // reaping, keepalive, lifetime checks
    bool background_threads = true;  // false: no threads; acquire connects inline and the
                                     // caller runs maintain() (deterministic tests)

    void validate() const;
};

namespace detail {

inline constexpr std::size_t max_pool_size = 10000;

[[noreturn]] inline void bad_option(const char* field, const std::string& value, const char* why) {
    throw ConfigError(std::string("reservoir: invalid pool option ") + field + " = " + value + ": " + why);
}

inline void require_non_negative(const char* field, std::chrono::milliseconds v) {
    if (v.count() < 0) bad_option(field, std::to_string(v.count()) + "ms", "must not be negative");
}

// The one check of a pool's sizes, whether they come from PoolOptions or from
// a SizingPolicy (the pool checks its policy's, which need not be the options').
inline void validate_sizes(std::size_t min_size, std::size_t max_size) {
    if (max_size == 0 || max_size > max_pool_size)
        bad_option("max_size", std::to_string(max_size),
                   ("must be between 1 and " + std::to_string(max_pool_size)).c_str());
    if (min_size > max_size)
        bad_option("min_size", std::to_string(min_size),
                   ("must not exceed max_size (" + std::to_string(max_size) + ")").c_str());
}

// A pool's slots (PoolOptions::capacity): at least its sizing policy's
// max_size at construction, at most max_pool_size. Checked by the pool, which
// knows its policy's max.
inline void validate_capacity(std::size_t capacity, std::size_t max_size) {
    if (capacity < max_size || capacity > max_pool_size)
        bad_option("capacity", std::to_string(capacity),
                   ("must be between max_size (" + std::to_string(max_size) + ") and " +
                    std::to_string(max_pool_size))
                       .c_str());
}

}  // namespace detail

inline void PoolOptions::validate() const {
    using detail::bad_option;
    detail::validate_sizes(min_size, max_size);
    if (max_connecting == 0) bad_option("max_connecting", "0", "must be at least 1");
    detail::require_non_negative("idle_timeout", idle_timeout);
    detail::require_non_negative("acquire_timeout", acquire_timeout);
    detail::require_non_negative("handoff_after", handoff_after);
    detail::require_non_negative("connect_timeout", connect_timeout);
    detail::require_non_negative("validate_after_idle", validate_after_idle);
    detail::require_non_negative("keepalive_interval", keepalive_interval);
    detail::require_non_negative("max_lifetime", max_lifetime);
    detail::require_non_negative("reset_timeout", reset_timeout);
    detail::require_non_negative("breaker_cooldown", breaker_cooldown);
    detail::require_non_negative("leak_threshold", leak_threshold);
    if (connect_timeout.count() == 0) bad_option("connect_timeout", "0ms", "must be positive");
    if (!(handoff_patience >= 1.0 && handoff_patience <= 100.0))
        bad_option("handoff_patience", std::to_string(handoff_patience), "must be between 1 and 100");
    if (!(lifetime_jitter >= 0.0 && lifetime_jitter < 1.0))
        bad_option("lifetime_jitter", std::to_string(lifetime_jitter), "must be in [0, 1)");
    if (retry_initial.count() <= 0)
        bad_option("retry_initial", std::to_string(retry_initial.count()) + "ms", "must be positive");
    if (retry_max < retry_initial)
        bad_option("retry_max", std::to_string(retry_max.count()) + "ms", "must be at least retry_initial");
    if (housekeeping_interval.count() <= 0)
        bad_option("housekeeping_interval", std::to_string(housekeeping_interval.count()) + "ms",
                   "must be positive");
}

}  // namespace reservoir
