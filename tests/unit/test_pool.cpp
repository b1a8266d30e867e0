// The pool's contract, with the mock driver: leases, acquire and its errors,
// FIFO hand-off, sizing, stats and shutdown.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::MockPool;
using reservoir::PoolOptions;
using reservoir::mock::Driver;
using reservoir::mock::Server;

namespace {

struct Rig {
    std::shared_ptr<Server> server = std::make_shared<Server>();
    std::unique_ptr<MockPool> pool;

    explicit Rig(PoolOptions o) : pool(std::make_unique<MockPool>(Driver(server), o)) {
        REQUIRE(test::eventually([&] { return pool->stats().idle == o.min_size; }));
    }
};

}  // namespace

TEST_CASE("a lease is move-only and returns its connection when destroyed", "[lease]") {
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<MockPool::Lease>);
    STATIC_REQUIRE_FALSE(std::is_copy_assignable_v<MockPool::Lease>);
    STATIC_REQUIRE(std::is_nothrow_move_constructible_v<MockPool::Lease>);
    STATIC_REQUIRE(std::is_nothrow_move_assignable_v<MockPool::Lease>);
    STATIC_REQUIRE(std::is_nothrow_destructible_v<MockPool::Lease>);

    Rig rig({.min_size = 1, .max_size = 1});
    std::uint64_t id = 0;
    {
        auto lease = rig.pool->acquire();
        REQUIRE(lease);
        id = lease->id();
        CHECK((*lease).id() == id);
        CHECK(lease->execute("select") == "ok");
        CHECK(rig.pool->stats().in_use == 1);

        auto moved = std::move(lease);
        CHECK_FALSE(lease);
        CHECK(moved->id() == id);
        CHECK(rig.pool->stats().in_use == 1);
    }
    const auto st = rig.pool->stats();
    CHECK(st.in_use == 0);
    CHECK(st.idle == 1);
    CHECK(rig.pool->acquire()->id() == id);  // the same connection, reused
}

TEST_CASE("release() returns early and move-assignment returns the old connection", "[lease]") {
    Rig rig({.min_size = 2, .max_size = 2});
    auto a = rig.pool->acquire();
    auto b = rig.pool->acquire();
    a = std::move(b);  // a's first connection goes back
    CHECK(rig.pool->stats().in_use == 1);
    a.release();
    CHECK_FALSE(a);
    CHECK(rig.pool->stats().in_use == 0);
    a.release();  // twice is harmless
}

TEST_CASE("discard() closes a broken connection and the pool replaces it", "[lease]") {
    Rig rig({.min_size = 1, .max_size = 1});
    auto lease = rig.pool->acquire();
    const auto id = lease->id();
    lease.discard();
    CHECK_FALSE(lease);
    CHECK(rig.pool->stats().closes.discarded == 1);
    auto next = rig.pool->acquire();  // a fresh connection, opened on demand
    CHECK(next->id() != id);
    CHECK(rig.server->live() == 1);
}

TEST_CASE("a connection that broke while lent is closed before anyone borrows it again", "[lease]") {
    Rig rig({.min_size = 1, .max_size = 1});
    {
        auto lease = rig.pool->acquire();
        lease->break_locally();
    }
    CHECK(rig.pool->acquire()->broken() == false);  // the borrow's local check caught it; a new one was opened
    CHECK(rig.pool->stats().closes.broken == 1);
    CHECK(rig.server->connects() == 2);
}

TEST_CASE("acquire times out with the wait and the pool's state in the message", "[acquire]") {
    Rig rig({.min_size = 2, .max_size = 2});
    auto a = rig.pool->acquire();
    auto b = rig.pool->acquire();
    const auto start = std::chrono::steady_clock::now();
    try {
        (void)rig.pool->acquire(30ms);
        FAIL("acquire should have timed out");
    } catch (const reservoir::AcquireTimeout& e) {
        CHECK(std::chrono::steady_clock::now() - start >= 30ms);
        CHECK(e.waited() >= 30ms);
        CHECK(e.kind() == reservoir::ErrorKind::acquire_timeout);
        const std::string msg = e.what();
        CHECK_THAT(msg, Catch::Contains("acquire timed out after"));
        CHECK_THAT(msg, Catch::Contains("total=2 idle=0 in_use=2 waiting=1 connecting=0 max=2"));
    }
    const auto st = rig.pool->stats();
    CHECK(st.acquire_timeouts == 1);
    CHECK(st.waiting == 0);
}

