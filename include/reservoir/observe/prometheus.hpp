#pragma once
// reservoir::to_prometheus: a pool's stats in the Prometheus text exposition
// format, version 0.0.4 (serve it with prometheus_content_type).
//
//   std::string body = reservoir::to_prometheus(pool, {{"pool", "main"}});
//
// Families (every sample carries the caller's labels first):
//   reservoir_connections{state="idle"|"in_use"|"resetting"}  gauge
//   reservoir_connections_connecting, reservoir_waiting          gauges
//   reservoir_pool_min, reservoir_pool_max                       gauges
//   reservoir_acquires_total, reservoir_acquire_timeouts_total,
//   reservoir_acquire_cancels_total, reservoir_connects_total,
//   reservoir_connect_failures_total                             counters
//   reservoir_closes_total{reason="idle_timeout"|"lifetime"|"broken"|"discarded"|
//                          "reset_failed"|"evicted"|"shutdown"}  counter
//   reservoir_breaker_state          gauge: 0 closed, 1 half-open, 2 open (alert on > 0)
//   reservoir_breaker_trips_total, reservoir_leaks_total         counters
//   reservoir_acquire_wait_seconds, reservoir_hold_seconds,
//   reservoir_connect_seconds, [reservoir_query_seconds]         histograms
//
// Histograms. The pool records latencies in fine log-linear buckets (four per
// power of two of nanoseconds, see core/histogram.hpp); they are exposed on the
// fixed `le` boundaries in histogram_bounds (0.1 ms to 10 s in 1-2.5-5 steps,
// then +Inf). A fine bucket counts towards an `le` boundary only when all of it
// lies at or below the boundary (its upper bound <= le); the fine bucket that
// straddles a boundary counts towards the next one up. So each cumulative
// count is never over-stated: it counts no observation above its `le`, and it
// counts every observation at or below 0.8 x `le` (a fine bucket spans at most
// 25% of its lower bound), so only observations in (0.8 le, le] may be
// attributed one boundary too high. +Inf is exact. _count is the sum of the
// fine buckets (equal to the +Inf bucket, as the format requires, even if the
// snapshot was taken while other threads were recording), and _sum is exact,
// in seconds, printed with nanosecond precision.
//
// Labels: names must match [a-zA-Z_][a-zA-Z0-9_]*, must not start with "__"
// (reserved by Prometheus) and must not be "state", "reason" or "le" (used by
// these families), nor repeat; values must be UTF-8. Otherwise ConfigError.
// Values are escaped as the format requires (\\, \", \n).
//
// Several pools in one scrape: to_prometheus(span of PrometheusSource) writes
// each family once with every pool's samples (concatenating two outputs would
// repeat # HELP / # TYPE lines, which the format forbids). Their label sets
// must differ.
//
// Thread safety: pure functions of their arguments; to_prometheus(pool) calls
// pool.stats(), which any thread may call. Cost: one string, reserved up front;
// a few microseconds per pool (this is the scrape path, not the acquire path).

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/histogram.hpp"
#include "../core/stats.hpp"
#include "json.hpp"

