// Cancelling a queued acquire with a std::stop_token, blocking and async.

#include <catch2/catch.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::AcquireCancelled;
using reservoir::ErrorKind;

namespace {

using Lease = test::ManualPool<>::Lease;

using Outcome = test::Outcome<Lease>;

// The AcquireCancelled in `error`, or nullopt when it holds something else.
std::optional<AcquireCancelled> cancelled(const std::exception_ptr& error) {
    try {
        if (error) std::rethrow_exception(error);
    } catch (const AcquireCancelled& e) {
        return e;
    } catch (...) {
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("cancelling a queued async acquire calls back once with AcquireCancelled, and the next is served",
          "[cancel][async]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    auto held = pool->acquire();
    std::stop_source stop;
    Outcome first, second;
    pool->async_acquire(1h, first.callback(), stop.get_token());
    pool->async_acquire(1h, second.callback());
    REQUIRE(pool->stats().waiting == 2);

    rig.clock.advance(30ms);
    stop.request_stop();
    REQUIRE(first.calls == 1);
    CHECK(first.thread == std::this_thread::get_id());  // inside request_stop()
    CHECK_FALSE(first.lease);
    const auto e = cancelled(first.error);
    REQUIRE(e);
    CHECK(e->kind() == ErrorKind::acquire_cancelled);
    CHECK(e->waited() == 30ms);
    CHECK_THAT(e->what(), Catch::Contains("acquire cancelled by its stop_token after 30 ms") &&
                              Catch::Contains("total=1 idle=0 in_use=1 waiting=1"));
    auto st = pool->stats();
    CHECK(st.acquire_cancels == 1);
    CHECK(st.acquire_timeouts == 0);
    CHECK(st.waiting == 1);

    held.release();  // to the one left in the queue
    REQUIRE(second.calls == 1);
    CHECK(second.lease);
    CHECK(first.calls == 1);
    stop.request_stop();  // again: nothing
    CHECK(first.calls == 1);
    CHECK(pool->stats().acquire_cancels == 1);
}

TEST_CASE("cancelling the head of the queue hands a connection to the next at once", "[cancel][async]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 2, .max_size = 2});
    pool->maintain();
    auto a = pool->acquire();
    auto b = pool->acquire();
    std::stop_source stop;
    Outcome head, next, last;
    pool->async_acquire(1h, head.callback(), stop.get_token());
    pool->async_acquire(1h, next.callback());
    pool->async_acquire(1h, last.callback());
    a.release();  // to the head
    REQUIRE(head.calls == 1);
    REQUIRE(head.lease);
    stop.request_stop();  // settled already: no effect
    CHECK(head.lease);
    CHECK(pool->stats().acquire_cancels == 0);

    std::stop_source stop_next;
    Outcome again;
    pool->async_acquire(1h, again.callback(), stop_next.get_token());  // behind `last`
    REQUIRE(pool->stats().waiting == 3);
    head.lease.release();
    CHECK(next.lease);
    stop_next.request_stop();  // the tail
    REQUIRE(again.calls == 1);
    CHECK(cancelled(again.error));
    b.release();
    CHECK(last.lease);
    const auto st = pool->stats();
    CHECK(st.waiting == 0);
    CHECK(st.acquire_cancels == 1);
    CHECK(st.in_use == 2);
}

TEST_CASE("a blocking acquire is cancelled from another thread", "[cancel]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    auto held = pool->acquire();
    std::stop_source stop;
    std::optional<AcquireCancelled> got;
    bool leased = false;
    std::thread waiter([&] {
        try {
            leased = static_cast<bool>(pool->acquire(1h, stop.get_token()));
        } catch (const AcquireCancelled& e) {
            got = e;
        }
    });
    REQUIRE(test::eventually([&] { return pool->stats().waiting == 1; }));
    rig.clock.advance(5ms);
    stop.request_stop();
    waiter.join();
    CHECK_FALSE(leased);
    REQUIRE(got);
    CHECK(got->waited() == 5ms);
    CHECK_THAT(got->what(), Catch::Contains("after 5 ms"));
    const auto st = pool->stats();
    CHECK(st.waiting == 0);
    CHECK(st.acquire_cancels == 1);
    held.release();
    CHECK(pool->stats().idle == 1);  // nobody left to hand it to
}

TEST_CASE("a token stopped before the call fails at once when the acquire would queue", "[cancel]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    std::stop_source stop;
    stop.request_stop();

    SECTION("with a connection idle, it is served: the token is looked at only to queue") {
        CHECK(pool->acquire(1h, stop.get_token()));
        Outcome got;
        pool->async_acquire(1h, got.callback(), stop.get_token());
        CHECK(got.lease);
        CHECK(pool->stats().acquire_cancels == 0);
    }
    SECTION("with none, blocking") {
        auto held = pool->acquire();
        CHECK_THROWS_AS(pool->acquire(1h, stop.get_token()), AcquireCancelled);
        const auto st = pool->stats();
        CHECK(st.waiting == 0);
        CHECK(st.acquire_cancels == 1);
    }
    SECTION("with none, async: called back before async_acquire returns") {
        auto held = pool->acquire();
        Outcome got;
        pool->async_acquire(1h, got.callback(), stop.get_token());
        REQUIRE(got.calls == 1);
        CHECK(cancelled(got.error));
        const auto st = pool->stats();
        CHECK(st.waiting == 0);
        CHECK(st.acquire_cancels == 1);
        held.release();
        CHECK(got.calls == 1);
        CHECK(pool->stats().idle == 1);
    }
}

TEST_CASE("a cancel after the hand-off does nothing: the lease stays good", "[cancel]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    auto held = pool->acquire();

    SECTION("async") {
        std::stop_source stop;
        Outcome got;
        pool->async_acquire(1h, got.callback(), stop.get_token());
        held.release();
        REQUIRE(got.lease);
        stop.request_stop();
        CHECK(got.calls == 1);
        CHECK(got.lease->execute("select") == "ok");
        CHECK(pool->stats().in_use == 1);
    }
    SECTION("blocking") {
        std::stop_source stop;
        Lease got;
        std::thread waiter([&] { got = pool->acquire(1h, stop.get_token()); });
        REQUIRE(test::eventually([&] { return pool->stats().waiting == 1; }));
        held.release();
        waiter.join();
        stop.request_stop();
        REQUIRE(got);
        CHECK(got->execute("select") == "ok");
        CHECK(pool->stats().in_use == 1);
    }
    CHECK(pool->stats().acquire_cancels == 0);
}

TEST_CASE("a timeout settles first: a cancel after it does nothing", "[cancel]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    auto held = pool->acquire();
    std::stop_source stop;
    Outcome got;
    pool->async_acquire(10ms, got.callback(), stop.get_token());
    rig.clock.advance(10ms);
    pool->maintain();
    REQUIRE(got.calls == 1);
    stop.request_stop();
    CHECK(got.calls == 1);
    const auto st = pool->stats();
    CHECK(st.acquire_timeouts == 1);
    CHECK(st.acquire_cancels == 0);
}

// The state is freed when the Pool goes; a stop_callback still registered
// then would run on freed memory. ASan builds run this.
TEST_CASE("a token stopped after the pool is destroyed touches nothing", "[cancel][lifetime]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1});
    pool->maintain();
    auto held = pool->acquire();
    std::stop_source stop;
    Outcome got;
    pool->async_acquire(1h, got.callback(), stop.get_token());
    pool.reset();
    REQUIRE(got.calls == 1);
    CHECK_FALSE(cancelled(got.error));  // PoolClosed
    held.release();                     // the last reference: the state is freed
    stop.request_stop();
    CHECK(got.calls == 1);
    CHECK(rig.server->live() == 0);
}

// A blocked thread woken with PoolClosed may still be on its way out when the
// last lease frees the state and its token is stopped: its stop_callback must
// not outlive the state. Rounds, because the window is the thread's exit.
TEST_CASE("a blocked acquirer's token stopped as the pool goes touches nothing", "[cancel][lifetime]") {
    constexpr int rounds = 50;
    test::ManualRig rig;
    for (int round = 0; round < rounds; ++round) {
        auto pool = rig.make({.min_size = 1, .max_size = 1});
        pool->maintain();
        auto held = pool->acquire();
        std::stop_source stop;
        bool closed = false;
        std::thread waiter([&] {
            try {
                pool->acquire(1h, stop.get_token());
            } catch (const reservoir::PoolClosed&) {
                closed = true;
            }
        });
        REQUIRE(test::eventually([&] { return pool->stats().waiting == 1; }));
        pool.reset();
        held.release();
        stop.request_stop();  // races the waiter's return
        waiter.join();
        REQUIRE(closed);
    }
    CHECK(rig.server->live() == 0);
}

// A head woken to claim a connection left idle, cancelled before it runs: the
// next in line must get that connection then, not when another comes back.
// Everything happens inside the head's own connect (the pool has no
// background threads), on its thread, in one order.
TEST_CASE("cancelling a woken head hands the idle connection to the next at once", "[cancel]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 2, .handoff_after = 1h});
    pool->maintain();
    auto held = pool->acquire();
    std::stop_source stop;
    Outcome next;
    // Seen by the hook on the head's thread, checked after it is joined
    // (assertions are the test thread's alone).
    bool both_queued = false;
    std::size_t idle_before_cancel = 0;
    int next_calls_at_cancel = -1;
    bool hooked = false;
    rig.server->on_connect([&] {  // the head's connect, while it is queued
        if (std::exchange(hooked, true)) return;
        both_queued = test::eventually([&] { return pool->stats().waiting == 2; });
        held.release();  // the head is woken to claim it; it stays idle meanwhile
        idle_before_cancel = pool->stats().idle;
        stop.request_stop();
        next_calls_at_cancel = next.calls;
    });
    bool head_cancelled = false;
    std::thread head([&] {
        try {
            pool->acquire(1h, stop.get_token());
        } catch (const AcquireCancelled&) {
            head_cancelled = true;
        }
    });
    REQUIRE(test::eventually([&] { return pool->stats().waiting >= 1; }));
    pool->async_acquire(1h, next.callback());
    head.join();
    REQUIRE(both_queued);
    CHECK(idle_before_cancel == 1);
    CHECK(head_cancelled);
    CHECK(next_calls_at_cancel == 1);
    CHECK(next.lease);
    CHECK(pool->stats().acquire_cancels == 1);
}

// Stopped while out of the queue, between a hand-off and its check: a
// connection that fails the check would send the waiter back to the head of
// the queue, where nothing would stop it again.
TEST_CASE("an async waiter stopped while its connection is checked does not queue again", "[cancel][async]") {
    struct StopOnClose final : reservoir::EventListener {
        std::stop_source stop;
        void on_event(const reservoir::Event& e) noexcept override {
            if (e.kind == reservoir::EventKind::closed) stop.request_stop();  // outside the pool's lock
        }
    };
    auto listener = std::make_shared<StopOnClose>();
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 1, .max_size = 1, .listener = listener});
    pool->maintain();
    auto held = pool->acquire();
    Outcome got;
    pool->async_acquire(1h, got.callback(), listener->stop.get_token());
    held->break_locally();
    held.release();  // handed to the waiter, which finds it broken and closes it: the stop comes then
    REQUIRE(got.calls == 1);
    CHECK(cancelled(got.error));
    const auto st = pool->stats();
    CHECK(st.waiting == 0);
    CHECK(st.acquire_cancels == 1);
    CHECK(st.closes.broken == 1);
}