TEST_CASE("waiters whose deadlines pass together are timed out together, by the first to wake", "[acquire]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    auto held = pool->acquire();
    std::vector<std::string> messages(3);
    std::vector<std::thread> due;
    for (std::size_t i = 0; i < messages.size(); ++i)
        due.emplace_back([&, i] {
            try {
                (void)pool->acquire(10ms);
            } catch (const reservoir::AcquireTimeout& e) {
                messages[i] = e.what();
            }
        });
    REQUIRE(test::eventually([&] { return pool->stats().waiting == 3; }));
    const auto held_id = held->id();
    std::atomic<bool> later_served{false};
    std::thread later([&] { later_served = pool->acquire(1h)->id() == held_id; });
    REQUIRE(test::eventually([&] { return pool->stats().waiting == 4; }));

    rig.clock.advance(10ms);
    for (auto& t : due) t.join();
    // One pass timed all three out: each message shows the queue as it was
    // before any of them left it (one by one, they would show 4, 3 and 2).
    for (const auto& m : messages) CHECK_THAT(m, Catch::Contains("waiting=4"));
    CHECK(pool->stats().acquire_timeouts == 3);
    CHECK(pool->stats().waiting == 1);  // a deadline not yet passed is left alone

    held.release();
    later.join();
    CHECK(later_served);
}

TEST_CASE("an acquire timeout names the last connect error", "[acquire]") {
    auto server = std::make_shared<Server>();
    server->fail_next_connects(1000);
    MockPool pool(Driver(server),
                  {.min_size = 1, .max_size = 1, .retry_initial = 1ms, .retry_max = 2ms, .breaker_threshold = 0});
    REQUIRE(test::eventually([&] { return pool.stats().connect_failures >= 1; }));
    CHECK_THROWS_WITH(pool.acquire(10ms), Catch::Contains("last connect error: mock: connection refused"));
}

TEST_CASE("try_acquire never blocks", "[acquire]") {
    Rig rig({.min_size = 1, .max_size = 1});
    auto held = rig.pool->try_acquire();
    REQUIRE(held);
    const auto start = std::chrono::steady_clock::now();
    auto none = rig.pool->try_acquire();
    CHECK_FALSE(none);
    CHECK(std::chrono::steady_clock::now() - start < 1s);  // generous: it returns at once
    held.release();
    CHECK(rig.pool->try_acquire());
}

TEST_CASE("waiters are served first come, first served", "[acquire][fifo]") {
    Rig rig({.min_size = 1, .max_size = 1});
    auto held = rig.pool->acquire();

    std::mutex mu;
    std::vector<int> order;
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&, i] {
            auto lease = rig.pool->acquire(10s);
            std::lock_guard lk(mu);
            order.push_back(i);
        });
        // Each waiter queues before the next one starts.
        REQUIRE(test::eventually([&] { return rig.pool->stats().waiting == static_cast<std::size_t>(i + 1); }));
    }
    held.release();  // goes to waiter 0, whose release goes to waiter 1, ...
    for (auto& t : threads) t.join();
    CHECK(order == std::vector<int>{0, 1, 2, 3});
}

// The waiter is on its own thread and keeps what it gets until the test lets
// go; the test returns the connection and at once asks for it again, as a
// busy worker would. Whether that newcomer may take it first depends on how
// long the waiter has waited.
namespace {
struct QueuedWaiter {
    test::ManualRig rig;
    std::unique_ptr<test::ManualPool<>> pool;
    test::ManualPool<>::Lease held;
    std::atomic<bool> served{false}, let_go{false};
    std::thread waiter;

    explicit QueuedWaiter(std::chrono::milliseconds handoff_after)
        : pool(rig.make({.min_size = 1, .max_size = 1, .handoff_after = handoff_after})) {
        held = pool->acquire();
        waiter = std::thread([this] {
            auto lease = pool->acquire(10s);
            served = true;
            (void)test::eventually([&] { return let_go.load(); }, 10s);
        });
        REQUIRE(test::eventually([&] { return pool->stats().waiting == 1; }));
    }
    void finish() {
        let_go = true;
        if (waiter.joinable()) waiter.join();
    }
    ~QueuedWaiter() { finish(); }
};
}  // namespace

TEST_CASE("with handoff_after = 0 a returned connection always goes straight to the oldest waiter",
          "[acquire][fifo]") {
    QueuedWaiter q(0ms);
    q.held.release();
    CHECK_FALSE(q.pool->try_acquire());  // already the waiter's, though it may not have woken yet
    CHECK(test::eventually([&] { return q.served.load(); }));
}

TEST_CASE("a waiter queued longer than handoff_after is handed the next connection directly",
          "[acquire][fifo]") {
    QueuedWaiter q(1ms);
    q.rig.clock.advance(2ms);
    q.held.release();
    CHECK_FALSE(q.pool->try_acquire());
    CHECK(test::eventually([&] { return q.served.load(); }));
}