namespace reservoir {

// Constant labels for every sample, in order: {{"pool", "main"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of a response carrying to_prometheus() output.
inline constexpr std::string_view prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

// One pool in a multi-pool exposition. `stats` must not be null; `query_time`
// (the pg driver's query latencies) may be.
struct PrometheusSource {
    const PoolStats* stats = nullptr;
    Labels labels;
    const HistogramSnapshot* query_time = nullptr;
};

// The `le` boundaries of the exposed histograms, in nanoseconds and as printed.
struct HistogramBound {
    std::uint64_t ns;
    std::string_view text;
};
inline constexpr std::array<HistogramBound, 16> histogram_bounds{{
    {100'000, "0.0001"},
    {250'000, "0.00025"},
    {500'000, "0.0005"},
    {1'000'000, "0.001"},
    {2'500'000, "0.0025"},
    {5'000'000, "0.005"},
    {10'000'000, "0.01"},
    {25'000'000, "0.025"},
    {50'000'000, "0.05"},
    {100'000'000, "0.1"},
    {250'000'000, "0.25"},
    {500'000'000, "0.5"},
    {1'000'000'000, "1"},
    {2'500'000'000, "2.5"},
    {5'000'000'000, "5"},
    {10'000'000'000, "10"},
}};

namespace observe_detail {

inline bool valid_label_name(std::string_view n) noexcept {
    if (n.empty()) return false;
    const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    if (!letter(n[0])) return false;
    for (const char c : n)
        if (!letter(c) && !(c >= '0' && c <= '9')) return false;
    return true;
}

// Well-formed UTF-8 as Go (and so Prometheus) checks it: no overlong forms,
// no surrogates, nothing above U+10FFFF (json.hpp's utf8_step).
inline bool valid_utf8(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size();) {
        const Utf8Step step = utf8_step(s, i);
        if (!step.valid) return false;
        i += step.size;
    }
    return true;
}

inline void append_label_value(std::string& out, std::string_view v) {
    for (const char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}

// Validates `labels` and renders them as `a="x",b="y"` (no braces).
inline std::string render_labels(const Labels& labels) {
    std::string out;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const auto& [name, value] = labels[i];
        const char* why = nullptr;
        if (!valid_label_name(name)) {
            why = "must match [a-zA-Z_][a-zA-Z0-9_]*";
        } else if (name.starts_with("__")) {
            why = "names starting with __ are reserved by Prometheus";
        } else if (name == "state" || name == "reason" || name == "le") {
            why = "reservoir's metrics use this name";
        } else {
            for (std::size_t j = 0; j < i; ++j)
                if (labels[j].first == name) why = "appears twice";
        }
        if (why) {
            std::string msg = "reservoir: invalid Prometheus label name ";
            append_json_string(msg, name);
            throw ConfigError(msg + ": " + why);
        }
        if (!valid_utf8(value)) throw ConfigError("reservoir: the value of Prometheus label " + name + " is not UTF-8");
        if (i) out += ',';
        out += name;
        out += "=\"";
        append_label_value(out, value);
        out += '"';
    }
    return out;
}

// Cumulative counts per boundary of histogram_bounds, then +Inf (see the top).
inline std::array<std::uint64_t, histogram_bounds.size() + 1> cumulative_buckets(const HistogramSnapshot& h) noexcept {
    std::array<std::uint64_t, histogram_bounds.size() + 1> c{};
    std::size_t j = 0;  // fine buckets' upper bounds rise with i, so j only moves up
    for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        if (h.buckets[i] == 0) continue;
        const std::uint64_t upper = HistogramBuckets::upper(i);
        while (j < histogram_bounds.size() && histogram_bounds[j].ns < upper) ++j;
        c[j] += h.buckets[i];
    }
    for (std::size_t k = 1; k < c.size(); ++k) c[k] += c[k - 1];
    return c;
}

class PrometheusWriter {
public:
    explicit PrometheusWriter(std::span<const PrometheusSource> sources) : sources_(sources) {
        labels_.reserve(sources.size());
        std::size_t label_bytes = 0;
        for (std::size_t i = 0; i < sources.size(); ++i) {
            if (!sources[i].stats) throw ConfigError("reservoir: PrometheusSource::stats is null");
            labels_.push_back(render_labels(sources[i].labels));
            label_bytes += labels_.back().size();
            for (std::size_t j = 0; j < i; ++j)
                if (same_labels(sources[i].labels, sources[j].labels))
                    throw ConfigError("reservoir: two Prometheus sources have the same labels {" + labels_[i] + "}");
        }
        // ~100 sample lines per pool, ~45 bytes each before labels; ~3.5 KB of headers.
        out_.reserve(4096 + sources.size() * 100 * 48 + 100 * label_bytes);
    }

    std::string finish() && {
        const auto gauge = [this](std::string_view name, std::string_view help, auto get) {
            header(name, "gauge", help);
            for (std::size_t i = 0; i < sources_.size(); ++i) line(name, {}, i, {}, {}, get(*sources_[i].stats));
        };
        const auto counter = [this](std::string_view name, std::string_view help, auto get) {
            header(name, "counter", help);
            for (std::size_t i = 0; i < sources_.size(); ++i) line(name, {}, i, {}, {}, get(*sources_[i].stats));
        };

        header("reservoir_connections", "gauge",
               "Open connections by state: idle in the pool, in_use lent out, resetting being cleaned after use.");
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            const PoolStats& s = *sources_[i].stats;
            line("reservoir_connections", {}, i, "state", "idle", s.idle);
            line("reservoir_connections", {}, i, "state", "in_use", s.in_use);
            line("reservoir_connections", {}, i, "state", "resetting", s.resetting);
        }
        gauge("reservoir_connections_connecting", "Connections being opened (not in reservoir_connections).",
              [](const PoolStats& s) { return s.connecting; });
        gauge("reservoir_waiting", "Acquirers queued for a connection.", [](const PoolStats& s) { return s.waiting; });
        gauge("reservoir_pool_min", "Idle floor: connections kept open (min_size).",
              [](const PoolStats& s) { return s.min; });
        gauge("reservoir_pool_max", "Ceiling on connections, counting connects in flight (max_size).",
              [](const PoolStats& s) { return s.max; });
        counter("reservoir_acquires_total", "Leases handed out.", [](const PoolStats& s) { return s.acquires; });
        counter("reservoir_acquire_timeouts_total", "Acquires that gave up waiting for a connection.",
                [](const PoolStats& s) { return s.acquire_timeouts; });
        counter("reservoir_acquire_cancels_total", "Queued acquires cancelled by their stop_token.",
                [](const PoolStats& s) { return s.acquire_cancels; });
        counter("reservoir_connects_total", "Connections opened.", [](const PoolStats& s) { return s.connects; });
        counter("reservoir_connect_failures_total", "Connection attempts that failed.",
                [](const PoolStats& s) { return s.connect_failures; });

        header("reservoir_closes_total", "counter", "Connections closed, by reason.");
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            const CloseCounts& c = sources_[i].stats->closes;
            const std::pair<std::string_view, std::uint64_t> reasons[] = {
                {"idle_timeout", c.idle_timeout}, {"lifetime", c.lifetime},         {"broken", c.broken},
                {"discarded", c.discarded},       {"reset_failed", c.reset_failed}, {"evicted", c.evicted},
                {"shutdown", c.shutdown}};
            for (const auto& [reason, n] : reasons) line("reservoir_closes_total", {}, i, "reason", reason, n);
        }
        gauge("reservoir_breaker_state",
              "Circuit breaker: 0 closed (dialing), 1 half-open (probing), 2 open (not dialing).",
              [](const PoolStats& s) -> std::uint64_t {
                  switch (s.breaker) {
                      case BreakerState::closed: return 0;
                      case BreakerState::half_open: return 1;
                      case BreakerState::open: return 2;
                  }
                  return 2;
              });
        counter("reservoir_breaker_trips_total", "Times the circuit breaker opened.",
                [](const PoolStats& s) { return s.breaker_trips; });
        counter("reservoir_leaks_total", "Leases reported as held longer than leak_threshold.",
                [](const PoolStats& s) { return s.leaks; });

        histogram("reservoir_acquire_wait_seconds", "Time acquire() waited for a connection.",
                  [](const PrometheusSource& p) { return &p.stats->acquire_wait; });
        histogram("reservoir_hold_seconds", "Time a lease was held before it came back.",
                  [](const PrometheusSource& p) { return &p.stats->hold_time; });
        histogram("reservoir_connect_seconds", "Time taken to open a connection.",
                  [](const PrometheusSource& p) { return &p.stats->connect_time; });
        histogram("reservoir_query_seconds", "Query latency, as measured by the driver.",
                  [](const PrometheusSource& p) { return p.query_time; });
        return std::move(out_);
    }

private:
    static bool same_labels(Labels a, Labels b) {
        if (a.size() != b.size()) return false;
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        return a == b;
    }

    void header(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;  // our own text: no backslash or newline to escape
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // name+suffix{<source's labels>,extra="value"} <v>\n. `value` is our own
    // text (a state, a reason, an le bound): nothing to escape.
    std::string& start(std::string_view name, std::string_view suffix, std::size_t i, std::string_view extra,
                       std::string_view value) {
        out_ += name;
        out_ += suffix;
        const std::string& labels = labels_[i];
        if (!labels.empty() || !extra.empty()) {
            out_ += '{';
            out_ += labels;
            if (!extra.empty()) {
                if (!labels.empty()) out_ += ',';
                out_ += extra;
                out_ += "=\"";
                out_ += value;
                out_ += '"';
            }
            out_ += '}';
        }
        out_ += ' ';
        return out_;
    }
    void line(std::string_view name, std::string_view suffix, std::size_t i, std::string_view extra,
              std::string_view value, std::uint64_t v) {
        append_uint(start(name, suffix, i, extra, value), v);
        out_ += '\n';
    }

    template <class Pick>
    void histogram(std::string_view name, std::string_view help, Pick pick) {
        bool any = false;
        for (const auto& s : sources_) any = any || pick(s) != nullptr;
        if (!any) return;
        header(name, "histogram", help);
        for (std::size_t i = 0; i < sources_.size(); ++i) {
            const HistogramSnapshot* h = pick(sources_[i]);
            if (!h) continue;
            const auto c = cumulative_buckets(*h);
            for (std::size_t k = 0; k < histogram_bounds.size(); ++k)
                line(name, "_bucket", i, "le", histogram_bounds[k].text, c[k]);
            line(name, "_bucket", i, "le", "+Inf", c.back());
            append_fixed(start(name, "_sum", i, {}, {}), h->sum_ns, 9);
            out_ += '\n';
            line(name, "_count", i, {}, {}, c.back());
        }
    }

    std::span<const PrometheusSource> sources_;
    std::vector<std::string> labels_;  // rendered, per source
    std::string out_;
};

}  // namespace observe_detail

// Several pools in one exposition: each family once, with every pool's samples.
// Throws ConfigError for an invalid label or two sources with the same labels.
inline std::string to_prometheus(std::span<const PrometheusSource> pools) {
    return observe_detail::PrometheusWriter(pools).finish();
}

// One pool's snapshot. `query_time`, when given (the pg driver's query
// latencies), adds reservoir_query_seconds. Throws ConfigError for an invalid
// label (see the top of this file).
inline std::string to_prometheus(const PoolStats& stats, const Labels& labels = {},
                                 const HistogramSnapshot* query_time = nullptr) {
    const PrometheusSource source{&stats, labels, query_time};
    return to_prometheus(std::span<const PrometheusSource>(&source, 1));
}

// The same for a pool (anything with stats()): to_prometheus(pool, {{"pool", "main"}}).
// A pool whose driver times its statements (the pg driver) adds reservoir_query_seconds.
template <class P>
    requires observe_detail::HasStats<P>
std::string to_prometheus(P& pool, const Labels& labels = {}) {
    const PoolStats stats = pool.stats();
    if constexpr (requires { pool.driver().query_time(); }) {
        const HistogramSnapshot query_time = pool.driver().query_time();
        return to_prometheus(stats, labels, &query_time);
    } else {
        return to_prometheus(stats, labels);
    }
}

}  // namespace reservoir
