#pragma once
// reservoir::to_json(PoolStats): a pool's gauges, counters, closes by reason,
// breaker state and latency summaries as one compact JSON object, for a
// debug endpoint or a log line. Also the small text helpers the other
// observe headers share (exact decimals, JSON strings).
//
// Shape (one line; numbers are plain integers or exact decimals, never NaN
// or infinite; times in milliseconds):
//   {"total":3,"idle":2,"in_use":1,"resetting":0,"connecting":0,"waiting":0,"min":2,"max":20,
//    "acquires":120,"acquire_timeouts":0,"acquire_cancels":0,"connects":3,"connect_failures":1,
//    "closes":{"idle_timeout":0,"lifetime":0,"broken":0,"discarded":0,"reset_failed":0,
//              "evicted":0,"shutdown":0,"total":0},
//    "breaker":"closed","breaker_trips":0,"leaks":0,
//    "acquire_wait":{"count":120,"p50_ms":0,"p95_ms":0.001,"p99_ms":0.25,"max_ms":0.3,"mean_ms":0.01},
//    "hold_time":{...},"connect_time":{...},["query_time":{...},]
//    "last_connect_error":null}
// "breaker" is "closed", "open" or "half_open". "last_connect_error" is null
// when the last connect succeeded. Quantiles are the upper bound of the
// histogram bucket holding them (within 25%, never above the max seen).
//
// The output is always valid UTF-8 (RFC 8259 requires it, and strict parsers
// such as Python's json.loads reject anything else). Strings are escaped for
// JSON: '"' and '\' with a backslash, control characters (below 0x20) as
// \u00XX. Well-formed UTF-8 passes through as is; every ill-formed part of a
// string (an error message from a server in another encoding, a stray byte,
// an overlong form, a surrogate, a sequence cut short) becomes U+FFFD, one
// per maximal subpart as the Unicode standard recommends (the same count as
// Python's bytes.decode("utf-8", "replace")).
//
// Thread safety: pure functions of their arguments; to_json(pool) calls
// pool.stats(), which any thread may call.

#include <charconv>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../core/histogram.hpp"
#include "../core/stats.hpp"

namespace reservoir {

namespace observe_detail {

inline void append_uint(std::string& out, std::uint64_t v) {
    char buf[20];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// v / 10^digits as an exact decimal with no trailing zeros: (1500000, 6) ->
// "1.5", (123, 6) -> "0.000123", (2000000000, 9) -> "2". digits <= 19.
inline void append_fixed(std::string& out, std::uint64_t v, unsigned digits) {
    std::uint64_t scale = 1;
    for (unsigned i = 0; i < digits; ++i) scale *= 10;
    append_uint(out, v / scale);
    std::uint64_t frac = v % scale;
    if (frac == 0) return;
    char buf[19];
    for (unsigned i = digits; i-- > 0; frac /= 10) buf[i] = static_cast<char>('0' + frac % 10);
    unsigned n = digits;
    while (buf[n - 1] == '0') --n;  // frac != 0, so a non-zero digit stops this
    out += '.';
    out.append(buf, n);
}

inline std::uint64_t non_negative(std::chrono::nanoseconds d) noexcept {
    return d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
}

// A duration in milliseconds, exactly (to the nanosecond).
inline void append_ms(std::string& out, std::chrono::nanoseconds d) { append_fixed(out, non_negative(d), 6); }

// A duration for people: "31.5s", "612ms", "0.8ms"; at most 3 decimals.
inline void append_human_duration(std::string& out, std::chrono::nanoseconds d) {
    const std::uint64_t ns = non_negative(d);
    if (ns >= 1'000'000'000) {
        append_fixed(out, ns / 1'000'000, 3);
        out += 's';
    } else {
        append_fixed(out, ns / 1'000, 3);
        out += "ms";
    }
}

// The UTF-8 sequence that starts at s[i] (i < s.size()), by the Unicode
// standard's table of well-formed byte sequences: its size and true when it
// is well-formed; else false and the size of its maximal subpart (at least 1:
// the lead byte, then every byte that could still have continued it).
struct Utf8Step {
    std::size_t size;
    bool valid;
};

inline Utf8Step utf8_step(std::string_view s, std::size_t i) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return {1, true};
    std::size_t len = 4;
    unsigned char lo = 0x80, hi = 0xbf;  // the range allowed for the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;       // overlong
        else if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0) lo = 0x90;       // overlong
        else if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
        return {1, false};  // a continuation byte, C0/C1 (always overlong) or F5-FF
    }
    for (std::size_t k = 1; k < len; ++k) {
        if (i + k >= s.size()) return {k, false};  // cut short
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return {k, false};
    }
    return {len, true};
}

inline void append_json_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += s[i++];
        } else if (c < 0x20) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
            ++i;
        } else {
            const Utf8Step step = utf8_step(s, i);
            if (step.valid)
                out.append(s, i, step.size);
            else
                out += "\xef\xbf\xbd";  // U+FFFD REPLACEMENT CHARACTER
            i += step.size;
        }
    }
    out += '"';
}

