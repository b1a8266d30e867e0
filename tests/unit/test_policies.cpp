// The policies' pure decisions, and archetypes: the smallest types that model
// each concept, proving the pool asks for no more than the concepts say.

#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::duration;
using reservoir::time_point;

namespace archetype {

struct Connection {
    Connection() = default;
    Connection(Connection&&) = default;
    int value = 0;
};

struct Driver {
    using connection_type = Connection;
    Connection connect(time_point) { return Connection{}; }
    bool is_usable(const Connection&) const noexcept { return true; }
    bool ping(Connection&, time_point) { return true; }
};

struct Sizing {
    std::size_t min_size() const { return 1; }
    std::size_t max_size() const { return 2; }
    duration idle_timeout() const { return 1s; }
};

struct Health {
    reservoir::BorrowCheck borrow_check(const reservoir::ConnectionInfo&, time_point) const {
        return reservoir::BorrowCheck::local;
    }
    time_point expiry(time_point, std::uint64_t) const { return time_point::max(); }
    bool retire(const reservoir::ConnectionInfo&, time_point) const { return false; }
    bool keepalive_due(const reservoir::ConnectionInfo&, time_point) const { return false; }
    duration retry_delay(unsigned, std::uint64_t) const { return 1ms; }
};

struct Context {
    reservoir::ReleaseAction on_release(Connection&) noexcept { return reservoir::ReleaseAction::reuse; }
    bool reset(Connection&, time_point) { return true; }
};

}  // namespace archetype

TEST_CASE("archetypes of the four concepts make a working pool", "[policies]") {
    STATIC_REQUIRE(reservoir::Driver<archetype::Driver>);
    STATIC_REQUIRE(reservoir::SizingPolicy<archetype::Sizing>);
    STATIC_REQUIRE(reservoir::HealthPolicy<archetype::Health>);
    STATIC_REQUIRE(reservoir::ContextPolicy<archetype::Context, archetype::Connection>);

    reservoir::Pool<archetype::Driver, archetype::Sizing, archetype::Health, archetype::Context> pool(
        archetype::Driver{});
    auto lease = pool.acquire(5s);
    lease->value = 7;
    CHECK(pool.stats().max == 2);
}

TEST_CASE("sizing::Fixed pins min and max", "[policies]") {
    auto server = std::make_shared<reservoir::mock::Server>();
    reservoir::Pool<reservoir::mock::Driver, reservoir::sizing::Fixed<3>, reservoir::health::Trusting> pool(
        reservoir::mock::Driver{server});
    REQUIRE(test::eventually([&] { return pool.stats().idle == 3; }));
    CHECK(pool.stats().min == 3);
    CHECK(pool.stats().max == 3);
}

TEST_CASE("backoff is exponential, capped, with full jitter", "[policies]") {
    using reservoir::detail::full_jitter_backoff;
    CHECK(full_jitter_backoff(100ms, 5s, 0, 12345) == duration::zero());
    std::uint64_t state = 1;
    for (unsigned failures = 1; failures < 40; ++failures) {
        const duration cap = std::min<duration>(5s, 100ms * (1ull << std::min(failures - 1, 20u)));
        duration largest{};
        for (int i = 0; i < 200; ++i) {
            const auto d = full_jitter_backoff(100ms, 5s, failures, reservoir::detail::next_random(state));
            REQUIRE(d >= duration::zero());
            REQUIRE(d <= cap);
            largest = std::max(largest, d);
        }
        CHECK(largest > cap / 2);  // the jitter spans the range
    }
}

TEST_CASE("lifetimes are jittered once at birth, within the jitter fraction", "[policies]") {
    using reservoir::detail::jittered_expiry;
    const time_point born{std::chrono::hours(1)};
    CHECK(jittered_expiry(born, duration::zero(), 0.2, 99) == time_point::max());
    CHECK(jittered_expiry(born, 10min, 0.0, 99) == born + 10min);

    std::uint64_t state = 3;
    std::set<std::int64_t> seconds;
    for (int i = 0; i < 1000; ++i) {
        const auto e = jittered_expiry(born, 100s, 0.2, reservoir::detail::next_random(state));
        REQUIRE(e <= born + 100s);
        REQUIRE(e > born + 80s);
        seconds.insert(std::chrono::duration_cast<std::chrono::seconds>(e - born).count());
    }
    CHECK(seconds.size() >= 15);  // spread over the 20 s window, not bunched
}

