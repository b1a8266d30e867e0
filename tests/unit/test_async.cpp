// async_acquire: callbacks in the pool's one FIFO queue, with the mock driver.

#include <catch2/catch.hpp>

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::MockPool;
using reservoir::PoolOptions;
using reservoir::mock::Driver;
using reservoir::mock::Server;

namespace {

using MockOutcome = test::Outcome<MockPool::Lease>;
using ManualOutcome = test::Outcome<test::ManualPool<>::Lease>;

std::unique_ptr<MockPool> make_pool(const std::shared_ptr<Server>& server, PoolOptions o) {
    auto pool = std::make_unique<MockPool>(Driver(server), o);
    REQUIRE(test::eventually([&] { return pool->stats().idle == o.min_size; }));
    return pool;
}

}  // namespace

TEST_CASE("async_acquire with a connection idle calls back before it returns", "[async]") {
    auto server = std::make_shared<Server>();
    auto pool = make_pool(server, {.min_size = 1, .max_size = 1});
    MockOutcome got;
    pool->async_acquire(got.callback());
    REQUIRE(got.calls == 1);
    CHECK(got.thread == std::this_thread::get_id());
    CHECK_FALSE(got.error);
    REQUIRE(got.lease);
    CHECK(got.lease->execute("select") == "ok");
    CHECK(pool->stats().in_use == 1);
    got.lease.release();
    CHECK(pool->stats().idle == 1);
}

TEST_CASE("async and blocking acquirers share one queue, first come first served", "[async][fifo]") {
    auto server = std::make_shared<Server>();
    auto pool = make_pool(server, {.min_size = 1, .max_size = 1});
    auto held = pool->acquire();

    std::mutex mu;
    std::vector<std::string> order;
    const auto note = [&](const char* who) {
        std::lock_guard lk(mu);
        order.push_back(who);
    };
    // Each callback returns its lease when it returns: that serves the next in line.
    pool->async_acquire(10s, [&](MockPool::Lease lease, std::exception_ptr e) { note(lease && !e ? "async 1" : "failed"); });
    REQUIRE(pool->stats().waiting == 1);  // queued before async_acquire returned
    std::thread blocking([&] {
        auto lease = pool->acquire(10s);
        note("blocking");
    });
    REQUIRE(test::eventually([&] { return pool->stats().waiting == 2; }));
    pool->async_acquire(10s, [&](MockPool::Lease lease, std::exception_ptr e) { note(lease && !e ? "async 2" : "failed"); });
    CHECK(pool->stats().waiting == 3);

    held.release();
    blocking.join();
    REQUIRE(test::eventually([&] { return pool->stats().idle == 1; }));
    std::lock_guard lk(mu);
    CHECK(order == std::vector<std::string>{"async 1", "blocking", "async 2"});
    CHECK(pool->stats().waiting == 0);
}

TEST_CASE("a returned connection goes straight to a queued async waiter, on the returning thread", "[async]") {
    auto server = std::make_shared<Server>();
    // A long handoff_after: a thread waiter would be woken to claim it instead.
    auto pool = make_pool(server, {.min_size = 1, .max_size = 1, .handoff_after = 1h});
    auto held = pool->acquire();
    const auto id = held->id();
    MockOutcome got;
    pool->async_acquire(10s, got.callback());
    CHECK(got.calls == 0);

    std::thread returner([&] { held.release(); });
    const auto returner_id = returner.get_id();
    returner.join();
    REQUIRE(got.done());
    CHECK(got.thread == returner_id);
    REQUIRE(got.lease);
    CHECK(got.lease->id() == id);
    CHECK_FALSE(pool->try_acquire());  // it was never left idle for someone else
}

TEST_CASE("an async waiter times out at its deadline, with the pool's state in the message", "[async][acquire]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    auto held = pool->acquire();
    ManualOutcome got;
    pool->async_acquire(50ms, got.callback());
    pool->maintain();
    CHECK(got.calls == 0);
    rig.clock.advance(49ms);
    pool->maintain();
    CHECK(got.calls == 0);
    rig.clock.advance(1ms);
    pool->maintain();
    REQUIRE(got.calls == 1);
    CHECK_FALSE(got.lease);
    try {
        std::rethrow_exception(got.error);
    } catch (const reservoir::AcquireTimeout& e) {
        CHECK(e.waited() == 50ms);
        CHECK_THAT(e.what(), Catch::Contains("acquire timed out after 50 ms") &&
                                 Catch::Contains("total=1 idle=0 in_use=1 waiting=1"));
    }
    const auto st = pool->stats();
    CHECK(st.acquire_timeouts == 1);
    CHECK(st.waiting == 0);
    held.release();
    CHECK(pool->stats().idle == 1);  // nobody is left in the queue to hand it to
}

