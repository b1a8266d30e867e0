// The state behind a Pool outlives it for as long as anything can still touch
// it: leases still out, and releases caught in the middle of their work when
// the Pool is destroyed. Run under ASan, a premature free is a failure here.

#include <catch2/catch.hpp>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "helpers.hpp"

using namespace std::chrono_literals;

namespace {

// Holds the thread that reports the next close (the event is sent from inside
// the pool's close, after it let go of its lock) until the test lets it go.
// So the Pool is destroyed while a release is provably in the middle of closing.
class CloseGate final : public reservoir::EventListener {
public:
    void on_event(const reservoir::Event& e) noexcept override {
        if (e.kind != reservoir::EventKind::closed) return;
        std::unique_lock lk(mu_);
        if (!armed_) return;
        armed_ = false;
        inside_ = true;
        cv_.notify_all();
        cv_.wait(lk, [&] { return open_; });
    }
    void arm() {
        std::lock_guard lk(mu_);
        armed_ = true;
    }
    void wait_inside() {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return inside_; });
    }
    void open() {
        std::lock_guard lk(mu_);
        open_ = true;
        cv_.notify_all();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool armed_ = false, inside_ = false, open_ = false;
};

}  // namespace

TEST_CASE("a release closing its connection when the pool is destroyed keeps the state alive until it is done",
          "[shutdown][lifetime]") {
    auto gate = std::make_shared<CloseGate>();
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 1, .listener = gate});
    auto lease = pool->acquire();
    REQUIRE(rig.server->live() == 1);

    gate->arm();
    std::thread returning([&] { lease.discard(); });
    gate->wait_inside();  // the release is closing the connection, outside the pool's lock
    pool.reset();         // no lease is lent now: the state must still wait for that release
    gate->open();
    returning.join();
    CHECK(rig.server->live() == 0);
}

TEST_CASE("a connection handed to an async waiter and found broken when the pool is destroyed",
          "[shutdown][lifetime][async]") {
    using Lease = test::ManualPool<>::Lease;
    auto gate = std::make_shared<CloseGate>();
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 0, .max_size = 1, .listener = gate});
    auto lease = pool->acquire();
    std::exception_ptr error;
    int calls = 0;
    bool got_lease = false;
    pool->async_acquire(1h, [&](Lease l, std::exception_ptr e) {  // read after the join below
        ++calls;
        got_lease = static_cast<bool>(l);
        error = e;
    });
    REQUIRE(pool->stats().waiting == 1);

    // The release hands the connection to the waiter and checks it out on the
    // returning thread: it fails the local check and is closed there.
    lease->break_locally();
    gate->arm();
    std::thread returning([&] { lease.release(); });
    gate->wait_inside();
    pool.reset();
    gate->open();
    returning.join();
    REQUIRE(calls == 1);  // told the pool closed, by the returning thread
    CHECK_FALSE(got_lease);
    CHECK_THROWS_AS(std::rethrow_exception(error), reservoir::PoolClosed);
    CHECK(rig.server->live() == 0);
}

TEST_CASE("a connection queued for a reset is closed by shutdown and by the pool's end, not left open",
          "[shutdown][lifetime]") {
    test::ManualRig rig;  // no workers: nothing runs the reset unless maintain() is called
    auto pool = rig.make<test::ManualPool<reservoir::health::Default, reservoir::mock::ResetDirty>>(
        {.min_size = 0, .max_size = 2});
    auto dirty = pool->acquire();
    auto kept = pool->acquire();
    dirty->execute("set");
    dirty.release();  // queued for a reset
    REQUIRE(pool->stats().resetting == 1);

    SECTION("shutdown") {
        kept.release();
        CHECK(pool->shutdown(0ms));  // the manual clock never reaches a later deadline
        CHECK(rig.server->live() == 0);
    }
    SECTION("the pool's end, with a lease still out") {
        pool.reset();
        CHECK(rig.server->live() == 1);  // the lease's alone
        kept.release();
        CHECK(rig.server->live() == 0);
    }
}
