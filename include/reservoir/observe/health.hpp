#pragma once
// reservoir::check_health: a health verdict for a pool, for a /health endpoint.
//
//   reservoir::HealthMonitor monitor;                 // one per pool, kept across checks
//   auto report = reservoir::check_health(pool, monitor, std::chrono::seconds(2));
//   respond(report.http_status(), reservoir::to_json(report));
//
// A check takes a stats snapshot, then probes: it acquires a lease within the
// deadline and pings the server through the driver, timing the round trip. The
// snapshot is taken before the probe, so the probe's own lease never shows in
// it. The verdict is the worst of these rules (defaults from the product's table):
//
//   rule                                                   default   verdict
//   circuit breaker open                                             unhealthy
//   no connection within the deadline (acquire threw)                unhealthy
//   ping failed (returned false or threw)                            unhealthy
//   utilization in_use / max above max_utilization        75%       unhealthy
//   circuit breaker half-open (probing after failures)               degraded
//   more acquirers waiting than max_waiting                5         degraded
//   no idle connection, while some are in use or waited
//     for, for max_idle_exhausted or longer                30 s      degraded
//   ping round trip above max_ping                         500 ms    degraded
//
// "degraded" is still serving: the report's ok() and the JSON's "healthy" are
// true for it, and http_status() is 200, so that a load balancer does not pull
// instances out for load (which would push the load onto the others). Only
// "unhealthy" gives false and 503.
//
// The idle rule needs memory across checks, which the monitor keeps: since
// when idle has been exhausted, as seen by the checks (it samples: an idle
// connection that came and went between two checks is not seen). A pool with
// no connection and nothing in use or waiting (min_size 0, no traffic) is not
// exhausted, only quiet.
//
// The monitor's clock times the ping and the idle rule; give it the pool's
// clock (SteadyClock for both by default; a ManualClock in tests), since the
// ping's deadline is a time point on that clock.
//
// Thread safety: check_health may run from several threads at once with one
// monitor (its memory is one atomic). assess_health is a pure function.

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/clock.hpp"
#include "../core/error.hpp"
#include "../core/stats.hpp"
#include "json.hpp"

namespace reservoir {

using namespace std::chrono_literals;

// When a pool stops being healthy. Validated when a monitor is built.
struct HealthThresholds {
    // in_use / max_size strictly above this: unhealthy. In [0, 1]; 1 = off.
    double max_utilization = 0.75;
    // More acquirers waiting than this: degraded. 0 = any waiter degrades.
    std::size_t max_waiting = 5;
    // No idle connection, while some are in use or waited for, for this long
    // or longer: degraded. 0 = at the first check that sees it.
    std::chrono::milliseconds max_idle_exhausted = 30s;
    // A ping slower than this: degraded. 0 = any ping slower than nothing.
    std::chrono::milliseconds max_ping = 500ms;

    // Throws ConfigError naming the first invalid field.
    void validate() const {
        if (!(max_utilization >= 0.0 && max_utilization <= 1.0))
            throw ConfigError("reservoir: invalid health threshold max_utilization = " +
                              std::to_string(max_utilization) + ": must be in [0, 1]");
        if (max_idle_exhausted.count() < 0)
            throw ConfigError("reservoir: invalid health threshold max_idle_exhausted = " +
                              std::to_string(max_idle_exhausted.count()) + "ms: must not be negative");
        if (max_ping.count() < 0)
            throw ConfigError("reservoir: invalid health threshold max_ping = " + std::to_string(max_ping.count()) +
                              "ms: must not be negative");
    }
};

struct HealthReport {
    enum Status { healthy, degraded, unhealthy };  // in order of severity

    Status status = healthy;
    std::vector<std::string> reasons;  // one per rule that fired, worst first; empty when healthy
    std::chrono::nanoseconds ping{};   // the probe's ping round trip; zero when none ran
    bool pinged = false;               // a ping ran (a lease was acquired)
    PoolStats stats;                   // the snapshot the verdict was made from

