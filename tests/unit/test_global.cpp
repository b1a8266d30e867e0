// reservoir::global: one process-wide pool (or a few named ones).

#include <catch2/catch.hpp>

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
