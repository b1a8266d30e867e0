// reservoir::global: one process-wide pool (or a few named ones).

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::MockPool;
using Global = reservoir::global<MockPool>;

TEST_CASE("global pools: init once, reach from anywhere, named, reset", "[global]") {
    Global::reset();
    auto server = std::make_shared<reservoir::mock::Server>();
    CHECK_THROWS_WITH(Global::get(), Catch::Contains("\"default\" is not initialized"));

    MockPool& pool = Global::init(reservoir::mock::Driver(server), reservoir::PoolOptions{.min_size = 0, .max_size = 4});
    CHECK(&Global::get() == &pool);
    CHECK_THROWS_AS(Global::init(reservoir::mock::Driver(server)), reservoir::ConfigError);

    MockPool& replica = Global::init_named("replica", reservoir::mock::Driver(server));
    CHECK(&Global::get("replica") == &replica);
    CHECK(Global::find("nope") == nullptr);
    CHECK(Global::names() == std::vector<std::string>{"default", "replica"});

    // Many components, one pool: every thread reaches the same instance.
    std::vector<std::thread> components;
    std::atomic<int> same{0};
    for (int i = 0; i < 8; ++i)
        components.emplace_back([&] {
            auto lease = Global::get().acquire(5s);
            if (&Global::get() == &pool) same.fetch_add(1);
        });
    for (auto& t : components) t.join();
    CHECK(same.load() == 8);
    CHECK(pool.stats().max == 4);

    Global::reset();
    CHECK(Global::find("default") == nullptr);
    CHECK(server->live() == 0);
}

TEST_CASE("a signal shuts the global pools down from an ordinary thread", "[global][signals]") {
    Global::reset();
    // First, before any other thread of this test: the mask is inherited.
    std::atomic<int> seen{0};
    std::atomic<bool> drained{false};
    reservoir::SignalShutdown on_signal([&](int signal) {
        seen = signal;
        drained = Global::shutdown_all(2s);
    });
    auto server = std::make_shared<reservoir::mock::Server>();
    MockPool& main_pool = Global::init(reservoir::mock::Driver(server), reservoir::PoolOptions{.min_size = 1, .max_size = 2});
    MockPool& replica = Global::init_named("replica", reservoir::mock::Driver(server), reservoir::PoolOptions{.min_size = 1, .max_size = 2});
    REQUIRE(test::eventually([&] { return server->live() == 2; }));
    CHECK_FALSE(on_signal.triggered());

    ::kill(::getpid(), SIGTERM);  // every thread blocks it: only the sigwait thread takes it
    CHECK(on_signal.wait() == SIGTERM);
    CHECK(seen.load() == SIGTERM);
    CHECK(drained.load());
    CHECK(on_signal.triggered());
    CHECK_THROWS_AS(main_pool.acquire(), reservoir::PoolClosed);
    CHECK_THROWS_AS(replica.acquire(), reservoir::PoolClosed);
    CHECK(server->live() == 0);
    Global::reset();
}

TEST_CASE("without a signal, SignalShutdown stops its thread when destroyed", "[signals]") {
    std::atomic<bool> called{false};
    {
        reservoir::SignalShutdown on_signal([&](int) { called = true; });
        CHECK_FALSE(on_signal.triggered());
    }
    CHECK_FALSE(called.load());
    CHECK_THROWS_AS(reservoir::SignalShutdown([](int) {}, {}), reservoir::Error);
}