TEST_CASE("health::Default decides from state and time alone", "[policies]") {
    const reservoir::health::Default h(reservoir::PoolOptions{
        .validate_after_idle = 500ms, .keepalive_interval = 30s, .max_uses = 10});
    const time_point t0{std::chrono::hours(1)};
    reservoir::ConnectionInfo c{t0, t0, t0, t0 + 1h, 0};
    CHECK(h.borrow_check(c, t0 + 499ms) == reservoir::BorrowCheck::local);
    CHECK(h.borrow_check(c, t0 + 500ms) == reservoir::BorrowCheck::ping);
    CHECK_FALSE(h.keepalive_due(c, t0 + 29s));
    CHECK(h.keepalive_due(c, t0 + 30s));
    CHECK_FALSE(h.retire(c, t0 + 59min));
    CHECK(h.retire(c, t0 + 1h));
    c.uses = 10;
    CHECK(h.retire(c, t0));

    // validate_after_idle = 0 pings every borrow, even one whose clock reads
    // earlier than the last check (the borrow reads a coarse clock).
    const reservoir::health::Default always(reservoir::PoolOptions{.validate_after_idle = 0ms});
    CHECK(always.borrow_check(c, t0) == reservoir::BorrowCheck::ping);
    CHECK(always.borrow_check(c, t0 - 3ms) == reservoir::BorrowCheck::ping);
}

TEST_CASE("health::Default keeps only its own settings: not the listener", "[policies]") {
    struct Silent : reservoir::EventListener {
        void on_event(const reservoir::Event&) noexcept override {}
    };
    const auto listener = std::make_shared<Silent>();
    const reservoir::PoolOptions o{.listener = listener};
    const reservoir::health::Default h(o);
    CHECK(listener.use_count() == 2);  // `listener` and `o`: the policy holds none
}

namespace {

// A sizing policy with any sizes, to reach the pool's check of its policy.
struct AnySizes {
    std::size_t min = 0, max = 1;
    std::size_t min_size() const { return min; }
    std::size_t max_size() const { return max; }
    duration idle_timeout() const { return 1s; }
};

template <class F>
std::string config_error_of(F f) {
    try {
        f();
    } catch (const reservoir::ConfigError& e) {
        return e.what();
    }
    return "no ConfigError";
}

}  // namespace

TEST_CASE("sizes are validated in one place, for the options and for a sizing policy alike", "[policies]") {
    struct Row {
        std::size_t min, max;
        const char* error;  // empty: valid
    };
    const Row rows[] = {
        {0, 1, ""},
        {10000, 10000, ""},
        {0, 0, "reservoir: invalid pool option max_size = 0: must be between 1 and 10000"},
        {0, 10001, "reservoir: invalid pool option max_size = 10001: must be between 1 and 10000"},
        {3, 2, "reservoir: invalid pool option min_size = 3: must not exceed max_size (2)"},
    };
    const test::ManualRig rig;
    for (const Row& r : rows) {
        CAPTURE(r.min, r.max);
        const std::string expected = *r.error ? r.error : "no ConfigError";
        CHECK(config_error_of([&] { reservoir::detail::validate_sizes(r.min, r.max); }) == expected);
        CHECK(config_error_of([&] { reservoir::PoolOptions{.min_size = r.min, .max_size = r.max}.validate(); }) ==
              expected);
        // The pool checks its policy's sizes, not the options' (valid here).
        using Pool = reservoir::Pool<test::ManualDriver, AnySizes, reservoir::health::Default,
                                     reservoir::context::None, reservoir::ManualClock>;
        CHECK(config_error_of([&] {
                  Pool pool(test::ManualDriver(rig.server, rig.clock), rig.options({.min_size = 0}),
                            AnySizes{r.min, r.max}, reservoir::health::Default{}, reservoir::context::None{},
                            rig.clock);
              }) == expected);
    }
}
