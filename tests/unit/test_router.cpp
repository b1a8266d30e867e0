// reservoir::Router with the mock driver: reads to the replica, writes to the
// primary, reads falling back to the primary when the replica cannot connect,
// and each side's stats reported apart. Each side has its own mock server, so
// the servers' counters show where the work went.

#include <catch2/catch.hpp>

#include <memory>
#include <thread>

#include <reservoir/app/router.hpp>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::MockPool;
using reservoir::PoolOptions;
using reservoir::Router;
using reservoir::mock::Driver;
using reservoir::mock::Server;

namespace {

// Quick to retry and to give up, so a failing side shows within milliseconds.
PoolOptions fast(PoolOptions o) {
    o.retry_initial = 1ms;
    o.retry_max = 5ms;
    o.breaker_cooldown = 50ms;
    return o;
}

struct Side {
    std::shared_ptr<Server> server = std::make_shared<Server>();
    std::unique_ptr<MockPool> pool;

    // `failure_rate` is set before the pool exists, so that no connect beats it.
    explicit Side(PoolOptions o = {.min_size = 0, .max_size = 4}, double failure_rate = 0.0) {
        server->set_connect_failure_rate(failure_rate);
        pool = std::make_unique<MockPool>(Driver(server), fast(o));
    }
};

}  // namespace

TEST_CASE("router: reads go to the replica, writes to the primary", "[router]") {
    Side primary, replica;
    Router<MockPool> router(*primary.pool, replica.pool.get());

    for (int i = 0; i < 5; ++i) CHECK(router.acquire_read()->execute("select") == "ok");
    for (int i = 0; i < 3; ++i) CHECK(router.acquire_write()->execute("update") == "ok");

    CHECK(replica.server->queries() == 5);
    CHECK(primary.server->queries() == 3);

    const auto s = router.stats();
    CHECK(s.replica_reads == 5);
    CHECK(s.fallback_reads == 0);
    CHECK(s.writes == 3);
    REQUIRE(s.replica);
    CHECK(s.replica->acquires == 5);
    CHECK(s.primary.acquires == 3);
    CHECK(&router.primary() == primary.pool.get());
    CHECK(router.replica() == replica.pool.get());
}

TEST_CASE("router: reads fall back to the primary when the replica's driver fails to connect", "[router]") {
    Side primary;

    SECTION("the breaker opens: PoolUnavailable") {
        // min_size 1: the pool's own connect to its minimum is what probes
        // the replica once the cooldown ends (an acquire on an open breaker
        // fails at once and asks for no connect).
        Side replica({.min_size = 1, .max_size = 4, .breaker_threshold = 1}, 1.0);
        Router<MockPool> router(*primary.pool, replica.pool.get());

        CHECK(router.acquire_read(2s)->execute("select") == "ok");
        CHECK(primary.server->queries() == 1);
        CHECK(replica.server->queries() == 0);
        CHECK(replica.server->connect_attempts() >= 1);

        const auto s = router.stats();
        CHECK(s.fallback_reads == 1);
        CHECK(s.replica_reads == 0);
        CHECK(s.writes == 0);
        REQUIRE(s.replica);
        CHECK(s.replica->connect_failures >= 1);
        CHECK(s.replica->breaker != reservoir::BreakerState::closed);
        CHECK(s.replica->acquires == 0);
        CHECK(s.primary.acquires == 1);

        // The replica answers again: once its breaker lets a probe through,
        // reads go back to it.
        replica.server->set_connect_failure_rate(0.0);
        REQUIRE(test::eventually([&] {
            router.acquire_read(1s)->execute("select");
            return replica.server->queries() > 0;
        }));
        CHECK(router.stats().replica_reads >= 1);
    }

    SECTION("no breaker: the acquire times out while its connects fail") {
        Side replica({.min_size = 0, .max_size = 4, .acquire_timeout = 50ms, .breaker_threshold = 0}, 1.0);
        Router<MockPool> router(*primary.pool, replica.pool.get());

        CHECK(router.acquire_read()->execute("select") == "ok");
        CHECK(primary.server->queries() == 1);
        const auto s = router.stats();
        CHECK(s.fallback_reads == 1);
        REQUIRE(s.replica);
        CHECK(s.replica->acquire_timeouts == 1);
        CHECK_FALSE(s.replica->last_connect_error.empty());
    }

    SECTION("the replica pool is shut down") {
        Side replica;
        REQUIRE(replica.pool->shutdown(1s));
        Router<MockPool> router(*primary.pool, replica.pool.get());
        CHECK(router.acquire_read()->execute("select") == "ok");
        CHECK(router.stats().fallback_reads == 1);
    }
}