TEST_CASE("a pool worker keeps async deadlines", "[async][acquire]") {
    auto server = std::make_shared<Server>();
    auto pool = make_pool(server, {.min_size = 1, .max_size = 1});
    auto held = pool->acquire();
    MockOutcome late, early;
    pool->async_acquire(1h, late.callback());
    pool->async_acquire(20ms, early.callback());  // after one that waits longer: the worker must wake sooner
    REQUIRE(test::eventually([&] { return early.done(); }));
    CHECK_THAT(early.error_text(), Catch::Contains("acquire timed out"));
    CHECK(early.thread != std::this_thread::get_id());
    CHECK_FALSE(late.done());
    held.release();
    REQUIRE(late.done());  // handed over by the release, first in line
    CHECK(late.lease);
}

TEST_CASE("shutdown and the pool's end fail queued async waiters with PoolClosed", "[async][shutdown]") {
    auto server = std::make_shared<Server>();
    auto pool = make_pool(server, {.min_size = 1, .max_size = 1});
    auto held = pool->acquire();
    MockOutcome a, b;
    pool->async_acquire(1h, a.callback());
    CHECK_FALSE(pool->shutdown(10ms));  // the lease is still out
    REQUIRE(a.done());
    CHECK_THAT(a.error_text(), Catch::Contains("pool is closed"));
    pool->async_acquire(1h, b.callback());
    REQUIRE(b.done());  // at once
    CHECK_THAT(b.error_text(), Catch::Contains("pool is closed"));

    auto server2 = std::make_shared<Server>();
    auto pool2 = make_pool(server2, {.min_size = 1, .max_size = 1});
    auto held2 = pool2->acquire();
    MockOutcome c;
    pool2->async_acquire(1h, c.callback());
    pool2.reset();
    REQUIRE(c.done());
    CHECK_THAT(c.error_text(), Catch::Contains("pool is closed"));
    held2.release();  // after the pool: closed, not leaked
    CHECK(server2->live() == 0);
}

TEST_CASE("a connection that fails the borrow check is replaced before an async waiter gets it", "[async][health]") {
    auto server = std::make_shared<Server>();
    auto pool = make_pool(server, {.min_size = 1, .max_size = 1});
    auto held = pool->acquire();
    const auto first = held->id();
    MockOutcome got;
    pool->async_acquire(10s, got.callback());
    held->break_locally();
    held.release();  // handed to the waiter, which finds it broken: closed, and the waiter stays first
    REQUIRE(test::eventually([&] { return got.done(); }));
    CHECK_FALSE(got.error);
    REQUIRE(got.lease);
    CHECK(got.lease->id() != first);
    CHECK(got.lease->alive());
    CHECK(pool->stats().closes.broken == 1);
}

TEST_CASE("async_acquire never pings: a connection due one is pinged by a worker, then lent", "[async][health]") {
    test::ManualRig rig;  // no worker threads: the test runs the worker's job with maintain()
    auto pool = rig.make({.min_size = 1, .max_size = 1, .validate_after_idle = 0ms});  // a ping every borrow
    pool->maintain();
    ManualOutcome got;
    pool->async_acquire(10s, got.callback());
    CHECK(got.calls == 0);
    CHECK(rig.server->pings() == 0);
    CHECK(pool->stats().waiting == 1);
    pool->maintain();
    REQUIRE(got.calls == 1);
    REQUIRE(got.lease);
    CHECK(rig.server->pings() == 1);  // the worker's ping stood for the borrow's
    got.lease.release();

    // A dead connection fails the worker's ping and is replaced.
    rig.server->restart();
    ManualOutcome again;
    pool->async_acquire(10s, again.callback());
    CHECK(again.calls == 0);
    pool->maintain();
    REQUIRE(again.calls == 1);
    REQUIRE(again.lease);
    CHECK(again.lease->alive());
    CHECK(pool->stats().closes.broken == 1);
}

TEST_CASE("a saturated pool and an open breaker fail async_acquire at once", "[async][acquire]") {
    auto server = std::make_shared<Server>();
    auto pool = make_pool(server, {.min_size = 1, .max_size = 1, .max_waiters = 1});
    auto held = pool->acquire();
    MockOutcome first, second;
    pool->async_acquire(1h, first.callback());
    pool->async_acquire(1h, second.callback());
    REQUIRE(second.done());
    CHECK_THAT(second.error_text(), Catch::Contains("pool saturated") && Catch::Contains("max_waiters = 1"));
    CHECK_FALSE(first.done());
    held.release();
    CHECK(first.done());
}
