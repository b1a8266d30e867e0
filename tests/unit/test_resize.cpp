// Sizes changed at run time: Pool::resize for sizing::Dynamic, and a sizing
// policy whose own max_size() changes. Single-threaded with the manual clock
// and no background threads, except where a worker's wake-up is the point.

#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <exception>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::ConfigError;
using reservoir::PoolOptions;

namespace {

using Pool = test::ManualPool<>;
using Lease = Pool::Lease;

// Acquires n connections, each opened inline (no background threads).
std::vector<Lease> hold(Pool& pool, std::size_t n) {
    std::vector<Lease> leases;
    for (std::size_t i = 0; i < n; ++i) leases.push_back(pool.acquire(1s));
    return leases;
}

// An async acquire whose callback the test reads.
struct Got {
    Lease lease;
    std::exception_ptr error;
    int calls = 0;
    auto callback() {
        return [this](Lease l, std::exception_ptr e) {
            ++calls;
            lease = std::move(l);
            error = e;
        };
    }
};

}  // namespace

TEST_CASE("resize: a grow serves the waiters queued at the old max with new connections", "[resize]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 2, .capacity = 4});
    auto held = hold(*pool, 2);
    Got first, second;
    pool->async_acquire(1h, first.callback());
    pool->async_acquire(1h, second.callback());
    pool->maintain();  // at max: nothing to dial
    REQUIRE(pool->stats().waiting == 2);
    REQUIRE(rig.server->connect_attempts() == 2);

    pool->resize(0, 4);
    CHECK(pool->stats().max == 4);
    pool->maintain();  // the connects a worker would make
    CHECK(first.calls == 1);
    CHECK(first.lease);
    CHECK(second.calls == 1);
    CHECK(second.lease);
    const auto st = pool->stats();
    CHECK(st.waiting == 0);
    CHECK(st.total == 4);
    CHECK(st.in_use == 4);
    CHECK(rig.server->live() == 4);
}

TEST_CASE("resize: a grow wakes a worker for a blocked waiter", "[resize]") {
    auto server = std::make_shared<reservoir::mock::Server>();
    reservoir::MockPool pool(reservoir::mock::Driver(server), {.min_size = 0, .max_size = 1, .capacity = 2});
    auto held = pool.acquire();
    std::atomic<bool> served{false};
    std::thread waiter([&] { served = static_cast<bool>(pool.acquire(5s)); });
    REQUIRE(test::eventually([&] { return pool.stats().waiting == 1; }));
    pool.resize(0, 2);
    waiter.join();
    CHECK(served);
    CHECK(server->peak() == 2);
}

TEST_CASE("resize: a shrink closes idle connections at once, the highest slots first", "[resize]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 4});
    std::vector<std::uint64_t> ids;  // in slot order: a connect takes the lowest empty slot
    {
        auto held = hold(*pool, 4);
        for (const Lease& l : held) ids.push_back(l->id());
    }
    REQUIRE(pool->stats().idle == 4);

    pool->resize(0, 2);
    auto st = pool->stats();
    CHECK(st.max == 2);
    CHECK(st.idle == 2);
    CHECK(st.total == 2);
    CHECK(st.closes.evicted == 2);
    CHECK(rig.server->live() == 2);
    auto kept = hold(*pool, 2);
    CHECK(std::set<std::uint64_t>{kept[0]->id(), kept[1]->id()} == std::set<std::uint64_t>{ids[0], ids[1]});
    CHECK(rig.server->connect_attempts() == 4);  // the two left were served, none opened
}

TEST_CASE("resize: a shrink below the lent closes them as they come back, and a waiter waits for a return",
          "[resize]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 4});
    auto held = hold(*pool, 4);
    Got waiter;
    pool->async_acquire(1h, waiter.callback());
    REQUIRE(pool->stats().waiting == 1);

    pool->resize(0, 2);
    CHECK(pool->stats().total == 4);  // nothing lent is taken away
    held[3].release();
    pool->maintain();
    CHECK(pool->stats().total == 3);
    CHECK(waiter.calls == 0);
    held[2].release();
    pool->maintain();
    CHECK(pool->stats().total == 2);
    CHECK(waiter.calls == 0);  // at the new max: no connect for it either
    CHECK(rig.server->connect_attempts() == 4);

    const auto next = held[1]->id();
    held[1].release();  // within the new max: the waiter gets it
    CHECK(waiter.calls == 1);
    REQUIRE(waiter.lease);
    CHECK(waiter.lease->id() == next);
    waiter.lease.release();
    held[0].release();
    pool->maintain();
    const auto st = pool->stats();
    CHECK(st.total == 2);
    CHECK(st.idle == 2);
    CHECK(st.closes.evicted == 2);
    CHECK(rig.server->live() == 2);
    CHECK(rig.server->peak() == 4);
}

