#pragma once
// A consistent snapshot of a pool: gauges and counters.

#include <cstddef>
#include <cstdint>
#include <string>

#include "histogram.hpp"

namespace reservoir {

enum class BreakerState {
    closed,     // connecting normally
    open,       // too many consecutive connect failures: not dialing until the cooldown ends
    half_open,  // cooldown over: the next connect is a probe; success closes it
};

// Why connections were closed.
struct CloseCounts {
    std::uint64_t idle_timeout = 0;  // idle above min for longer than idle_timeout
    std::uint64_t lifetime = 0;      // reached max_lifetime or max_uses
    std::uint64_t broken = 0;        // failed the local check or a ping
    std::uint64_t discarded = 0;     // the borrower called discard()
    std::uint64_t reset_failed = 0;  // could not be cleaned after use
    std::uint64_t evicted = 0;       // closed by evict_all()
    std::uint64_t shutdown = 0;      // closed by shutdown or destruction

    std::uint64_t total() const noexcept {
        return idle_timeout + lifetime + broken + discarded + reset_failed + evicted + shutdown;
    }
};

struct PoolStats {
    // Gauges: every slot is counted once, so total == idle + in_use + resetting.
    std::size_t total = 0;       // open connections
    std::size_t idle = 0;        // ready in the pool
    std::size_t in_use = 0;      // lent out
    std::size_t resetting = 0;   // returned, being cleaned or checked in the background
    std::size_t connecting = 0;  // connects in flight (not in total)
    std::size_t waiting = 0;     // acquirers queued
    std::size_t min = 0;
    std::size_t max = 0;

    // Counters since the pool was created.
    std::uint64_t acquires = 0;          // leases handed out
    std::uint64_t acquire_timeouts = 0;
    std::uint64_t acquire_cancels = 0;  // queued acquires whose std::stop_token was stopped
    std::uint64_t connects = 0;          // connections opened
    std::uint64_t connect_failures = 0;
    CloseCounts closes;
    BreakerState breaker = BreakerState::closed;
    std::uint64_t breaker_trips = 0;  // times the breaker opened
    std::uint64_t leaks = 0;          // leases reported as held past leak_threshold

    // Latencies (empty when latency_histograms is off). Acquire wait is zero
    // on the lock-free path; hold time has the coarse clock's resolution (~4 ms).
    HistogramSnapshot acquire_wait;
    HistogramSnapshot hold_time;
    HistogramSnapshot connect_time;

    std::string last_connect_error;  // empty when the last connect succeeded
};

}  // namespace reservoir
