#pragma once
// Shared test helpers.

#include <chrono>
#include <memory>
#include <thread>

#include <reservoir/reservoir.hpp>

namespace test {

using namespace std::chrono_literals;

// Polls `condition` until it holds or `limit` passes: for state that other
// threads reach in their own time. Returns whether it held.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// A pool whose time and maintenance the test drives: a manual clock and no
// background threads (acquire connects inline; the test calls maintain()).
using ManualDriver = reservoir::mock::BasicDriver<reservoir::ManualClock>;
template <class Health = reservoir::health::Default, class Context = reservoir::context::None>
using ManualPool = reservoir::Pool<ManualDriver, reservoir::sizing::Dynamic, Health, Context, reservoir::ManualClock>;

struct ManualRig {
    reservoir::ManualClock clock;
    std::shared_ptr<reservoir::mock::Server> server = std::make_shared<reservoir::mock::Server>();

    reservoir::PoolOptions options(reservoir::PoolOptions o) const {
        o.background_threads = false;
        return o;
    }
    template <class Pool = ManualPool<>>
    std::unique_ptr<Pool> make(reservoir::PoolOptions o) const {
        return std::make_unique<Pool>(ManualDriver(server, clock), options(o), clock);
    }
};

}  // namespace test