TEST_CASE("within handoff_after a returned connection waits idle for the woken waiter, and is not lost",
          "[acquire][fifo]") {
    QueuedWaiter q(1s);
    q.held.release();
    // The waiter was woken to claim it; a thread arriving first may take it.
    // A waiter beaten to it sleeps until its hand-off is due (handoff_after
    // after it queued), then claims the connection left idle.
    if (auto newcomer = q.pool->try_acquire()) {
        CHECK_FALSE(q.served);
        newcomer.release();
        q.rig.clock.advance(1s);
    }
    CHECK(test::eventually([&] { return q.served.load(); }));
    q.finish();
    const auto st = q.pool->stats();
    CHECK(st.total == 1);  // the woken waiter never asked for a connect
    CHECK(st.connects == 1);
}

TEST_CASE("connections returned back to back serve each queued waiter in turn, with no release in between",
          "[acquire][fifo]") {
    // Within handoff_after nothing is handed over: the first return wakes the
    // oldest waiter, the second finds it already woken and is left idle. The
    // first waiter, served, must pass the turn on to the next one, or that one
    // sleeps until its deadline beside an idle connection.
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 2, .max_size = 2, .handoff_after = 1s});
    pool->maintain();
    auto a = pool->acquire();
    auto b = pool->acquire();
    std::atomic<int> served{0};
    std::atomic<bool> let_go{false};
    std::vector<std::thread> waiters;
    for (int i = 0; i < 2; ++i) {
        waiters.emplace_back([&] {
            auto lease = pool->acquire(10s);
            ++served;
            (void)test::eventually([&] { return let_go.load(); }, 10s);
        });
        REQUIRE(test::eventually([&] { return pool->stats().waiting == static_cast<std::size_t>(i + 1); }));
    }
    a.release();
    b.release();
    CHECK(test::eventually([&] { return served.load() == 2; }));  // the test clock stands still: no hand-off falls due
    let_go = true;
    for (auto& t : waiters) t.join();
    CHECK(pool->stats().acquire_timeouts == 0);
}

TEST_CASE("min connections open at start, and the pool grows on demand up to max", "[sizing]") {
    Rig rig({.min_size = 3, .max_size = 5});
    CHECK(rig.pool->stats().total == 3);
    CHECK(rig.server->live() == 3);

    std::vector<MockPool::Lease> leases;
    for (int i = 0; i < 5; ++i) leases.push_back(rig.pool->acquire());
    CHECK(rig.pool->stats().total == 5);
    CHECK_THROWS_AS(rig.pool->acquire(20ms), reservoir::AcquireTimeout);
    CHECK(rig.server->peak() == 5);
    CHECK(rig.pool->stats().connects == 5);
}

TEST_CASE("idle connections above min close after the idle timeout", "[sizing]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 4, .idle_timeout = 30s});
    pool->maintain();
    CHECK(pool->stats().total == 1);
    {
        auto a = pool->acquire();
        auto b = pool->acquire();
        auto c = pool->acquire();
        CHECK(pool->stats().total == 3);
    }
    rig.clock.advance(29s);
    pool->maintain();
    CHECK(pool->stats().total == 3);

    rig.clock.advance(2s);
    pool->maintain();
    const auto st = pool->stats();
    CHECK(st.total == 1);
    CHECK(st.closes.idle_timeout == 2);
    CHECK(rig.server->live() == 1);
}

TEST_CASE("connects run outside the pool's lock", "[sizing]") {
    // The connect hook calls back into the pool. Were the connect under the
    // pool's (non-recursive) lock, this would deadlock.
    auto server = std::make_shared<Server>();
    std::atomic<MockPool*> self{nullptr};
    std::atomic<int> calls{0};
    server->on_connect([&] {
        if (MockPool* pool = self.load()) {
            (void)pool->stats();
            (void)pool->try_acquire();
            calls.fetch_add(1);
        }
    });
    MockPool pool(Driver(server), {.min_size = 0, .max_size = 2});
    self = &pool;
    auto lease = pool.acquire(5s);
    CHECK(calls.load() >= 1);
}