inline constexpr std::string_view breaker_name(BreakerState b) noexcept {
    switch (b) {
        case BreakerState::closed: return "closed";
        case BreakerState::open: return "open";
        case BreakerState::half_open: return "half_open";
    }
    return "unknown";
}

// Writes one JSON object: open(), then key()/value pairs, then close().
class JsonObject {
public:
    explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
    std::string& key(std::string_view k) {
        if (!first_) out_ += ',';
        first_ = false;
        out_ += '"';
        out_ += k;  // keys are our own identifiers: nothing to escape
        out_ += "\":";
        return out_;
    }
    void field(std::string_view k, std::uint64_t v) { append_uint(key(k), v); }
    void close() { out_ += '}'; }

private:
    std::string& out_;
    bool first_ = true;
};

inline void append_histogram_json(std::string& out, const HistogramSnapshot& h) {
    JsonObject o(out);
    o.field("count", h.count);
    append_ms(o.key("p50_ms"), h.quantile(0.50));
    append_ms(o.key("p95_ms"), h.quantile(0.95));
    append_ms(o.key("p99_ms"), h.quantile(0.99));
    append_ms(o.key("max_ms"), h.max());
    append_ms(o.key("mean_ms"), h.mean());
    o.close();
}

template <class P>
concept HasStats = requires(P& p) {
    { p.stats() } -> std::convertible_to<PoolStats>;
};

}  // namespace observe_detail

// The snapshot as one JSON object (shape above). `query_time`, when given (the
// pg driver's query latencies), adds a "query_time" summary.
inline std::string to_json(const PoolStats& s, const HistogramSnapshot* query_time = nullptr) {
    using observe_detail::append_histogram_json;
    std::string out;
    out.reserve(1024 + 2 * s.last_connect_error.size());
    observe_detail::JsonObject o(out);
    o.field("total", s.total);
    o.field("idle", s.idle);
    o.field("in_use", s.in_use);
    o.field("resetting", s.resetting);
    o.field("connecting", s.connecting);
    o.field("waiting", s.waiting);
    o.field("min", s.min);
    o.field("max", s.max);
    o.field("acquires", s.acquires);
    o.field("acquire_timeouts", s.acquire_timeouts);
    o.field("acquire_cancels", s.acquire_cancels);
    o.field("connects", s.connects);
    o.field("connect_failures", s.connect_failures);

    o.key("closes");
    observe_detail::JsonObject c(out);
    c.field("idle_timeout", s.closes.idle_timeout);
    c.field("lifetime", s.closes.lifetime);
    c.field("broken", s.closes.broken);
    c.field("discarded", s.closes.discarded);
    c.field("reset_failed", s.closes.reset_failed);
    c.field("evicted", s.closes.evicted);
    c.field("shutdown", s.closes.shutdown);
    c.field("total", s.closes.total());
    c.close();

    observe_detail::append_json_string(o.key("breaker"), observe_detail::breaker_name(s.breaker));
    o.field("breaker_trips", s.breaker_trips);
    o.field("leaks", s.leaks);
    append_histogram_json(o.key("acquire_wait"), s.acquire_wait);
    append_histogram_json(o.key("hold_time"), s.hold_time);
    append_histogram_json(o.key("connect_time"), s.connect_time);
    if (query_time) append_histogram_json(o.key("query_time"), *query_time);
    if (s.last_connect_error.empty())
        o.key("last_connect_error") += "null";
    else
        observe_detail::append_json_string(o.key("last_connect_error"), s.last_connect_error);
    o.close();
    return out;
}

// The same for a pool (anything with stats()), e.g. `to_json(pool)`.
template <class P>
    requires observe_detail::HasStats<P>
std::string to_json(P& pool, const HistogramSnapshot* query_time = nullptr) {
    return to_json(static_cast<const PoolStats&>(pool.stats()), query_time);
}

}  // namespace reservoir