    // Still serving (healthy or degraded).
    bool ok() const noexcept { return status != unhealthy; }
    // 200 when ok(), else 503.
    int http_status() const noexcept { return ok() ? 200 : 503; }
};

inline constexpr std::string_view to_string(HealthReport::Status s) noexcept {
    switch (s) {
        case HealthReport::healthy: return "healthy";
        case HealthReport::degraded: return "degraded";
        case HealthReport::unhealthy: return "unhealthy";
    }
    return "unhealthy";
}

// What the probe found.
struct HealthProbe {
    bool connected = false;          // a lease was acquired within the deadline
    bool ping_ok = false;            // and the ping returned true
    std::chrono::nanoseconds ping{};  // the ping's round trip, when connected
    std::string error;               // the exception's message when acquire or ping threw
};

namespace observe_detail {

// x per mille as "80%" / "33.4%".
inline void append_percent(std::string& out, std::uint64_t per_mille) {
    append_fixed(out, per_mille, 1);
    out += '%';
}

inline std::string health_reason(std::string_view a, std::string_view b = {}) {
    std::string r(a);
    if (!b.empty()) {
        r += ": ";
        r += b;
    }
    return r;
}

}  // namespace observe_detail

// The verdict, as a pure function of the thresholds, a stats snapshot, the
// probe and how long idle connections have been exhausted (nullopt: they are
// not). See the table at the top.
inline HealthReport assess_health(const HealthThresholds& t, PoolStats stats, const HealthProbe& probe,
                                  std::optional<std::chrono::nanoseconds> idle_exhausted_for) {
    using observe_detail::append_human_duration;
    using observe_detail::append_uint;
    using observe_detail::health_reason;
    HealthReport r;
    const auto fire = [&r](HealthReport::Status s, std::string reason) {
        if (s > r.status) r.status = s;
        r.reasons.push_back(std::move(reason));
    };

    if (stats.breaker == BreakerState::open)
        fire(HealthReport::unhealthy, health_reason("circuit breaker open", stats.last_connect_error));
    if (!probe.connected)
        fire(HealthReport::unhealthy, health_reason("no connection", probe.error));
    else if (!probe.ping_ok)
        fire(HealthReport::unhealthy, health_reason("ping failed", probe.error));
    if (stats.max > 0 &&
        static_cast<double>(stats.in_use) / static_cast<double>(stats.max) > t.max_utilization) {
        std::string m = "utilization ";
        observe_detail::append_percent(m, (stats.in_use * 1000 + stats.max - 1) / stats.max);  // rounded up
        m += " above ";
        observe_detail::append_percent(m, static_cast<std::uint64_t>(std::llround(t.max_utilization * 1000)));
        m += " (";
        append_uint(m, stats.in_use);
        m += " of ";
        append_uint(m, stats.max);
        m += " in use)";
        fire(HealthReport::unhealthy, std::move(m));
    }
    if (stats.breaker == BreakerState::half_open)
        fire(HealthReport::degraded, "circuit breaker half-open: probing after connect failures");
    if (stats.waiting > t.max_waiting) {
        std::string m;
        append_uint(m, stats.waiting);
        m += " waiting, above ";
        append_uint(m, t.max_waiting);
        fire(HealthReport::degraded, std::move(m));
    }
    if (idle_exhausted_for && *idle_exhausted_for >= t.max_idle_exhausted) {
        std::string m = "no idle connection for ";
        append_human_duration(m, *idle_exhausted_for);
        m += ", limit ";
        append_human_duration(m, t.max_idle_exhausted);
        fire(HealthReport::degraded, std::move(m));
    }
    if (probe.connected && probe.ping_ok && probe.ping > t.max_ping) {
        std::string m = "ping ";
        append_human_duration(m, probe.ping);
        m += " above ";
        append_human_duration(m, t.max_ping);
        fire(HealthReport::degraded, std::move(m));
    }
    r.ping = probe.connected ? probe.ping : std::chrono::nanoseconds::zero();
    r.pinged = probe.connected;
    r.stats = std::move(stats);
    return r;
}

// The thresholds and the memory of one pool's checks. Not copyable (it holds
// the memory); keep one per pool for the pool's life.
template <Clock K = SteadyClock>
class BasicHealthMonitor {
public:
    // Throws ConfigError for invalid thresholds.
    explicit BasicHealthMonitor(HealthThresholds thresholds = {}, K clock = {})
        : thresholds_(thresholds), clock_(std::move(clock)) {
        thresholds_.validate();
    }
    BasicHealthMonitor(const BasicHealthMonitor&) = delete;
    BasicHealthMonitor& operator=(const BasicHealthMonitor&) = delete;