TEST_CASE("stats add up and count what happened", "[stats]") {
    Rig rig({.min_size = 2, .max_size = 3});
    auto a = rig.pool->acquire();
    auto b = rig.pool->acquire();
    auto c = rig.pool->acquire();
    CHECK_THROWS_AS(rig.pool->acquire(10ms), reservoir::AcquireTimeout);
    c.discard();
    b.release();

    const auto st = rig.pool->stats();
    CHECK(st.total == st.idle + st.in_use + st.resetting);
    CHECK(st.in_use == 1);
    CHECK(st.min == 2);
    CHECK(st.max == 3);
    CHECK(st.acquires == 3);
    CHECK(st.acquire_timeouts == 1);
    CHECK(st.connects == 3);
    CHECK(st.connect_failures == 0);
    CHECK(st.closes.discarded == 1);
    CHECK(st.closes.total() == 1);
    CHECK(st.last_connect_error.empty());
}

TEST_CASE("shutdown fails new acquires, wakes waiters, waits for leases, then closes", "[shutdown]") {
    Rig rig({.min_size = 2, .max_size = 2});
    auto a = rig.pool->acquire();
    auto b = rig.pool->acquire();

    std::atomic<bool> waiter_closed{false};
    std::thread waiter([&] {
        try {
            (void)rig.pool->acquire(30s);
        } catch (const reservoir::PoolClosed&) {
            waiter_closed = true;
        }
    });
    REQUIRE(test::eventually([&] { return rig.pool->stats().waiting == 1; }));

    std::thread returner([&] {
        REQUIRE(test::eventually([&] { return waiter_closed.load(); }));
        a.release();
        b.release();
    });
    CHECK(rig.pool->shutdown(30s));  // true: every lease came back
    waiter.join();
    returner.join();
    CHECK(waiter_closed);
    CHECK(rig.server->live() == 0);
    CHECK(rig.pool->stats().closes.shutdown == 2);
    CHECK_THROWS_AS(rig.pool->acquire(), reservoir::PoolClosed);
    CHECK_THROWS_AS(rig.pool->try_acquire(), reservoir::PoolClosed);
}

TEST_CASE("shutdown gives up on leases at its deadline; they close when they come back", "[shutdown]") {
    Rig rig({.min_size = 2, .max_size = 2});
    auto held = rig.pool->acquire();
    CHECK_FALSE(rig.pool->shutdown(10ms));
    CHECK(rig.server->live() == 1);  // the idle one closed, the lent one is still out
    held.release();
    CHECK(rig.server->live() == 0);
}

TEST_CASE("a lease may outlive its pool", "[shutdown]") {
    auto server = std::make_shared<Server>();
    MockPool::Lease survivor;
    {
        MockPool pool(Driver(server), {.min_size = 1, .max_size = 2});
        survivor = pool.acquire();
    }
    CHECK(server->live() == 1);
    CHECK(survivor->execute("select") == "ok");
    survivor.release();
    CHECK(server->live() == 0);
}

TEST_CASE("the destructor stops connects in flight and joins its workers", "[shutdown]") {
    auto server = std::make_shared<Server>();
    server->set_connect_latency(1h);
    const auto start = std::chrono::steady_clock::now();
    {
        MockPool pool(Driver(server), {.min_size = 2, .max_size = 2, .connect_timeout = 1h});
        REQUIRE(test::eventually([&] { return pool.stats().connecting == 2; }));
    }
    // Joined: nothing of the pool is left running, so its driver's reference
    // to the server is already gone.
    CHECK(server.use_count() == 1);
    CHECK(server->live() == 0);
    CHECK(std::chrono::steady_clock::now() - start < 1min);  // long before any connect deadline
}

TEST_CASE("a failed connect backs off before the next attempt", "[health][retry]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1, .retry_initial = 100ms, .retry_max = 1s});
    rig.server->fail_next_connects(1);
    pool->maintain();
    CHECK(rig.server->connect_attempts() == 1);
    CHECK(pool->stats().connect_failures == 1);
    CHECK(pool->stats().last_connect_error == "mock: connection refused");
    CHECK(pool->last_connect_error() == "mock: connection refused");

    pool->maintain();  // still inside the backoff window at most 100 ms long
    if (rig.server->connect_attempts() == 1) {
        rig.clock.advance(101ms);
        pool->maintain();
    }
    CHECK(rig.server->connect_attempts() == 2);
    CHECK(pool->stats().total == 1);
    CHECK(pool->stats().last_connect_error.empty());
    CHECK(pool->last_connect_error().empty());
}

TEST_CASE("a connection idle past validate_after_idle is pinged on borrow; a dead one is replaced",
          "[health]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1, .validate_after_idle = 500ms});
    pool->maintain();
    std::uint64_t first = 0;
    {
        auto lease = pool->acquire();
        first = lease->id();
    }
    CHECK(rig.server->pings() == 0);  // returned just now: no ping
    CHECK(pool->acquire()->id() == first);
    CHECK(rig.server->pings() == 0);

    rig.server->restart();  // the connection dies silently
    rig.clock.advance(1s);
    auto lease = pool->acquire();
    CHECK(rig.server->pings() == 1);
    CHECK(lease->id() != first);
    CHECK(lease->alive());
    CHECK(pool->stats().closes.broken == 1);
}

