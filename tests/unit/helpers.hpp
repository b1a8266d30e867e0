#pragma once
// Shared test helpers.

#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
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

// What one async_acquire was called back with, and on which thread.
template <class Lease>
struct Outcome {
    std::mutex mu;
    int calls = 0;
    Lease lease;
    std::exception_ptr error;
    std::thread::id thread;

    auto callback() {
        return [this](Lease l, std::exception_ptr e) {
            std::lock_guard lk(mu);
            ++calls;
            lease = std::move(l);
            error = std::move(e);
            thread = std::this_thread::get_id();
        };
    }
    bool done() {
        std::lock_guard lk(mu);
        return calls > 0;
    }
    std::string error_text() {
        std::lock_guard lk(mu);
        try {
            if (error) std::rethrow_exception(error);
        } catch (const std::exception& e) {
            return e.what();
        }
        return "";
    }
};

}  // namespace test
