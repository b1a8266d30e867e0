#pragma once
// The baseline every pool benchmark compares against: the simplest correct
// pool, one std::mutex + std::condition_variable + std::deque of idle
// connections. No health checks, no session reset, no growth, no timeout: a
// fixed set of connections opened up front, handed out FIFO. A template on
// the driver, so that the microbenchmark runs it on the mock driver and
// reservoir-load (--mode naive) on libpq with the same code.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include <reservoir/core/concepts.hpp>

namespace reservoir_bench {

template <reservoir::Driver D>
class NaivePool {
public:
    using Connection = typename D::connection_type;

    // Returns its connection to the pool when destroyed. Move-only.
    class Lease {
    public:
        Lease(Lease&& other) noexcept : pool_(other.pool_), conn_(std::move(other.conn_)) {
            other.conn_.reset();  // a moved-from optional stays engaged
        }
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (conn_) pool_->release(std::move(*conn_));
        }

        Connection& operator*() noexcept { return *conn_; }
        Connection* operator->() noexcept { return &*conn_; }

    private:
        friend class NaivePool;
        Lease(NaivePool* pool, Connection&& conn) : pool_(pool), conn_(std::move(conn)) {}

        NaivePool* pool_;
        std::optional<Connection> conn_;
    };

    // Opens all `size` connections before returning; throws what the driver's connect throws.
    NaivePool(D driver, std::size_t size, std::chrono::steady_clock::duration connect_timeout = std::chrono::seconds(10))
        : driver_(std::move(driver)) {
        const auto deadline = std::chrono::steady_clock::now() + connect_timeout;
        for (std::size_t i = 0; i < size; ++i) idle_.push_back(driver_.connect(deadline));
    }

    // Blocks until a connection is idle.
    Lease acquire() {
        std::unique_lock lock(mutex_);
        available_.wait(lock, [this] { return !idle_.empty(); });
        Lease lease(this, std::move(idle_.front()));
        idle_.pop_front();
        return lease;
    }

private:
    void release(Connection&& conn) {
        {
            std::lock_guard lock(mutex_);
            idle_.push_back(std::move(conn));
        }
        available_.notify_one();  // after unlocking, so the woken thread does not block on the mutex
    }

    D driver_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::deque<Connection> idle_;
};

}  // namespace reservoir_bench