TEST_CASE("a borrow-time ping that runs out of a short deadline is no verdict: a worker pings again",
          "[health]") {
    Rig rig({.min_size = 1, .max_size = 1, .validate_after_idle = 0ms});  // a ping on every borrow
    const auto first = rig.pool->acquire()->id();
    CHECK(rig.server->pings() == 1);
    rig.server->set_ping_latency(20ms);
    CHECK_THROWS_AS(rig.pool->acquire(1ms), reservoir::AcquireTimeout);
    // The worker's ping (ping_verdict_time, 100 ms) is answered: the connection is kept.
    REQUIRE(test::eventually([&] { return rig.pool->stats().idle == 1; }));
    CHECK(rig.server->pings() == 3);  // the one out of time, then the worker's
    CHECK(rig.pool->stats().closes.broken == 0);
    CHECK(rig.server->connects() == 1);
    rig.server->set_ping_latency(0ms);
    CHECK(rig.pool->acquire()->id() == first);

    // A dead connection fails the worker's ping too, and is replaced.
    rig.server->set_ping_latency(20ms);
    rig.server->restart();
    CHECK_THROWS_AS(rig.pool->acquire(1ms), reservoir::AcquireTimeout);
    REQUIRE(test::eventually([&] { return rig.pool->stats().closes.broken == 1; }));
    rig.server->set_ping_latency(0ms);
    const auto second = rig.pool->acquire()->id();
    CHECK(second != first);

    // A ping that had a fair time (ping_verdict_time, 100 ms) and still timed out is a verdict.
    rig.server->set_ping_latency(1s);
    CHECK_THROWS_AS(rig.pool->acquire(150ms), reservoir::AcquireTimeout);
    CHECK(rig.pool->stats().closes.broken == 2);  // closed by the borrower, before it gave up
}

TEST_CASE("connections past their lifetime are retired on return, never while lent", "[health]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1, .max_lifetime = 10min, .lifetime_jitter = 0.0});
    pool->maintain();
    auto lease = pool->acquire();
    const auto first = lease->id();
    rig.clock.advance(11min);
    pool->maintain();
    CHECK(rig.server->live() == 1);  // lent: untouched
    lease.release();
    CHECK(pool->stats().closes.lifetime == 1);
    CHECK(pool->acquire()->id() != first);
}

TEST_CASE("max_uses retires a connection after that many leases", "[health]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1, .max_uses = 3});
    pool->maintain();
    std::uint64_t first = pool->acquire()->id();
    CHECK(pool->acquire()->id() == first);
    CHECK(pool->acquire()->id() == first);
    CHECK(pool->acquire()->id() != first);
    CHECK(pool->stats().closes.lifetime == 1);
}

TEST_CASE("keepalive pings idle connections and replaces dead ones", "[health]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 2, .max_size = 2, .keepalive_interval = 10s});
    pool->maintain();
    rig.clock.advance(5s);
    pool->maintain();
    CHECK(rig.server->pings() == 0);
    rig.server->restart();
    rig.clock.advance(6s);
    pool->maintain();
    CHECK(rig.server->pings() == 2);
    CHECK(pool->stats().closes.broken == 2);
    CHECK(pool->stats().total == 2);  // replaced in the same maintenance pass
    CHECK(pool->acquire()->alive());
}

TEST_CASE("a dirty connection is reset before anyone else gets it", "[context]") {
    test::ManualRig rig;
    auto pool = rig.make<test::ManualPool<reservoir::health::Trusting, reservoir::mock::ResetDirty>>(
        {.min_size = 1, .max_size = 1});
    pool->maintain();
    {
        auto lease = pool->acquire();
        lease->execute("set");
        CHECK(lease->dirty());
    }
    CHECK(pool->stats().resetting == 1);
    auto next = pool->acquire();  // the waiting acquirer runs the pending reset
    CHECK_FALSE(next->dirty());
    CHECK(pool->stats().closes.total() == 0);
}