TEST_CASE("router: without a replica pool every read is a counted fallback", "[router]") {
    Side primary;
    Router<MockPool> router(*primary.pool);
    for (int i = 0; i < 4; ++i) router.acquire_read()->execute("select");
    const auto s = router.stats();
    CHECK(s.fallback_reads == 4);
    CHECK(s.replica_reads == 0);
    CHECK_FALSE(s.replica);
    CHECK(s.primary.acquires == 4);
    CHECK(primary.server->queries() == 4);
}

TEST_CASE("router: a busy replica does not push reads onto the primary", "[router]") {
    Side primary, replica({.min_size = 1, .max_size = 1});
    Router<MockPool> router(*primary.pool, replica.pool.get());
    auto held = router.acquire_read();  // the replica's only connection

    CHECK_THROWS_AS(router.acquire_read(30ms), reservoir::AcquireTimeout);
    const auto s = router.stats();
    CHECK(s.fallback_reads == 0);
    CHECK(s.replica_reads == 1);
    CHECK(s.primary.acquires == 0);
    CHECK(primary.server->queries() == 0);
}

TEST_CASE("router: writes never fall back to the replica", "[router]") {
    Side primary({.min_size = 0, .max_size = 2, .breaker_threshold = 1}, 1.0), replica;
    Router<MockPool> router(*primary.pool, replica.pool.get());

    CHECK_THROWS_AS(router.acquire_write(2s), reservoir::PoolUnavailable);
    CHECK(replica.server->connect_attempts() == 0);
    const auto s = router.stats();
    CHECK(s.writes == 0);
    REQUIRE(s.replica);
    CHECK(s.replica->acquires == 0);
}

TEST_CASE("router: from the global pools named primary and replica", "[router][global]") {
    using Global = reservoir::global<MockPool>;
    Global::reset();
    CHECK_THROWS_WITH(Router<MockPool>::from_global(), Catch::Contains("\"primary\" is not initialized"));

    auto primary_server = std::make_shared<Server>(), replica_server = std::make_shared<Server>();
    MockPool& primary =
        Global::init_named("primary", Driver(primary_server), PoolOptions{.min_size = 0, .max_size = 2});
    {
        auto router = Router<MockPool>::from_global();  // no replica yet: reads fall back
        CHECK(router.replica() == nullptr);
        router.acquire_read()->execute("select");
        CHECK(router.stats().fallback_reads == 1);
    }
    MockPool& replica =
        Global::init_named("replica", Driver(replica_server), PoolOptions{.min_size = 0, .max_size = 2});
    {
        auto router = Router<MockPool>::from_global();
        CHECK(&router.primary() == &primary);
        CHECK(router.replica() == &replica);
        router.acquire_read()->execute("select");
        router.acquire_write()->execute("update");
        CHECK(replica_server->queries() == 1);
        CHECK(primary_server->queries() == 2);
    }
    Global::reset();
}

TEST_CASE("router: many threads at once, counters add up", "[router]") {
    Side primary, replica;
    Router<MockPool> router(*primary.pool, replica.pool.get());
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                if ((i + t) % 4 == 0)
                    router.acquire_write(5s)->execute("update");
                else
                    router.acquire_read(5s)->execute("select");
            }
        });
    for (auto& th : threads) th.join();
    const auto s = router.stats();
    CHECK(s.writes == 400);
    CHECK(s.replica_reads == 1200);
    CHECK(s.fallback_reads == 0);
    CHECK(primary.server->queries() == 400);
    CHECK(replica.server->queries() == 1200);
}
