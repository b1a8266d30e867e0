// Observability: the Prometheus exposition, the JSON snapshot and the health
// verdict (reservoir/observe).

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include <reservoir/observe/observe.hpp>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::HealthReport;

namespace {

// ---- fixtures ---------------------------------------------------------------

reservoir::HistogramSnapshot histogram_of(std::initializer_list<std::chrono::nanoseconds> values) {
    reservoir::Histogram h;
    for (const auto v : values) h.record(v);
    return h.snapshot();
}

// A hand-built snapshot with every field set to a distinct value.
reservoir::PoolStats sample_stats() {
    reservoir::PoolStats s;
    s.total = 5;
    s.idle = 2;
    s.in_use = 3;
    s.resetting = 0;
    s.connecting = 1;
    s.waiting = 4;
    s.min = 2;
    s.max = 10;
    s.acquires = 1234;
    s.acquire_timeouts = 5;
    s.acquire_cancels = 7;
    s.connects = 12;
    s.connect_failures = 3;
    s.closes = {1, 2, 3, 4, 0, 1, 0};
    s.breaker = reservoir::BreakerState::half_open;
    s.breaker_trips = 1;
    s.leaks = 2;
    // 50 us, 50 us -> le 0.0001; 300 us -> 0.0005; 2 ms -> 0.0025.
    s.acquire_wait = histogram_of({50us, 50us, 300us, 2000us});
    return s;
}

// A busy pool's snapshot: every histogram populated, from 0 ns to past 10 s.
reservoir::PoolStats realistic_stats() {
    reservoir::PoolStats s = sample_stats();
    reservoir::Histogram wait, hold, connect;
    for (int i = 0; i < 1000; ++i) {
        wait.record(std::chrono::nanoseconds(i % 7 == 0 ? i * 10'000 : 0));
        hold.record(std::chrono::microseconds(100 + i * 37));
    }
    for (const std::chrono::nanoseconds d : {2ms, 3ms, 4ms, 900ms, 12000ms}) connect.record(d);
    s.acquire_wait = wait.snapshot();
    s.hold_time = hold.snapshot();
    s.connect_time = connect.snapshot();
    s.breaker = reservoir::BreakerState::open;
    s.last_connect_error = "could not connect: \"db\" refused";
    return s;
}

// The samples of an exposition: series (everything before the last space) -> value.
std::map<std::string, std::string> samples(const std::string& text) {
    std::map<std::string, std::string> out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t end = text.find('\n', pos);
        REQUIRE(end != std::string::npos);  // every line ends with \n
        const std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line.starts_with("#")) continue;
        const std::size_t space = line.rfind(' ');
        REQUIRE(space != std::string::npos);
        out[line.substr(0, space)] = line.substr(space + 1);
    }
    return out;
}

// Where s stops being UTF-8 (std::string_view::npos when it is all UTF-8):
// decoded code point by code point, and rejected when overlong, a surrogate or
// above U+10FFFF. A different method from the library's, so that it checks it.
std::size_t first_invalid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        int n = 0;             // continuation bytes
        std::uint32_t cp = c;  // the code point, decoded
        if ((c & 0x80) == 0) {
            n = 0;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1fu;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0fu;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07u;
        } else {
            return i;
        }
        if (s.size() - i <= static_cast<std::size_t>(n)) return i;
        for (int k = 1; k <= n; ++k) {
            const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
            if ((b & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (b & 0x3fu);
        }
        static constexpr std::uint32_t smallest[] = {0, 0x80, 0x800, 0x10000};
        if (cp < smallest[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
        i += static_cast<std::size_t>(n) + 1;
    }
    return std::string_view::npos;
}

// A strict JSON parser (RFC 8259: the grammar, over UTF-8 text): throws on
// anything else.
struct Json {
    enum Type { null, boolean, number, string, array, object } type = null;
    bool flag = false;
    std::string text;  // a number's text, or a string decoded
    std::vector<Json> items;         // an array's, or an object's values
    std::vector<std::string> keys;   // an object's keys, in order

    const Json& operator[](std::string_view key) const {
        if (type != object) throw std::runtime_error("not an object");
        for (std::size_t i = 0; i < keys.size(); ++i)
            if (keys[i] == key) return items[i];
        throw std::runtime_error("no key " + std::string(key));
    }
};

class JsonParser {
public:
    static Json parse(std::string_view s) {
        if (const auto bad = first_invalid_utf8(s); bad != std::string_view::npos)
            throw std::runtime_error("JSON: not UTF-8 at offset " + std::to_string(bad));
        JsonParser p{s};
        Json v = p.value();
        p.ws();
        if (p.i_ != s.size()) p.fail("trailing characters");
        return v;
    }

private:
    explicit JsonParser(std::string_view s) : s_(s) {}

    [[noreturn]] void fail(const std::string& why) const {
        throw std::runtime_error("JSON: " + why + " at offset " + std::to_string(i_));
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    void expect(std::string_view word) {
        if (s_.substr(i_, word.size()) != word) fail("expected " + std::string(word));
        i_ += word.size();
    }
    static bool digit(char c) { return c >= '0' && c <= '9'; }

    Json value() {
        ws();
        Json v;
        const char c = peek();
        if (c == '{') {
            v.type = Json::object;
            ++i_;
            ws();
            if (peek() == '}') {
                ++i_;
                return v;
            }
            for (;;) {
                ws();
                if (peek() != '"') fail("expected a key");
                std::string key = string();
                for (const auto& k : v.keys)
                    if (k == key) fail("duplicate key " + key);
                ws();
                expect(":");
                v.keys.push_back(std::move(key));
                v.items.push_back(value());
                ws();
                if (peek() == ',') {
                    ++i_;
                } else {
                    expect("}");
                    return v;
                }
            }
        }
        if (c == '[') {
            v.type = Json::array;
            ++i_;
            ws();
            if (peek() == ']') {
                ++i_;
                return v;
            }
            for (;;) {
                v.items.push_back(value());
                ws();
                if (peek() == ',') {
                    ++i_;
                } else {
                    expect("]");
                    return v;
                }
            }
        }
        if (c == '"') {
            v.type = Json::string;
            v.text = string();
            return v;
        }
        if (c == 't' || c == 'f') {
            v.type = Json::boolean;
            v.flag = c == 't';
            expect(v.flag ? "true" : "false");
            return v;
        }
        if (c == 'n') {
            expect("null");
            return v;
        }
        v.type = Json::number;
        const std::size_t start = i_;
        if (peek() == '-') ++i_;
        if (peek() == '0') {
            ++i_;
        } else if (digit(peek())) {
            while (digit(peek())) ++i_;
        } else {
            fail("expected a value");
        }
        if (peek() == '.') {
            ++i_;
            if (!digit(peek())) fail("expected a digit after '.'");
            while (digit(peek())) ++i_;
        }
        if (peek() == 'e' || peek() == 'E') {
            ++i_;
            if (peek() == '+' || peek() == '-') ++i_;
            if (!digit(peek())) fail("expected an exponent");
            while (digit(peek())) ++i_;
        }
        v.text = std::string(s_.substr(start, i_ - start));
        return v;
    }

    std::string string() {
        expect("\"");
        std::string out;
        for (;;) {
            if (i_ >= s_.size()) fail("unterminated string");
            const char c = s_[i_++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            const char e = peek();
            ++i_;
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    if (i_ + 4 > s_.size()) fail("short \\u escape");
                    unsigned code = 0;
                    for (int k = 0; k < 4; ++k) {
                        const char h = s_[i_++];
                        code <<= 4;
                        if (digit(h)) code |= static_cast<unsigned>(h - '0');
                        else if (h >= 'a' && h <= 'f') code |= static_cast<unsigned>(h - 'a' + 10);
                        else if (h >= 'A' && h <= 'F') code |= static_cast<unsigned>(h - 'A' + 10);
                        else fail("bad \\u escape");
                    }
                    if (code >= 0x80) fail("this checker decodes only ASCII \\u escapes");
                    out += static_cast<char>(code);
                    break;
                }
                default: fail("bad escape");
            }
        }
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

// A driver whose ping takes `ping_latency` on a manual clock (the mock's ping
// is instant) and can be made to throw.
struct SlowPingDriver {
    using connection_type = reservoir::mock::Connection;

    test::ManualDriver inner;
    reservoir::ManualClock clock;
    std::chrono::nanoseconds ping_latency{};
    bool ping_throws = false;

    connection_type connect(reservoir::time_point deadline) { return inner.connect(deadline); }
    bool is_usable(const connection_type& c) const noexcept { return inner.is_usable(c); }
    bool ping(connection_type& c, reservoir::time_point deadline) {
        clock.advance(ping_latency);
        if (ping_throws) throw reservoir::Error(reservoir::ErrorKind::connection_lost, "mock: ping \"lost\"");
        return inner.ping(c, deadline);
    }
};
using SlowPingPool = reservoir::Pool<SlowPingDriver, reservoir::sizing::Dynamic, reservoir::health::Default,
                                     reservoir::context::None, reservoir::ManualClock>;

struct SlowPingRig {
    test::ManualRig rig;
    std::unique_ptr<SlowPingPool> make(reservoir::PoolOptions o) const {
        return std::make_unique<SlowPingPool>(SlowPingDriver{test::ManualDriver(rig.server, rig.clock), rig.clock},
                                              rig.options(o), rig.clock);
    }
};

using ManualMonitor = reservoir::BasicHealthMonitor<reservoir::ManualClock>;

#define CHECK_CONFIG_ERROR(expr, fragment)                 \
    do {                                                   \
        CHECK_THROWS_AS(expr, reservoir::ConfigError);     \
        CHECK_THROWS_WITH(expr, Catch::Contains(fragment)); \
    } while (false)

reservoir::HealthProbe good_probe(std::chrono::nanoseconds ping = 1ms) {
    return {.connected = true, .ping_ok = true, .ping = ping, .error = {}};
}

reservoir::PoolStats calm_stats() {
    reservoir::PoolStats s;
    s.total = 4;
    s.idle = 2;
    s.in_use = 2;
    s.min = 2;
    s.max = 20;
    return s;
}

}  // namespace

// ---- Prometheus -------------------------------------------------------------

TEST_CASE("the Prometheus exposition of a hand-built snapshot, line by line", "[observe][prometheus]") {
    const std::string expected = R"~(# HELP reservoir_connections Open connections by state: idle in the pool, in_use lent out, resetting being cleaned after use.
# TYPE reservoir_connections gauge
reservoir_connections{pool="main",state="idle"} 2
reservoir_connections{pool="main",state="in_use"} 3
reservoir_connections{pool="main",state="resetting"} 0
# HELP reservoir_connections_connecting Connections being opened (not in reservoir_connections).
# TYPE reservoir_connections_connecting gauge
reservoir_connections_connecting{pool="main"} 1
# HELP reservoir_waiting Acquirers queued for a connection.
# TYPE reservoir_waiting gauge
reservoir_waiting{pool="main"} 4
# HELP reservoir_pool_min Idle floor: connections kept open (min_size).
# TYPE reservoir_pool_min gauge
reservoir_pool_min{pool="main"} 2
# HELP reservoir_pool_max Ceiling on connections, counting connects in flight (max_size).
# TYPE reservoir_pool_max gauge
reservoir_pool_max{pool="main"} 10
# HELP reservoir_acquires_total Leases handed out.
# TYPE reservoir_acquires_total counter
reservoir_acquires_total{pool="main"} 1234
# HELP reservoir_acquire_timeouts_total Acquires that gave up waiting for a connection.
# TYPE reservoir_acquire_timeouts_total counter
reservoir_acquire_timeouts_total{pool="main"} 5
# HELP reservoir_acquire_cancels_total Queued acquires cancelled by their stop_token.
# TYPE reservoir_acquire_cancels_total counter
reservoir_acquire_cancels_total{pool="main"} 7
# HELP reservoir_connects_total Connections opened.
# TYPE reservoir_connects_total counter
reservoir_connects_total{pool="main"} 12
# HELP reservoir_connect_failures_total Connection attempts that failed.
# TYPE reservoir_connect_failures_total counter
reservoir_connect_failures_total{pool="main"} 3
# HELP reservoir_closes_total Connections closed, by reason.
# TYPE reservoir_closes_total counter
reservoir_closes_total{pool="main",reason="idle_timeout"} 1
reservoir_closes_total{pool="main",reason="lifetime"} 2
reservoir_closes_total{pool="main",reason="broken"} 3
reservoir_closes_total{pool="main",reason="discarded"} 4
reservoir_closes_total{pool="main",reason="reset_failed"} 0
reservoir_closes_total{pool="main",reason="evicted"} 1
reservoir_closes_total{pool="main",reason="shutdown"} 0
# HELP reservoir_breaker_state Circuit breaker: 0 closed (dialing), 1 half-open (probing), 2 open (not dialing).
# TYPE reservoir_breaker_state gauge
reservoir_breaker_state{pool="main"} 1
# HELP reservoir_breaker_trips_total Times the circuit breaker opened.
# TYPE reservoir_breaker_trips_total counter
reservoir_breaker_trips_total{pool="main"} 1
# HELP reservoir_leaks_total Leases reported as held longer than leak_threshold.
# TYPE reservoir_leaks_total counter
reservoir_leaks_total{pool="main"} 2
# HELP reservoir_acquire_wait_seconds Time acquire() waited for a connection.
# TYPE reservoir_acquire_wait_seconds histogram
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.0001"} 2
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.00025"} 2
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.0005"} 3
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.001"} 3
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.0025"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.005"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.01"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.025"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.05"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.1"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.25"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="0.5"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="1"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="2.5"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="5"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="10"} 4
reservoir_acquire_wait_seconds_bucket{pool="main",le="+Inf"} 4
reservoir_acquire_wait_seconds_sum{pool="main"} 0.0024
reservoir_acquire_wait_seconds_count{pool="main"} 4
# HELP reservoir_hold_seconds Time a lease was held before it came back.
# TYPE reservoir_hold_seconds histogram
reservoir_hold_seconds_bucket{pool="main",le="0.0001"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.00025"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.0005"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.001"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.0025"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.005"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.01"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.025"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.05"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.1"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.25"} 0
reservoir_hold_seconds_bucket{pool="main",le="0.5"} 0
reservoir_hold_seconds_bucket{pool="main",le="1"} 0
reservoir_hold_seconds_bucket{pool="main",le="2.5"} 0
reservoir_hold_seconds_bucket{pool="main",le="5"} 0
reservoir_hold_seconds_bucket{pool="main",le="10"} 0
reservoir_hold_seconds_bucket{pool="main",le="+Inf"} 0
reservoir_hold_seconds_sum{pool="main"} 0
reservoir_hold_seconds_count{pool="main"} 0
# HELP reservoir_connect_seconds Time taken to open a connection.
# TYPE reservoir_connect_seconds histogram
reservoir_connect_seconds_bucket{pool="main",le="0.0001"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.00025"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.0005"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.001"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.0025"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.005"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.01"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.025"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.05"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.1"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.25"} 0
reservoir_connect_seconds_bucket{pool="main",le="0.5"} 0
reservoir_connect_seconds_bucket{pool="main",le="1"} 0
reservoir_connect_seconds_bucket{pool="main",le="2.5"} 0
reservoir_connect_seconds_bucket{pool="main",le="5"} 0
reservoir_connect_seconds_bucket{pool="main",le="10"} 0
reservoir_connect_seconds_bucket{pool="main",le="+Inf"} 0
reservoir_connect_seconds_sum{pool="main"} 0
reservoir_connect_seconds_count{pool="main"} 0
)~";
    CHECK(reservoir::to_prometheus(sample_stats(), {{"pool", "main"}}) == expected);
}

TEST_CASE("without labels a sample has no braces, with them the caller's come first", "[observe][prometheus]") {
    const auto bare = samples(reservoir::to_prometheus(sample_stats()));
    CHECK(bare.at("reservoir_waiting") == "4");
    CHECK(bare.at("reservoir_acquire_wait_seconds_sum") == "0.0024");
    CHECK(bare.at("reservoir_closes_total{reason=\"broken\"}") == "3");
    CHECK(bare.at("reservoir_hold_seconds_bucket{le=\"+Inf\"}") == "0");
    CHECK(bare.count("reservoir_query_seconds_count") == 0);  // no query histogram given

    const auto two = samples(reservoir::to_prometheus(sample_stats(), {{"service", "api"}, {"pool", "main"}}));
    CHECK(two.at("reservoir_connections{service=\"api\",pool=\"main\",state=\"in_use\"}") == "3");
    CHECK(two.at("reservoir_breaker_state{service=\"api\",pool=\"main\"}") == "1");
}

TEST_CASE("the breaker state gauge is 0 closed, 1 half-open, 2 open", "[observe][prometheus]") {
    auto s = sample_stats();
    s.breaker = reservoir::BreakerState::closed;
    CHECK(samples(reservoir::to_prometheus(s)).at("reservoir_breaker_state") == "0");
    s.breaker = reservoir::BreakerState::half_open;
    CHECK(samples(reservoir::to_prometheus(s)).at("reservoir_breaker_state") == "1");
    s.breaker = reservoir::BreakerState::open;
    CHECK(samples(reservoir::to_prometheus(s)).at("reservoir_breaker_state") == "2");
}

TEST_CASE("label values are escaped: backslash, double quote, newline", "[observe][prometheus]") {
    const std::string text =
        reservoir::to_prometheus(sample_stats(), {{"path", "C:\\db \"main\"\nnext\tline"}, {"empty", ""}});
    CHECK_THAT(text, Catch::Contains("reservoir_waiting{path=\"C:\\\\db \\\"main\\\"\\nnext\tline\",empty=\"\"} 4\n"));
    // UTF-8 passes through as is.
    CHECK_THAT(reservoir::to_prometheus(sample_stats(), {{"pool", "caf\xc3\xa9 \xe2\x82\xac"}}),
               Catch::Contains("reservoir_waiting{pool=\"caf\xc3\xa9 \xe2\x82\xac\"} 4\n"));
}

TEST_CASE("invalid label names and non-UTF-8 values are ConfigErrors", "[observe][prometheus]") {
    const auto s = sample_stats();
    const auto rejects = [&](reservoir::Labels labels, const std::string& fragment) {
        INFO("labels[0] = " << labels.at(0).first);
        CHECK_CONFIG_ERROR(reservoir::to_prometheus(s, labels), fragment);
    };
    rejects({{"", "x"}}, "invalid Prometheus label name \"\"");
    rejects({{"1pool", "x"}}, "must match [a-zA-Z_][a-zA-Z0-9_]*");
    rejects({{"pool-name", "x"}}, "\"pool-name\"");
    rejects({{"pool name", "x"}}, "must match");
    rejects({{"p\xc3\xa9", "x"}}, "must match");
    rejects({{"a\"b\nc", "x"}}, "\"a\\\"b\\u000ac\"");  // the bad name is quoted and escaped in the message
    rejects({{"__name__", "x"}}, "reserved by Prometheus");
    rejects({{"state", "x"}}, "reservoir's metrics use this name");
    rejects({{"reason", "x"}}, "reservoir's metrics use this name");
    rejects({{"le", "x"}}, "reservoir's metrics use this name");
    rejects({{"pool", "a"}, {"pool", "b"}}, "appears twice");
    rejects({{"pool", "bad \xff byte"}}, "the value of Prometheus label pool is not UTF-8");
    rejects({{"pool", "overlong \xc0\xaf"}}, "not UTF-8");
    rejects({{"pool", "surrogate \xed\xa0\x80"}}, "not UTF-8");
    rejects({{"pool", "truncated \xe2\x82"}}, "not UTF-8");
    CHECK_NOTHROW(reservoir::to_prometheus(s, {{"_ok", "x"}, {"Pool_2", "y"}, {"_", "\xf0\x9f\x90\x98"}}));
}

TEST_CASE("histogram buckets are cumulative, +Inf equals _count, and _sum is in seconds", "[observe][prometheus]") {
    auto s = realistic_stats();
    const auto m = samples(reservoir::to_prometheus(s));
    for (const std::string name : {"reservoir_acquire_wait_seconds", "reservoir_hold_seconds",
                                   "reservoir_connect_seconds"}) {
        INFO(name);
        std::uint64_t previous = 0;
        for (const auto& bound : reservoir::histogram_bounds) {
            const std::uint64_t n = std::stoull(m.at(name + "_bucket{le=\"" + std::string(bound.text) + "\"}"));
            CHECK(n >= previous);
            previous = n;
        }
        const std::uint64_t inf = std::stoull(m.at(name + "_bucket{le=\"+Inf\"}"));
        CHECK(inf >= previous);
        CHECK(m.at(name + "_count") == std::to_string(inf));
    }
    CHECK(m.at("reservoir_hold_seconds_count") == "1000");
    // connect: 2 ms, 3 ms, 4 ms, 0.9 s, 12 s -> 9.009 + 12 = 12.909 s; 12 s only in +Inf.
    CHECK(m.at("reservoir_connect_seconds_sum") == "12.909");
    CHECK(m.at("reservoir_connect_seconds_bucket{le=\"10\"}") == "4");
    CHECK(m.at("reservoir_connect_seconds_bucket{le=\"+Inf\"}") == "5");
    // hold: sum of 100 us + 37 us * i for i < 1000 = 0.1 s + 18.4815 s.
    CHECK(m.at("reservoir_hold_seconds_sum") == "18.5815");

    // A sum that is not a round number keeps every nanosecond.
    s.connect_time = histogram_of({1ns, 1s + 234567890ns});
    CHECK(samples(reservoir::to_prometheus(s)).at("reservoir_connect_seconds_sum") == "1.234567891");
}

TEST_CASE("a bucket count never includes an observation above its le, and always those at or below 0.8 le",
          "[observe][prometheus]") {
    for (const auto& bound : reservoir::histogram_bounds) {
        const auto b = static_cast<std::int64_t>(bound.ns);
        // Values around the boundary: at 0.8 b and below it must count, above b it must not.
        for (const std::int64_t v : {b * 8 / 10 - 1, b * 8 / 10, b * 9 / 10, b - 1, b, b + 1, b * 11 / 10}) {
            reservoir::PoolStats s;
            s.hold_time = histogram_of({std::chrono::nanoseconds(v)});
            const auto m = samples(reservoir::to_prometheus(s));
            const std::uint64_t n = std::stoull(m.at("reservoir_hold_seconds_bucket{le=\"" + std::string(bound.text) + "\"}"));
            INFO("le " << bound.text << ", value " << v << " ns");
            if (v > b) CHECK(n == 0);                  // never over-stated
            if (v * 10 <= b * 8) CHECK(n == 1);        // at most one fine bucket (25%) late
            CHECK(m.at("reservoir_hold_seconds_bucket{le=\"+Inf\"}") == "1");
        }
    }
    // The documented example: exactly 0.1 ms falls in a fine bucket that reaches
    // past 0.1 ms, so it is counted from le="0.00025" on.
    reservoir::PoolStats s;
    s.hold_time = histogram_of({100us});
    const auto m = samples(reservoir::to_prometheus(s));
    CHECK(m.at("reservoir_hold_seconds_bucket{le=\"0.0001\"}") == "0");
    CHECK(m.at("reservoir_hold_seconds_bucket{le=\"0.00025\"}") == "1");
}

TEST_CASE("_count follows the buckets even when a racing snapshot's count disagrees", "[observe][prometheus]") {
    reservoir::PoolStats s;
    s.hold_time = histogram_of({1ms, 2ms});
    s.hold_time.count = 3;  // one more recorded between reading the buckets and the count
    const auto m = samples(reservoir::to_prometheus(s));
    CHECK(m.at("reservoir_hold_seconds_bucket{le=\"+Inf\"}") == "2");
    CHECK(m.at("reservoir_hold_seconds_count") == "2");
}

TEST_CASE("a query-time histogram adds reservoir_query_seconds", "[observe][prometheus]") {
    const auto query = histogram_of({3ms, 7ms, 40ms});
    const std::string text = reservoir::to_prometheus(sample_stats(), {{"pool", "main"}}, &query);
    CHECK_THAT(text, Catch::Contains("# TYPE reservoir_query_seconds histogram\n"));
    const auto m = samples(text);
    CHECK(m.at("reservoir_query_seconds_bucket{pool=\"main\",le=\"0.005\"}") == "1");
    CHECK(m.at("reservoir_query_seconds_bucket{pool=\"main\",le=\"0.01\"}") == "2");
    CHECK(m.at("reservoir_query_seconds_bucket{pool=\"main\",le=\"0.05\"}") == "3");
    CHECK(m.at("reservoir_query_seconds_sum{pool=\"main\"}") == "0.05");
    CHECK(m.at("reservoir_query_seconds_count{pool=\"main\"}") == "3");
}

TEST_CASE("several pools share one exposition with each family once", "[observe][prometheus]") {
    const auto a = sample_stats();
    auto b = sample_stats();
    b.waiting = 9;
    const auto query = histogram_of({3ms});
    const std::vector<reservoir::PrometheusSource> pools{{&a, {{"pool", "a"}}, nullptr},
                                                         {&b, {{"pool", "b"}}, &query}};
    const std::string text = reservoir::to_prometheus(pools);
    std::size_t headers = 0;
    for (std::size_t at = 0; (at = text.find("# TYPE reservoir_waiting ", at)) != std::string::npos; ++at) ++headers;
    CHECK(headers == 1);
    const auto m = samples(text);
    CHECK(m.at("reservoir_waiting{pool=\"a\"}") == "4");
    CHECK(m.at("reservoir_waiting{pool=\"b\"}") == "9");
    CHECK(m.at("reservoir_query_seconds_count{pool=\"b\"}") == "1");
    CHECK(m.count("reservoir_query_seconds_count{pool=\"a\"}") == 0);

    const std::vector<reservoir::PrometheusSource> clash{{&a, {{"pool", "a"}, {"x", "1"}}, nullptr},
                                                         {&b, {{"x", "1"}, {"pool", "a"}}, nullptr}};
    CHECK_CONFIG_ERROR(reservoir::to_prometheus(clash), "two Prometheus sources have the same labels");
}

TEST_CASE("to_prometheus(pool) exposes the pool's live stats", "[observe][prometheus]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 2, .max_size = 4});
    pool->maintain();
    auto lease = pool->acquire();
    rig.clock.advance(3ms);
    lease.release();
    auto held = pool->acquire();
    const auto m = samples(reservoir::to_prometheus(*pool, {{"pool", "main"}}));
    CHECK(m.at("reservoir_connections{pool=\"main\",state=\"idle\"}") == "1");
    CHECK(m.at("reservoir_connections{pool=\"main\",state=\"in_use\"}") == "1");
    CHECK(m.at("reservoir_pool_max{pool=\"main\"}") == "4");
    CHECK(m.at("reservoir_acquires_total{pool=\"main\"}") == "2");
    CHECK(m.at("reservoir_connects_total{pool=\"main\"}") == "2");
    CHECK(m.at("reservoir_hold_seconds_count{pool=\"main\"}") == "1");
    CHECK(m.at("reservoir_hold_seconds_sum{pool=\"main\"}") == "0.003");
}

TEST_CASE("promtool accepts the exposition", "[observe][promtool]") {
    const char* script = std::getenv("RESERVOIR_PROMTOOL_CHECK");
    if (!script || !*script)
        FAIL("RESERVOIR_PROMTOOL_CHECK is not set: it must name tests/observe/promtool-check.sh "
             "(ctest sets it; run by hand: RESERVOIR_PROMTOOL_CHECK=$PWD/tests/observe/promtool-check.sh)");

    const auto stats = realistic_stats();
    auto other = realistic_stats();
    other.breaker = reservoir::BreakerState::closed;
    const auto query = histogram_of({0ns, 150us, 3ms, 3ms, 80ms, 2s, 30s});
    const std::vector<reservoir::PrometheusSource> pools{
        {&stats, {{"pool", "main"}, {"dsn", "host=\"db\\1\"\nport=5432"}}, &query},
        {&other, {{"pool", "replica"}, {"dsn", "caf\xc3\xa9"}}, nullptr}};
    const std::pair<std::string, std::string> cases[] = {
        {"one pool", reservoir::to_prometheus(stats, {{"pool", "main"}}, &query)},
        {"no labels", reservoir::to_prometheus(reservoir::PoolStats{})},
        {"two pools", reservoir::to_prometheus(pools)},
    };
    for (std::size_t i = 0; i < std::size(cases); ++i) {
        const auto& [name, text] = cases[i];
        INFO(name);
        const auto path = std::filesystem::temp_directory_path() /
                          ("reservoir-metrics-" + std::to_string(::getpid()) + "-" + std::to_string(i) + ".txt");
        {
            std::ofstream out(path, std::ios::binary);
            out << text;
            REQUIRE(out.good());
        }
        const std::string command = "'" + std::string(script) + "' '" + path.string() + "'";
        const int status = std::system(command.c_str());
        std::filesystem::remove(path);
        CHECK(status == 0);
    }
}

// ---- JSON -------------------------------------------------------------------

TEST_CASE("the JSON snapshot of a hand-built snapshot, exactly", "[observe][json]") {
    auto s = sample_stats();
    s.last_connect_error = "FATAL: \"role\" \\ missing\n\ttab\x01\x1f\x7f \xff\xfe end";
    CHECK(reservoir::to_json(s) ==
          R"~({"total":5,"idle":2,"in_use":3,"resetting":0,"connecting":1,"waiting":4,"min":2,"max":10,)~"
          R"~("acquires":1234,"acquire_timeouts":5,"acquire_cancels":7,"connects":12,"connect_failures":3,)~"
          R"~("closes":{"idle_timeout":1,"lifetime":2,"broken":3,"discarded":4,"reset_failed":0,"evicted":1,)~"
          R"~("shutdown":0,"total":11},"breaker":"half_open","breaker_trips":1,"leaks":2,)~"
          R"~("acquire_wait":{"count":4,"p50_ms":0.327679,"p95_ms":2,"p99_ms":2,"max_ms":2,"mean_ms":0.6},)~"
          R"~("hold_time":{"count":0,"p50_ms":0,"p95_ms":0,"p99_ms":0,"max_ms":0,"mean_ms":0},)~"
          R"~("connect_time":{"count":0,"p50_ms":0,"p95_ms":0,"p99_ms":0,"max_ms":0,"mean_ms":0},)~"
          R"~("last_connect_error":"FATAL: \"role\" \\ missing\u000a\u0009tab\u0001\u001f)~"
          "\x7f \xef\xbf\xbd\xef\xbf\xbd end\"}");  // each byte that is not UTF-8 is U+FFFD
}

TEST_CASE("the JSON snapshot parses back with every field, and any error text as UTF-8", "[observe][json]") {
    auto s = realistic_stats();
    std::string nasty;
    for (int c = 0; c < 256; ++c) nasty += static_cast<char>(c);
    s.last_connect_error = nasty + "\"}],{\\u0000";
    // Bytes 0x80-0xff in a row: none starts a well-formed sequence, so each is one U+FFFD.
    std::string expected = nasty.substr(0, 0x80);
    for (int c = 0x80; c < 0x100; ++c) expected += "\xef\xbf\xbd";
    expected += "\"}],{\\u0000";
    const auto query = histogram_of({1ms, 2ms, 3ms});
    const Json j = JsonParser::parse(reservoir::to_json(s, &query));
    CHECK(j.keys == std::vector<std::string>{"total", "idle", "in_use", "resetting", "connecting", "waiting", "min",
                                               "max", "acquires", "acquire_timeouts", "acquire_cancels", "connects",
                                               "connect_failures", "closes", "breaker", "breaker_trips", "leaks", "acquire_wait",
                                               "hold_time", "connect_time", "query_time", "last_connect_error"});
    CHECK(j["last_connect_error"].text == expected);
    CHECK(j["breaker"].text == "open");
    CHECK(j["closes"]["total"].text == "11");
    CHECK(j["closes"].keys == std::vector<std::string>{"idle_timeout", "lifetime", "broken", "discarded",
                                                         "reset_failed", "evicted", "shutdown", "total"});
    for (const char* h : {"acquire_wait", "hold_time", "connect_time", "query_time"}) {
        INFO(h);
        CHECK(j[h].keys ==
              std::vector<std::string>{"count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"});
        for (const auto& v : j[h].items) CHECK(v.type == Json::number);
    }
    CHECK(j["connect_time"]["max_ms"].text == "12000");
    CHECK(j["connect_time"]["mean_ms"].text == "2581.8");
    CHECK(j["query_time"]["count"].text == "3");

    s.last_connect_error.clear();
    CHECK(JsonParser::parse(reservoir::to_json(s))["last_connect_error"].type == Json::null);
}

TEST_CASE("to_json(pool) snapshots the pool", "[observe][json]") {
    test::ManualRig rig;
    rig.server->fail_next_connects(1);
    auto pool = rig.make({.min_size = 1, .max_size = 3});
    pool->maintain();
    rig.clock.advance(1s);  // past the retry backoff
    pool->maintain();
    const Json j = JsonParser::parse(reservoir::to_json(*pool));
    CHECK(j["connect_failures"].text == "1");
    CHECK(j["connects"].text == "1");
    CHECK(j["idle"].text == "1");
    CHECK(j["breaker"].text == "closed");
    CHECK(j["last_connect_error"].type == Json::null);  // the last connect succeeded
}

// Byte strings as an attacker would send them (in a statement, or an error
// message a server echoes back): random bytes weighted toward UTF-8's edges
// (lead and continuation bytes, the limits of the overlong, surrogate and
// U+10FFFF ranges, JSON's own specials) and well-formed sequences, in any
// order, so sequences are cut short and run into each other.
std::string attacker_bytes(std::mt19937& rng) {
    static constexpr unsigned char edges[] = {0x00, 0x1f, 0x20, 0x22, 0x2f, 0x5c, 0x7f, 0x80, 0x8f, 0x90,
                                              0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec,
                                              0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8,
                                              0xfb, 0xfc, 0xfd, 0xfe, 0xff};
    static constexpr std::string_view well_formed[] = {"a",            "\xc2\x80",     "\xc3\xa9",
                                                       "\xdf\xbf",     "\xe0\xa0\x80", "\xe2\x82\xac",
                                                       "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf",
                                                       "\xf0\x90\x80\x80", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    std::uniform_int_distribution<int> length(0, 24), kind(0, 2), any_byte(0, 255);
    std::uniform_int_distribution<std::size_t> edge(0, std::size(edges) - 1), sequence(0, std::size(well_formed) - 1);
    std::string s;
    for (int n = length(rng); n-- > 0;) {
        switch (kind(rng)) {
            case 0: s += static_cast<char>(any_byte(rng)); break;
            case 1: s += static_cast<char>(edges[edge(rng)]); break;
            default: s += well_formed[sequence(rng)]; break;
        }
    }
    return s;
}

// Ill-formed sequences and what each becomes (one U+FFFD per maximal subpart,
// as the Unicode standard recommends), and well-formed ones at the edges.
const std::pair<std::string_view, std::string_view> tricky_utf8[] = {
    {"\xc0\xaf", "\uFFFD\uFFFD"},                      // overlong '/'
    {"\xc1\xbf", "\uFFFD\uFFFD"},                      // overlong DEL
    {"\xe0\x80\xaf", "\uFFFD\uFFFD\uFFFD"},            // overlong '/' in three bytes
    {"\xe0\x9f\xbf", "\uFFFD\uFFFD\uFFFD"},            // overlong U+07FF
    {"\xf0\x80\x80\xaf", "\uFFFD\uFFFD\uFFFD\uFFFD"},  // overlong '/' in four bytes
    {"\xf0\x8f\xbf\xbf", "\uFFFD\uFFFD\uFFFD\uFFFD"},  // overlong U+FFFF
    {"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},            // surrogate U+D800
    {"\xed\xbf\xbf", "\uFFFD\uFFFD\uFFFD"},            // surrogate U+DFFF
    {"\xed\xa0\x80\xed\xb0\x80", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"},  // a surrogate pair (CESU-8)
    {"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},  // U+110000
    {"\xf5\x80\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},  // F5 never leads
    {"\xf8\x88\x80\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"},  // the old five-byte form
    {"\xfe\xff", "\uFFFD\uFFFD"},                      // a UTF-16 byte order mark
    {"\x80", "\uFFFD"},                                // a lone continuation byte
    {"\xbf\x80", "\uFFFD\uFFFD"},
    {"\xc2", "\uFFFD"},                                // cut short at the end
    {"\xe2\x82", "\uFFFD"},
    {"\xf0\x9f\x98", "\uFFFD"},
    {"\xf0\x9f\x98" "A", "\uFFFDA"},                   // cut short by ASCII
    {"\xf0\x9f\x98\"", "\uFFFD\""},                    // cut short by a quote, which stays escaped
    {"\xe1\x80\xe2\xf0\x91\x92\xf1\xbf" "A", "\uFFFD\uFFFD\uFFFD\uFFFDA"},
    {"caf\xe9 \xc3\xa9t\xe9", "caf\uFFFD \u00e9t\uFFFD"},  // Latin-1 beside UTF-8
    {"\xe2\x82\xac", "\u20ac"},                        // well-formed: kept as they are
    {"\xf0\x9f\x98\x80", "\U0001F600"},
    {"\xed\x9f\xbf", "\uD7FF"},                        // just below the surrogates
    {"\xee\x80\x80", "\uE000"},                        // just above them
    {"\xef\xbf\xbf", "\uFFFF"},
    {"\xf4\x8f\xbf\xbf", "\U0010FFFF"},                // the last code point
};

TEST_CASE("JSON strings are UTF-8: ill-formed sequences become U+FFFD, well-formed ones stay",
          "[observe][json][utf8]") {
    for (const auto& [input, expected] : tricky_utf8) {
        const std::string in(input);
        INFO("input bytes: " << Catch::Detail::stringify(in));
        auto s = calm_stats();
        s.last_connect_error = in;
        const Json stats = JsonParser::parse(reservoir::to_json(s));
        CHECK(stats["last_connect_error"].text == expected);

        HealthReport r;
        r.reasons = {in, "ping failed: " + in};
        const Json health = JsonParser::parse(reservoir::to_json(r));
        REQUIRE(health["reasons"].items.size() == 2);
        CHECK(health["reasons"].items[0].text == expected);
        CHECK(health["reasons"].items[1].text == "ping failed: " + std::string(expected));
    }
}

TEST_CASE("JSON from random byte strings is always strict UTF-8 JSON, and keeps what was UTF-8",
          "[observe][json][utf8]") {
    std::mt19937 rng(20261207);  // seeded: the same strings every run
    for (int n = 0; n < 20000; ++n) {
        const std::string in = attacker_bytes(rng);
        INFO("input bytes: " << Catch::Detail::stringify(in));
        auto s = calm_stats();
        s.last_connect_error = in;
        HealthReport r;
        r.reasons = {in};
        std::string stats_text, health_text;
        Json stats, health;
        // JsonParser checks the whole text is UTF-8 first.
        REQUIRE_NOTHROW(stats = JsonParser::parse(stats_text = reservoir::to_json(s)));
        REQUIRE_NOTHROW(health = JsonParser::parse(health_text = reservoir::to_json(r)));
        const std::string& read_back = health["reasons"].items.at(0).text;
        if (!in.empty()) REQUIRE(stats["last_connect_error"].text == read_back);
        if (first_invalid_utf8(in) == std::string_view::npos) {
            REQUIRE(read_back == in);
        } else {
            REQUIRE(read_back.find("\uFFFD") != std::string::npos);
            REQUIRE(read_back.size() <= 3 * in.size());  // at worst one U+FFFD a byte
        }
    }
}

TEST_CASE("Python's strict json.loads reads what the JSON writer wrote, replaced as Python would",
          "[observe][json][utf8]") {
    const auto script = std::filesystem::path(__FILE__).parent_path().parent_path() / "observe" /
                        "json-utf8-check.py";
    REQUIRE(std::filesystem::exists(script));
    const auto path = std::filesystem::temp_directory_path() /
                      ("reservoir-json-utf8-" + std::to_string(::getpid()) + ".txt");
    std::vector<std::string> inputs;
    for (const auto& [input, expected] : tricky_utf8) inputs.emplace_back(input);
    std::mt19937 rng(7);
    for (int n = 0; n < 5000; ++n) inputs.push_back(attacker_bytes(rng));
    {
        std::ofstream out(path, std::ios::binary);
        static constexpr char hex[] = "0123456789abcdef";
        for (const auto& in : inputs) {
            for (const char c : in) out << hex[static_cast<unsigned char>(c) >> 4] << hex[c & 0xf];
            std::string doc = "{\"e\":";
            reservoir::observe_detail::append_json_string(doc, in);
            out << '\n' << doc << "}\n";
        }
        REQUIRE(out.good());
    }
    const std::string command = "python3 '" + script.string() + "' '" + path.string() + "'";
    const int status = std::system(command.c_str());
    std::filesystem::remove(path);
    CHECK(status == 0);
}

// ---- health: the rules, as pure decisions ----------------------------------

TEST_CASE("a calm pool with a quick ping is healthy", "[observe][health]") {
    const auto r = reservoir::assess_health({}, calm_stats(), good_probe(2ms), std::nullopt);
    CHECK(r.status == HealthReport::healthy);
    CHECK(r.reasons.empty());
    CHECK(r.ok());
    CHECK(r.http_status() == 200);
    CHECK(r.pinged);
    CHECK(r.ping == 2ms);
    CHECK(r.stats.total == 4);
}

TEST_CASE("utilization above 75% is unhealthy, at 75% it is not", "[observe][health]") {
    auto s = calm_stats();
    s.in_use = 15;  // of 20: exactly 75%
    CHECK(reservoir::assess_health({}, s, good_probe(), std::nullopt).status == HealthReport::healthy);
    s.in_use = 16;
    auto r = reservoir::assess_health({}, s, good_probe(), std::nullopt);
    CHECK(r.status == HealthReport::unhealthy);
    CHECK(r.reasons == std::vector<std::string>{"utilization 80% above 75% (16 of 20 in use)"});
    CHECK(r.http_status() == 503);

    s.in_use = 1;
    s.max = 3;
    r = reservoir::assess_health({.max_utilization = 0.3}, s, good_probe(), std::nullopt);
    CHECK(r.reasons == std::vector<std::string>{"utilization 33.4% above 30% (1 of 3 in use)"});
    s.in_use = 3;
    CHECK(reservoir::assess_health({.max_utilization = 1.0}, s, good_probe(), std::nullopt).status ==
          HealthReport::healthy);  // 1.0 turns the rule off
}

TEST_CASE("more than 5 waiting is degraded, 5 is not", "[observe][health]") {
    auto s = calm_stats();
    s.waiting = 5;
    CHECK(reservoir::assess_health({}, s, good_probe(), std::nullopt).status == HealthReport::healthy);
    s.waiting = 6;
    const auto r = reservoir::assess_health({}, s, good_probe(), std::nullopt);
    CHECK(r.status == HealthReport::degraded);
    CHECK(r.reasons == std::vector<std::string>{"6 waiting, above 5"});
    CHECK(r.ok());  // degraded still serves
    CHECK(r.http_status() == 200);
}

TEST_CASE("a ping above 500 ms is degraded, a failed ping or no connection unhealthy", "[observe][health]") {
    auto r = reservoir::assess_health({}, calm_stats(), good_probe(500ms), std::nullopt);
    CHECK(r.status == HealthReport::healthy);
    r = reservoir::assess_health({}, calm_stats(), good_probe(500ms + 1ns), std::nullopt);
    CHECK(r.status == HealthReport::degraded);
    CHECK(r.reasons == std::vector<std::string>{"ping 500ms above 500ms"});  // 3 decimals: 500.000001 ms
    r = reservoir::assess_health({}, calm_stats(), good_probe(1234567us), std::nullopt);
    CHECK(r.reasons == std::vector<std::string>{"ping 1.234s above 500ms"});

    r = reservoir::assess_health({}, calm_stats(), {.connected = true, .ping_ok = false, .ping = 3ms, .error = {}},
                                 std::nullopt);
    CHECK(r.status == HealthReport::unhealthy);
    CHECK(r.reasons == std::vector<std::string>{"ping failed"});
    CHECK(r.pinged);

    r = reservoir::assess_health({}, calm_stats(),
                                 {.connected = false, .ping_ok = false, .ping = {}, .error = "reservoir: timed out"},
                                 std::nullopt);
    CHECK(r.status == HealthReport::unhealthy);
    CHECK(r.reasons == std::vector<std::string>{"no connection: reservoir: timed out"});
    CHECK_FALSE(r.pinged);
}

TEST_CASE("an open breaker is unhealthy, a half-open one degraded", "[observe][health]") {
    auto s = calm_stats();
    s.breaker = reservoir::BreakerState::open;
    s.last_connect_error = "connection refused";
    auto r = reservoir::assess_health({}, s, good_probe(), std::nullopt);
    CHECK(r.status == HealthReport::unhealthy);
    CHECK(r.reasons == std::vector<std::string>{"circuit breaker open: connection refused"});
    s.breaker = reservoir::BreakerState::half_open;
    r = reservoir::assess_health({}, s, good_probe(), std::nullopt);
    CHECK(r.status == HealthReport::degraded);
    CHECK(r.reasons == std::vector<std::string>{"circuit breaker half-open: probing after connect failures"});
}

TEST_CASE("every rule that fires is a reason, worst first", "[observe][health]") {
    auto s = calm_stats();
    s.in_use = 20;
    s.idle = 0;
    s.waiting = 7;
    s.breaker = reservoir::BreakerState::open;
    const auto r = reservoir::assess_health(
        {}, s, {.connected = false, .ping_ok = false, .ping = {}, .error = "reservoir: pool unavailable"}, 31s);
    CHECK(r.status == HealthReport::unhealthy);
    CHECK(r.reasons == std::vector<std::string>{"circuit breaker open", "no connection: reservoir: pool unavailable",
                                                "utilization 100% above 75% (20 of 20 in use)", "7 waiting, above 5",
                                                "no idle connection for 31s, limit 30s"});
}

TEST_CASE("the monitor remembers since when idle has been exhausted", "[observe][health]") {
    reservoir::ManualClock clock;
    ManualMonitor monitor({}, clock);
    auto busy = calm_stats();
    busy.idle = 0;
    busy.in_use = 4;  // 20%: only the idle rule can fire

    auto check = [&](const reservoir::PoolStats& s) { return monitor.assess(s, good_probe(), clock.now()); };
    CHECK(check(busy).status == HealthReport::healthy);  // first seen now
    clock.advance(29999ms);
    CHECK(check(busy).status == HealthReport::healthy);
    clock.advance(1ms);
    auto r = check(busy);
    CHECK(r.status == HealthReport::degraded);
    CHECK(r.reasons == std::vector<std::string>{"no idle connection for 30s, limit 30s"});
    clock.advance(1500ms);
    CHECK(check(busy).reasons == std::vector<std::string>{"no idle connection for 31.5s, limit 30s"});

    // One idle connection seen resets the memory: the next exhaustion starts afresh.
    CHECK(check(calm_stats()).status == HealthReport::healthy);
    CHECK(check(busy).status == HealthReport::healthy);
    clock.advance(20s);
    CHECK(check(busy).status == HealthReport::healthy);  // 20 s, not 51.5 s
    clock.advance(10s);
    CHECK(check(busy).status == HealthReport::degraded);
}

TEST_CASE("a quiet pool (nothing open, nothing in use) is not idle-exhausted", "[observe][health]") {
    reservoir::ManualClock clock;
    ManualMonitor monitor({}, clock);
    reservoir::PoolStats quiet;  // min_size 0 after reaping: no connection, no borrower
    quiet.max = 10;
    CHECK_FALSE(monitor.track_idle(quiet, clock.now()).has_value());
    clock.advance(1h);
    CHECK(monitor.assess(quiet, good_probe(), clock.now()).status == HealthReport::healthy);

    auto waited = quiet;
    waited.waiting = 1;  // nothing idle and someone waiting: exhausted
    CHECK(monitor.track_idle(waited, clock.now()) == std::chrono::nanoseconds::zero());
    clock.advance(5s);
    CHECK(monitor.track_idle(waited, clock.now()) == 5s);
}

TEST_CASE("health thresholds are validated", "[observe][health]") {
    CHECK_CONFIG_ERROR(reservoir::HealthMonitor({.max_utilization = 1.5}), "max_utilization = 1.5");
    CHECK_CONFIG_ERROR(reservoir::HealthMonitor({.max_utilization = std::nan("")}), "max_utilization");
    CHECK_CONFIG_ERROR(reservoir::HealthMonitor({.max_idle_exhausted = -1ms}), "max_idle_exhausted = -1ms");
    CHECK_CONFIG_ERROR(reservoir::HealthMonitor({.max_ping = -5ms}), "max_ping = -5ms");
    CHECK_NOTHROW(reservoir::HealthMonitor({.max_utilization = 0.0, .max_waiting = 0, .max_idle_exhausted = 0ms,
                                            .max_ping = 0ms}));
}

// ---- health: check_health against mock pools -------------------------------

TEST_CASE("check_health: a calm pool is healthy, and its JSON is the endpoint's shape", "[observe][health]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 2, .max_size = 10});
    pool->maintain();
    auto held = pool->acquire();
    ManualMonitor monitor({}, rig.clock);
    const auto pings = rig.server->pings();
    const auto r = reservoir::check_health(*pool, monitor, 1s);
    CHECK(rig.server->pings() == pings + 1);
    CHECK(r.status == HealthReport::healthy);
    CHECK(r.reasons.empty());
    CHECK(r.pinged);
    CHECK(r.stats.in_use == 1);  // the snapshot is taken before the probe's own lease
    CHECK(pool->stats().idle == 1);  // the probe's lease went back
    CHECK(reservoir::to_json(r) ==
          R"~({"healthy":true,"status":"healthy","reasons":[],"totalConnections":2,"idleConnections":1,)~"
          R"~("activeConnections":1,"waiting":0,"latencyMs":0})~");
}

TEST_CASE("check_health: utilization above the threshold is unhealthy", "[observe][health]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 10});
    ManualMonitor monitor({}, rig.clock);
    std::vector<test::ManualPool<>::Lease> leases;
    for (int i = 0; i < 7; ++i) leases.push_back(pool->acquire());
    CHECK(reservoir::check_health(*pool, monitor, 1s).status == HealthReport::healthy);  // 70%
    leases.push_back(pool->acquire());
    const auto r = reservoir::check_health(*pool, monitor, 1s);
    CHECK(r.status == HealthReport::unhealthy);
    CHECK(r.reasons == std::vector<std::string>{"utilization 80% above 75% (8 of 10 in use)"});
    CHECK(reservoir::to_json(r) ==
          R"~({"healthy":false,"status":"unhealthy","reasons":["utilization 80% above 75% (8 of 10 in use)"],)~"
          R"~("totalConnections":8,"idleConnections":0,"activeConnections":8,"waiting":0,"latencyMs":0})~");
}

TEST_CASE("check_health: a slow ping is degraded, timed on the monitor's clock", "[observe][health]") {
    SlowPingRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 4});
    pool->maintain();
    ManualMonitor monitor({}, rig.rig.clock);
    pool->driver().ping_latency = 500ms;
    auto r = reservoir::check_health(*pool, monitor, 2s);
    CHECK(r.status == HealthReport::healthy);
    CHECK(r.ping == 500ms);
    pool->driver().ping_latency = 612500us;
    r = reservoir::check_health(*pool, monitor, 2s);
    CHECK(r.status == HealthReport::degraded);
    CHECK(r.reasons == std::vector<std::string>{"ping 612.5ms above 500ms"});
    CHECK(reservoir::to_json(r) ==
          R"~({"healthy":true,"status":"degraded","reasons":["ping 612.5ms above 500ms"],"totalConnections":1,)~"
          R"~("idleConnections":1,"activeConnections":0,"waiting":0,"latencyMs":612.5})~");
}

TEST_CASE("check_health: a ping that fails or throws is unhealthy, and the connection is discarded",
          "[observe][health]") {
    SECTION("the server restarted: the ping returns false") {
        test::ManualRig rig;
        auto pool = rig.make({.min_size = 1, .max_size = 4});
        pool->maintain();
        ManualMonitor monitor({}, rig.clock);
        rig.server->restart();
        const auto r = reservoir::check_health(*pool, monitor, 1s);
        CHECK(r.status == HealthReport::unhealthy);
        CHECK(r.reasons == std::vector<std::string>{"ping failed"});
        CHECK(pool->stats().closes.discarded == 1);
    }
    SECTION("the ping throws") {
        SlowPingRig rig;
        auto pool = rig.make({.min_size = 1, .max_size = 4});
        pool->maintain();
        ManualMonitor monitor({}, rig.rig.clock);
        pool->driver().ping_throws = true;
        const auto r = reservoir::check_health(*pool, monitor, 1s);
        CHECK(r.status == HealthReport::unhealthy);
        CHECK(r.reasons == std::vector<std::string>{"ping failed: mock: ping \"lost\""});
        CHECK(reservoir::to_json(r) ==
              R"~({"healthy":false,"status":"unhealthy","reasons":["ping failed: mock: ping \"lost\""],)~"
              R"~("totalConnections":1,"idleConnections":1,"activeConnections":0,"waiting":0,"latencyMs":0})~");
        CHECK(pool->stats().closes.discarded == 1);
    }
}

TEST_CASE("check_health: no connection within the deadline is unhealthy", "[observe][health]") {
    auto server = std::make_shared<reservoir::mock::Server>();
    reservoir::MockPool pool(reservoir::mock::Driver(server), {.min_size = 1, .max_size = 1});
    auto held = pool.acquire();
    reservoir::HealthMonitor monitor({.max_utilization = 1.0});  // only the probe's failure counts
    const auto r = reservoir::check_health(pool, monitor, 5ms);
    CHECK(r.status == HealthReport::unhealthy);
    REQUIRE(r.reasons.size() == 1);
    CHECK_THAT(r.reasons[0], Catch::StartsWith("no connection: reservoir: acquire timed out after"));
    CHECK_FALSE(r.pinged);
    const Json j = JsonParser::parse(reservoir::to_json(r));
    CHECK_FALSE(j["healthy"].flag);
    CHECK(j["latencyMs"].type == Json::null);
    CHECK(j["reasons"].items.at(0).text == r.reasons[0]);
}

TEST_CASE("check_health: more than 5 waiting is reported", "[observe][health]") {
    auto server = std::make_shared<reservoir::mock::Server>();
    reservoir::MockPool pool(reservoir::mock::Driver(server), {.min_size = 1, .max_size = 1});
    auto held = pool.acquire();
    std::vector<std::thread> waiters;
    for (int i = 0; i < 6; ++i) waiters.emplace_back([&pool] { pool.acquire(10s).release(); });
    REQUIRE(test::eventually([&] { return pool.stats().waiting == 6; }));
    reservoir::HealthMonitor monitor({.max_utilization = 1.0});
    const auto r = reservoir::check_health(pool, monitor, 1ms);  // the probe queues behind them and gives up
    held.release();
    for (auto& t : waiters) t.join();
    CHECK(r.stats.waiting == 6);
    CHECK(r.status == HealthReport::unhealthy);
    REQUIRE(r.reasons.size() == 2);
    CHECK_THAT(r.reasons[0], Catch::StartsWith("no connection: "));
    CHECK(r.reasons[1] == "6 waiting, above 5");
}

TEST_CASE("check_health: an open breaker is unhealthy, a half-open one degraded", "[observe][health]") {
    SECTION("no connection left: the probe fails fast too") {
        test::ManualRig rig;
        auto pool = rig.make({.min_size = 1, .max_size = 2, .breaker_threshold = 1, .breaker_cooldown = 1s});
        rig.server->fail_next_connects(1);
        pool->maintain();
        REQUIRE(pool->stats().breaker == reservoir::BreakerState::open);
        ManualMonitor monitor({}, rig.clock);
        auto r = reservoir::check_health(*pool, monitor, 1s);
        CHECK(r.status == HealthReport::unhealthy);
        REQUIRE(r.reasons.size() == 2);
        CHECK(r.reasons[0] == "circuit breaker open: mock: connection refused");
        CHECK_THAT(r.reasons[1], Catch::StartsWith("no connection: reservoir: pool unavailable"));

        rig.clock.advance(1s);
        REQUIRE(pool->stats().breaker == reservoir::BreakerState::half_open);
        // The check's own acquire asks for the probe (nothing else would:
        // no connection is open), which succeeds and closes the breaker.
        r = reservoir::check_health(*pool, monitor, 1s);
        CHECK(r.status == HealthReport::degraded);
        CHECK(r.reasons == std::vector<std::string>{"circuit breaker half-open: probing after connect failures"});
        CHECK(r.pinged);
        REQUIRE(pool->stats().breaker == reservoir::BreakerState::closed);
        CHECK(reservoir::check_health(*pool, monitor, 1s).status == HealthReport::healthy);
    }
    SECTION("a connection still open: the breaker alone decides") {
        test::ManualRig rig;
        auto pool = rig.make({.min_size = 2, .max_size = 4, .breaker_threshold = 1, .breaker_cooldown = 1s});
        bool first = true;
        rig.server->on_connect([&] {  // the first connect succeeds, the second fails
            if (std::exchange(first, false)) rig.server->fail_next_connects(1);
        });
        pool->maintain();
        REQUIRE(pool->stats().total == 1);
        REQUIRE(pool->stats().breaker == reservoir::BreakerState::open);
        ManualMonitor monitor({}, rig.clock);
        auto r = reservoir::check_health(*pool, monitor, 1s);
        CHECK(r.status == HealthReport::unhealthy);
        CHECK(r.reasons == std::vector<std::string>{"circuit breaker open: mock: connection refused"});
        CHECK(r.pinged);

        rig.clock.advance(1s);
        r = reservoir::check_health(*pool, monitor, 1s);
        CHECK(r.status == HealthReport::degraded);
        CHECK(r.reasons == std::vector<std::string>{"circuit breaker half-open: probing after connect failures"});
    }
}

TEST_CASE("check_health: no idle connection for 30 s is degraded", "[observe][health]") {
    test::ManualRig rig;
    // min 0 and a short idle timeout, so that maintain() reaps what the probe opened.
    auto pool = rig.make({.min_size = 0, .max_size = 4, .idle_timeout = 1s});
    ManualMonitor monitor({}, rig.clock);
    auto held = pool->acquire();  // 1 of 4 in use, none idle

    CHECK(reservoir::check_health(*pool, monitor, 1s).status == HealthReport::healthy);  // first seen
    rig.clock.advance(20s);
    pool->maintain();  // the probe's connection idled out
    REQUIRE(pool->stats().idle == 0);
    CHECK(reservoir::check_health(*pool, monitor, 1s).status == HealthReport::healthy);  // 20 s
    rig.clock.advance(10s);
    pool->maintain();
    const auto r = reservoir::check_health(*pool, monitor, 1s);
    CHECK(r.status == HealthReport::degraded);
    CHECK(r.reasons == std::vector<std::string>{"no idle connection for 30s, limit 30s"});

    CHECK(reservoir::check_health(*pool, monitor, 1s).status == HealthReport::healthy);  // the probe left one idle
}