TEST_CASE("pool options are validated, naming the field and the value", "[options]") {
    auto server = std::make_shared<Server>();
    auto message = [&](PoolOptions o) -> std::string {
        try {
            MockPool pool(Driver(server), o);
        } catch (const reservoir::ConfigError& e) {
            return e.what();
        }
        return "no error";
    };
    CHECK(message({.min_size = 5, .max_size = 4}) ==
          "reservoir: invalid pool option min_size = 5: must not exceed max_size (4)");
    CHECK(message({.max_size = 0}) == "reservoir: invalid pool option max_size = 0: must be between 1 and 10000");
    CHECK(message({.max_size = 20000}) ==
          "reservoir: invalid pool option max_size = 20000: must be between 1 and 10000");
    CHECK(message({.idle_timeout = -1ms}) ==
          "reservoir: invalid pool option idle_timeout = -1ms: must not be negative");
    CHECK(message({.acquire_timeout = -5ms}) ==
          "reservoir: invalid pool option acquire_timeout = -5ms: must not be negative");
    CHECK(message({.connect_timeout = 0ms}) == "reservoir: invalid pool option connect_timeout = 0ms: must be positive");
    CHECK(message({.max_connecting = 0}) == "reservoir: invalid pool option max_connecting = 0: must be at least 1");
    CHECK_THAT(message({.handoff_patience = 0.5}),
               Catch::StartsWith("reservoir: invalid pool option handoff_patience = 0.5"));
    CHECK_THAT(message({.lifetime_jitter = 1.5}), Catch::StartsWith("reservoir: invalid pool option lifetime_jitter = 1.5"));
    CHECK(message({.retry_initial = 0ms}) == "reservoir: invalid pool option retry_initial = 0ms: must be positive");
    CHECK(message({.retry_initial = 10ms, .retry_max = 5ms}) ==
          "reservoir: invalid pool option retry_max = 5ms: must be at least retry_initial");
    CHECK(message({}) == "no error");
}

TEST_CASE("mock connect failures: a count, then a seeded probability", "[mock]") {
    auto server = std::make_shared<Server>(42);
    Driver driver(server);
    const auto deadline = std::chrono::steady_clock::now() + 1s;
    server->fail_next_connects(2);
    CHECK_THROWS_AS(driver.connect(deadline), reservoir::ConnectError);
    CHECK_THROWS_AS(driver.connect(deadline), reservoir::ConnectError);
    {
        auto c = driver.connect(deadline);
        CHECK(server->live() == 1);
    }
    CHECK(server->live() == 0);

    auto failures_in_1000 = [](std::uint64_t seed) {
        auto s = std::make_shared<Server>(seed);
        s->set_connect_failure_rate(0.25);
        Driver d(s);
        int failures = 0;
        for (int i = 0; i < 1000; ++i) {
            try {
                d.connect(std::chrono::steady_clock::now() + 1s);
            } catch (const reservoir::ConnectError&) {
                ++failures;
            }
        }
        return failures;
    };
    const int failures = failures_in_1000(7);
    CHECK(failures == failures_in_1000(7));  // reproducible
    CHECK(failures > 150);
    CHECK(failures < 350);
}

TEST_CASE("mock connect latency is bounded by the deadline", "[mock]") {
    auto server = std::make_shared<Server>();
    server->set_connect_latency(10s);
    Driver driver(server);
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(driver.connect(start + 20ms), "mock: connect timed out");
    CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("the breaker opens after consecutive connect failures, fails fast, probes, and closes", "[health][breaker]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 2, .retry_initial = 10ms, .retry_max = 10ms,
                          .breaker_threshold = 3, .breaker_cooldown = 1s});
    rig.server->fail_next_connects(4);  // three trip it, the first probe fails too
    for (int i = 0; i < 3; ++i) {
        pool->maintain();
        rig.clock.advance(11ms);
    }
    CHECK(rig.server->connect_attempts() == 3);
    auto st = pool->stats();
    CHECK(st.breaker == reservoir::BreakerState::open);
    CHECK(st.breaker_trips == 1);

    // No connection can serve, so acquire fails at once, saying why and when.
    try {
        (void)pool->acquire(10s);
        FAIL("acquire should fail fast");
    } catch (const reservoir::PoolUnavailable& e) {
        CHECK(e.kind() == reservoir::ErrorKind::pool_unavailable);
        CHECK(e.retry_in() > 900ms);
        CHECK(e.retry_in() <= 1s);
        CHECK_THAT(e.what(), Catch::Contains("3 consecutive connect failures"));
        CHECK_THAT(e.what(), Catch::Contains("last connect error: mock: connection refused"));
    }
    pool->maintain();  // cooling down: no dialing
    CHECK(rig.server->connect_attempts() == 3);

    rig.clock.advance(1s);
    CHECK(pool->stats().breaker == reservoir::BreakerState::half_open);
    pool->maintain();  // one probe, which fails: open again
    CHECK(rig.server->connect_attempts() == 4);
    CHECK(pool->stats().breaker == reservoir::BreakerState::open);
    CHECK(pool->stats().breaker_trips == 1);  // still the same outage

    rig.clock.advance(1s);
    pool->maintain();  // the probe succeeds
    st = pool->stats();
    CHECK(st.breaker == reservoir::BreakerState::closed);
    CHECK(st.total == 1);
    CHECK(pool->acquire()->alive());
}