TEST_CASE("resize: a grow before the lent come back keeps them", "[resize]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 4});
    auto held = hold(*pool, 4);
    pool->resize(0, 2);
    held[0].release();  // closed: the pool was above 2
    pool->resize(0, 3);
    for (Lease& l : held) l.release();
    const auto st = pool->stats();
    CHECK(st.total == 3);
    CHECK(st.idle == 3);
    CHECK(st.closes.evicted == 1);
}

TEST_CASE("resize: a connect that finishes above a lowered max is closed", "[resize]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 2});
    auto held = hold(*pool, 1);
    bool resized = false;
    // Lowered while the second connect is in flight (the pool's lock is free then).
    rig.server->on_connect([&] {
        if (!std::exchange(resized, true)) pool->resize(0, 1);
    });
    Got waiter;
    pool->async_acquire(1h, waiter.callback());
    pool->maintain();
    REQUIRE(resized);
    CHECK(waiter.calls == 0);
    const auto st = pool->stats();
    CHECK(st.total == 1);
    CHECK(st.connecting == 0);
    CHECK(st.closes.evicted == 1);
    CHECK(rig.server->live() == 1);
    held.clear();  // within max: the waiter gets it (and is not left queued past its own scope)
    CHECK(waiter.calls == 1);
    CHECK(waiter.lease);
}

TEST_CASE("resize: a raised min opens connections", "[resize]") {
    SECTION("at once, by a worker") {
        auto server = std::make_shared<reservoir::mock::Server>();
        reservoir::MockPool pool(reservoir::mock::Driver(server), {.min_size = 0, .max_size = 4});
        pool.resize(3, 4);
        CHECK(pool.stats().min == 3);
        REQUIRE(test::eventually([&] { return pool.stats().idle == 3; }));
        CHECK(server->connects() == 3);
    }
    SECTION("by maintain() without background threads") {
        test::ManualRig rig;
        auto pool = rig.make({.min_size = 0, .max_size = 4});
        pool->resize(3, 4);
        pool->maintain();
        CHECK(pool->stats().idle == 3);
        CHECK(rig.server->connects() == 3);
    }
}

TEST_CASE("resize: a lowered min leaves the idle connections to idle reaping", "[resize]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 3, .max_size = 4, .idle_timeout = 10s});
    pool->maintain();
    REQUIRE(pool->stats().idle == 3);
    pool->resize(1, 4);
    CHECK(pool->stats().idle == 3);
    rig.clock.advance(10s);
    pool->maintain();
    const auto st = pool->stats();
    CHECK(st.idle == 1);
    CHECK(st.closes.idle_timeout == 2);
}

TEST_CASE("resize: bad sizes are rejected with the value and the limit, and nothing changes", "[resize][config]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 2, .capacity = 3});
    pool->maintain();
    struct Row {
        std::size_t min, max;
        const char* message;
    };
    const Row rows[] = {
        {0, 0, "max_size = 0: must be between 1 and 10000"},
        {0, 4, "max_size = 4: must not exceed the pool's capacity (3, PoolOptions::capacity)"},
        {3, 2, "min_size = 3: must not exceed max_size (2)"},
        {0, 10001, "max_size = 10001: must be between 1 and 10000"},
    };
    for (const Row& row : rows) {
        CAPTURE(row.min, row.max);
        CHECK_THROWS_WITH(pool->resize(row.min, row.max), Catch::Contains(row.message));
        const auto st = pool->stats();
        CHECK(st.min == 1);
        CHECK(st.max == 2);
        CHECK(st.total == 1);
    }
    pool->resize(0, 3);  // the capacity itself is allowed
    CHECK(pool->stats().max == 3);
}