    const HealthThresholds& thresholds() const noexcept { return thresholds_; }
    const K& clock() const noexcept { return clock_; }

    // Records a snapshot taken at `now`: how long idle connections have been
    // exhausted (no idle one while some are in use or waited for), as of the
    // first check that saw it; nullopt when they are not.
    std::optional<std::chrono::nanoseconds> track_idle(const PoolStats& stats, time_point now) noexcept {
        const bool exhausted = stats.idle == 0 && (stats.in_use > 0 || stats.waiting > 0);
        if (!exhausted) {
            since_.store(none, std::memory_order_relaxed);
            return std::nullopt;
        }
        duration::rep since = none;
        if (since_.compare_exchange_strong(since, now.time_since_epoch().count(), std::memory_order_relaxed))
            return std::chrono::nanoseconds::zero();
        const auto elapsed = now - time_point(duration(since));
        return elapsed > duration::zero() ? std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed)
                                          : std::chrono::nanoseconds::zero();
    }

    // track_idle(stats, sampled_at), then assess_health.
    HealthReport assess(PoolStats stats, const HealthProbe& probe, time_point sampled_at) {
        const auto idle_for = track_idle(stats, sampled_at);
        return assess_health(thresholds_, std::move(stats), probe, idle_for);
    }

private:
    static constexpr duration::rep none = std::numeric_limits<duration::rep>::min();

    HealthThresholds thresholds_;
    K clock_;
    std::atomic<duration::rep> since_{none};  // when idle was first seen exhausted; none = it is not
};

using HealthMonitor = BasicHealthMonitor<>;

// Checks `pool` (a Pool or anything with stats(), acquire(duration) and
// driver().ping(conn, deadline)): a stats snapshot, then a lease within
// `deadline` and a ping whose deadline is what is left of it. A connection
// whose ping fails is discarded. Never throws for the pool's or the driver's
// errors: they become reasons (only std::bad_alloc and the like from building
// the report escape).
template <class P, Clock K>
    requires observe_detail::HasStats<P>
HealthReport check_health(P& pool, BasicHealthMonitor<K>& monitor, duration deadline) {
    const time_point start = monitor.clock().now();
    PoolStats stats = pool.stats();
    HealthProbe probe;
    try {
        auto lease = pool.acquire(deadline);
        probe.connected = true;
        const time_point sent = monitor.clock().now();
        try {
            probe.ping_ok = pool.driver().ping(*lease, start + deadline);
        } catch (const std::exception& e) {
            probe.error = e.what();
        } catch (...) {
            probe.error = "unknown exception";
        }
        probe.ping = std::chrono::duration_cast<std::chrono::nanoseconds>(monitor.clock().now() - sent);
        if (!probe.ping_ok) lease.discard();
    } catch (const std::exception& e) {
        probe.error = e.what();
    } catch (...) {
        probe.error = "unknown exception";
    }
    return monitor.assess(std::move(stats), probe, start);
}

// The health endpoint's body:
//   {"healthy":true,"status":"degraded","reasons":["7 waiting, above 5"],"totalConnections":4,
//    "idleConnections":0,"activeConnections":4,"waiting":7,"latencyMs":1.25}
// "healthy" is ok() (true when degraded); "latencyMs" is the ping round trip
// in milliseconds, null when no ping ran.
inline std::string to_json(const HealthReport& r) {
    using observe_detail::append_json_string;
    std::string out;
    std::size_t reason_bytes = 0;
    for (const auto& reason : r.reasons) reason_bytes += reason.size() + 3;
    out.reserve(192 + 2 * reason_bytes);
    observe_detail::JsonObject o(out);
    o.key("healthy") += r.ok() ? "true" : "false";
    append_json_string(o.key("status"), to_string(r.status));
    o.key("reasons") += '[';
    for (std::size_t i = 0; i < r.reasons.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, r.reasons[i]);
    }
    out += ']';
    o.field("totalConnections", r.stats.total);
    o.field("idleConnections", r.stats.idle);
    o.field("activeConnections", r.stats.in_use);
    o.field("waiting", r.stats.waiting);
    if (r.pinged)
        observe_detail::append_ms(o.key("latencyMs"), r.ping);
    else
        o.key("latencyMs") += "null";
    o.close();
    return out;
}

}  // namespace reservoir