TEST_CASE("a pool with min_size 0 probes after the cooldown when asked, and serves again", "[health][breaker]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 1, .retry_initial = 1ms, .retry_max = 1ms,
                          .breaker_threshold = 2, .breaker_cooldown = 20ms});
    rig.server->fail_next_connects(2);
    // No connection stays open to keep it dialing: only acquirers ask for
    // connects (the waiter runs them itself: no background threads here).
    std::thread first([&] { CHECK_THROWS_AS(pool->acquire(5s), reservoir::PoolUnavailable); });
    REQUIRE(test::eventually([&] { return pool->stats().connect_failures == 1; }));
    rig.clock.advance(5ms);  // past the backoff (at most retry_max): the second failure trips it
    first.join();
    CHECK(rig.server->connect_attempts() == 2);
    CHECK(pool->stats().breaker_trips == 1);

    // Fail fast during the cooldown, without dialing...
    CHECK_THROWS_AS(pool->acquire(5s), reservoir::PoolUnavailable);
    CHECK(rig.server->connect_attempts() == 2);
    // ...then the first acquire after it asks for the probe and is served by it.
    rig.clock.advance(20ms);
    CHECK(pool->acquire(5s)->alive());
    CHECK(pool->stats().breaker == reservoir::BreakerState::closed);
    CHECK(rig.server->connect_attempts() == 3);
}

namespace {

// A connect backoff far longer than the breaker's cooldown: only the breaker
// may decide when the probe runs.
struct LongBackoff : reservoir::health::Default {
    using Default::Default;
    reservoir::duration retry_delay(unsigned, std::uint64_t) const noexcept { return std::chrono::hours(1); }
};
using BreakerPool = test::ManualPool<LongBackoff>;

// A pool with min_size 0 whose breaker has opened: two acquires, each running
// its connect itself (no background threads), both refused.
std::unique_ptr<BreakerPool> tripped_pool(test::ManualRig& rig) {
    auto pool = rig.make<BreakerPool>({.min_size = 0, .max_size = 2, .breaker_threshold = 2, .breaker_cooldown = 1s});
    rig.server->fail_next_connects(2);
    CHECK_THROWS_AS(pool->acquire(0ms), reservoir::AcquireTimeout);
    rig.clock.advance(1h);  // past the backoff
    CHECK_THROWS_AS(pool->acquire(0ms), reservoir::PoolUnavailable);
    REQUIRE(pool->stats().breaker == reservoir::BreakerState::open);
    REQUIRE(rig.server->connect_attempts() == 2);
    return pool;
}

// What an async_acquire was answered with.
struct Answer {
    int calls = 0;
    BreakerPool::Lease lease;
    std::exception_ptr error;
    auto callback() {
        return [this](BreakerPool::Lease l, std::exception_ptr e) {
            ++calls;
            lease = std::move(l);
            error = std::move(e);
        };
    }
};

}  // namespace

TEST_CASE("after the cooldown the next acquire starts one probe at once; a second waits for it", "[health][breaker]") {
    test::ManualRig rig;
    auto pool = tripped_pool(rig);
    rig.clock.advance(1s);  // the cooldown is over; the backoff (1 h) is not
    CHECK(pool->stats().breaker == reservoir::BreakerState::half_open);

    std::size_t connecting = 0, connecting_after_second = 0, waiting_after_second = 0, probes = 0;
    Answer second;
    rig.server->on_connect([&] {
        if (++probes > 1) return;
        connecting = pool->stats().connecting;
        pool->async_acquire(1h, second.callback());  // a second acquire while the probe is in flight
        connecting_after_second = pool->stats().connecting;
        waiting_after_second = pool->stats().waiting;
    });
    // No background threads: this acquirer runs the probe itself, before it
    // looks at its deadline (zero, so that the test cannot wait forever on
    // the manual clock should no probe start).
    auto first = pool->acquire(0ms);
    REQUIRE(probes >= 1);
    CHECK(connecting == 1);
    CHECK(connecting_after_second == 1);  // it queued, and started no other connect
    CHECK(waiting_after_second == 2);
    CHECK(first->alive());
    CHECK(pool->stats().breaker == reservoir::BreakerState::closed);
    CHECK(second.calls == 0);

    pool->maintain();  // the breaker is closed: the second waiter's connect runs without a backoff
    CHECK(second.calls == 1);
    REQUIRE(second.lease);
    CHECK(second.lease->alive());
    CHECK(rig.server->connect_attempts() == 4);  // two refused, the probe, the second waiter's
}

