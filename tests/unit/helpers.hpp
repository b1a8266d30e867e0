#pragma once
// Shared test helpers.

#include <chrono>
#include <memory>
#include <thread>

#include <reservoir/reservoir.hpp>

#include "../common/eventually.hpp"

namespace test {

using namespace std::chrono_literals;

using testsupport::eventually;

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