TEST_CASE("capacity: below max_size or above the limit is rejected at construction", "[resize][config]") {
    test::ManualRig rig;
    CHECK_THROWS_WITH(rig.make({.max_size = 4, .capacity = 3}),
                      Catch::Contains("capacity = 3: must be between max_size (4) and 10000"));
    CHECK_THROWS_WITH(rig.make({.max_size = 4, .capacity = 10001}), Catch::Contains("capacity = 10001"));
    CHECK(rig.make({.max_size = 4, .capacity = 4})->stats().max == 4);
}

TEST_CASE("resize: stats and the JSON snapshot show the sizes in force", "[resize][observe]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 2, .capacity = 8});
    pool->resize(1, 7);
    const std::string json = reservoir::to_json(pool->stats());
    CHECK_THAT(json, Catch::Contains("\"min\":1,\"max\":7"));
}

namespace {

// A sizing policy of the user's own whose limit changes while the pool runs
// (an adaptive limit): the pool re-reads it at each decision and at housekeeping.
struct AdaptiveSizing {
    std::shared_ptr<std::atomic<std::size_t>> max = std::make_shared<std::atomic<std::size_t>>(2);
    std::size_t min_size() const noexcept { return 0; }
    std::size_t max_size() const noexcept { return max->load(); }
    reservoir::duration idle_timeout() const noexcept { return 1h; }
};

using AdaptivePool = reservoir::Pool<test::ManualDriver, AdaptiveSizing, reservoir::health::Default,
                                     reservoir::context::None, reservoir::ManualClock>;

}  // namespace

TEST_CASE("a sizing policy whose max changes is honoured", "[resize]") {
    test::ManualRig rig;
    AdaptiveSizing sizing;
    AdaptivePool pool(test::ManualDriver(rig.server, rig.clock), rig.options({.capacity = 4}), sizing, {}, {},
                      rig.clock);
    std::vector<AdaptivePool::Lease> held;
    held.push_back(pool.acquire(1s));
    held.push_back(pool.acquire(1s));
    CHECK_THROWS_AS(pool.acquire(0ms), reservoir::AcquireTimeout);  // at its max of 2

    sizing.max->store(3);  // raised: the next decision sees it
    held.push_back(pool.acquire(1s));
    CHECK(pool.stats().max == 3);
    CHECK(pool.stats().total == 3);

    sizing.max->store(100);  // beyond the slots: the capacity is the limit
    CHECK(pool.stats().max == 4);

    sizing.max->store(1);  // lowered: housekeeping marks the lent for closing
    pool.maintain();
    for (auto& l : held) l.release();
    pool.maintain();
    const auto st = pool.stats();
    CHECK(st.max == 1);
    CHECK(st.total == 1);
    CHECK(st.closes.evicted == 2);
    CHECK(rig.server->live() == 1);
}

// A lent connection marked by a shrink while its borrower's ping ran out of a
// short deadline: the worker's recheck answers, and the connection is closed
// rather than made idle. Should the shrink come only once the recheck began
// (a slow machine), the other lease is marked instead; both ways the pool ends
// within max once the leases are back.
TEST_CASE("resize: a connection marked while its borrower's ping is rechecked is closed, not kept", "[resize]") {
    auto server = std::make_shared<reservoir::mock::Server>();
    reservoir::MockPool pool(reservoir::mock::Driver(server),
                             {.min_size = 0, .max_size = 2, .validate_after_idle = 0ms});  // a ping on every borrow
    auto held = pool.acquire();
    pool.acquire().release();  // a second connection, idle
    server->set_ping_latency(95ms);  // beyond the borrower's 90 ms, within the worker's 100 ms
    std::thread borrower([&] { CHECK_THROWS_AS(pool.acquire(90ms), reservoir::AcquireTimeout); });
    REQUIRE(test::eventually([&] { return pool.stats().in_use == 2; }));  // claimed; its ping runs
    pool.resize(0, 1);
    borrower.join();
    REQUIRE(test::eventually([&] { return pool.stats().resetting == 0; }));  // the worker's recheck is done
    held.release();
    const auto st = pool.stats();
    CHECK(st.total == 1);
    CHECK(st.idle == 1);
    CHECK(server->live() == 1);
}