TEST_CASE("a failed probe opens the breaker again and fails its waiters at once", "[health][breaker]") {
    test::ManualRig rig;
    auto pool = tripped_pool(rig);
    rig.clock.advance(1s);

    Answer first, second;
    rig.server->on_connect([&] { pool->async_acquire(1h, second.callback()); });
    rig.server->fail_next_connects(1);
    pool->async_acquire(1h, first.callback());  // queues: half-open, it waits for the probe
    CHECK(first.calls == 0);
    CHECK(pool->stats().waiting == 1);
    pool->maintain();  // runs the probe at once (the backoff is 1 h); the clock does not move
    CHECK(rig.server->connect_attempts() == 3);
    CHECK(pool->stats().breaker == reservoir::BreakerState::open);
    CHECK(pool->stats().waiting == 0);
    for (Answer* a : {&first, &second}) {
        REQUIRE(a->calls == 1);
        CHECK_FALSE(a->lease);
        CHECK_THROWS_AS(std::rethrow_exception(a->error), reservoir::PoolUnavailable);
    }
    // Open again: fail fast, no dialing until the next cooldown ends.
    CHECK_THROWS_AS(pool->acquire(0ms), reservoir::PoolUnavailable);
    CHECK(rig.server->connect_attempts() == 3);
}

TEST_CASE("a pool below min probes when the cooldown ends rather than after the backoff", "[health][breaker]") {
    auto server = std::make_shared<Server>();
    server->fail_next_connects(1);  // trips it (threshold 1); the backoff after it is an hour
    using Pool = reservoir::Pool<Driver, reservoir::sizing::Dynamic, LongBackoff>;
    Pool pool(Driver(server), {.min_size = 1, .max_size = 1, .breaker_threshold = 1, .breaker_cooldown = 50ms,
                               .housekeeping_interval = 1h});
    // A worker sleeps until the cooldown's end, then probes: nothing else
    // would wake it for an hour.
    REQUIRE(test::eventually([&] { return pool.stats().total == 1; }));
    CHECK(server->connect_attempts() == 2);
    CHECK(pool.stats().breaker == reservoir::BreakerState::closed);
    CHECK(pool.stats().breaker_trips == 1);
}

TEST_CASE("while the breaker is open, open connections keep serving", "[health][breaker]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 2, .max_size = 2, .retry_initial = 10ms, .retry_max = 10ms,
                          .breaker_threshold = 1, .breaker_cooldown = 1s});
    pool->maintain();
    {
        auto lease = pool->acquire();
        lease.discard();  // one slot to refill
    }
    rig.server->fail_next_connects(1);
    pool->maintain();
    CHECK(pool->stats().breaker == reservoir::BreakerState::open);
    CHECK(pool->stats().total == 1);
    auto lease = pool->acquire();  // served by the one that is still open
    CHECK(lease->alive());
}

TEST_CASE("evict_all closes idle connections now and lent ones on return", "[health]") {
    Rig rig({.min_size = 3, .max_size = 3});
    auto lent = rig.pool->acquire();
    const auto lent_id = lent->id();
    rig.pool->evict_all();
    CHECK(rig.pool->stats().closes.evicted == 2);
    CHECK(lent->execute("select") == "ok");  // untouched while lent
    lent.release();
    CHECK(rig.pool->stats().closes.evicted == 3);
    REQUIRE(test::eventually([&] { return rig.pool->stats().idle == 3; }));  // refilled to min
    auto fresh = rig.pool->acquire();
    CHECK(fresh->id() != lent_id);
    fresh.release();
    CHECK(rig.pool->stats().closes.evicted == 3);  // new connections are kept
}

TEST_CASE("admission control: past max_waiters, acquire fails at once", "[acquire]") {
    Rig rig({.min_size = 1, .max_size = 1, .max_waiters = 1});
    auto held = rig.pool->acquire();
    std::thread waiter([&] { CHECK_THROWS_AS(rig.pool->acquire(2s), reservoir::PoolClosed); });
    REQUIRE(test::eventually([&] { return rig.pool->stats().waiting == 1; }));
    CHECK_THROWS_WITH(rig.pool->acquire(10s), Catch::Contains("pool saturated: 1 acquirers already waiting (max_waiters = 1)"));
    rig.pool->shutdown(0ms);
    waiter.join();
}
