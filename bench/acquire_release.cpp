// The cost of one acquire + release cycle, with no work in between, for
// reservoir and for the naive mutex + condvar + deque pool, at several
// threads-over-pool-size shapes. The mock driver keeps the network out of it:
// what is measured is the pool's own overhead.
//
// Counters (all threads together):
//   items_per_second  cycles per second of wall time
//   ns_per_cycle      wall time / cycles
//   allocs_per_cycle  heap allocations in the benchmark threads / cycles
// Read these, not the Time column: with threads, Google Benchmark's real time
// is the mean of each thread's own time, which undercounts when the scheduler
// lets some threads finish long before others (2 cores, 256 threads).

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>

#include <reservoir/reservoir.hpp>

#include "alloc_counter.hpp"
#include "naive_pool.hpp"

namespace reservoir_bench {
namespace {

using namespace std::chrono_literals;

// The fastest configuration: no borrow-time health checks, no session reset.
using TrustingPool = reservoir::Pool<reservoir::mock::Driver, reservoir::sizing::Dynamic,
                                     reservoir::health::Trusting, reservoir::context::None>;
// The defaults, to show what the default health checks cost.
using DefaultPool = reservoir::MockPool;

struct Shape {
    int threads;
    int pool_size;
};

constexpr Shape shapes[] = {
    // Unconstrained: twice as many connections as threads, so nobody waits.
    {1, 2}, {2, 4}, {8, 16}, {64, 128}, {256, 512},
    // Constrained: half as many connections as threads, so threads queue.
    {2, 1}, {8, 4}, {64, 32}, {256, 128},
    // HikariCP's contended shapes.
    {32, 16}, {40, 20},
};

constexpr auto warm_deadline = 30s;

template <class Pool>
void wait_until_warm(const Pool& pool, std::size_t size, const char* name) {
    const auto deadline = std::chrono::steady_clock::now() + warm_deadline;
    while (pool.stats().idle != size) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::fprintf(stderr, "%s: pool of %zu did not warm up within %lld s (idle = %zu)\n", name, size,
                         static_cast<long long>(warm_deadline.count()), pool.stats().idle);
            std::abort();
        }
        std::this_thread::sleep_for(1ms);
    }
}

// The only per-pool difference: how a pool is built and warmed up.
template <class Pool>
std::unique_ptr<Pool> make_warm_pool(std::size_t size) {
    reservoir::mock::Driver driver(std::make_shared<reservoir::mock::Server>());
    if constexpr (std::is_same_v<Pool, NaivePool>) {
        return std::make_unique<Pool>(std::move(driver), size);  // connects before returning
    } else {
        auto pool = std::make_unique<Pool>(
            std::move(driver),
            reservoir::PoolOptions{.min_size = size, .max_size = size, .acquire_timeout = 10s});
        wait_until_warm(*pool, size, "reservoir");
        return pool;
    }
}

// The wall time of one run: from the last thread's start to the first
// thread's finish. Google Benchmark's start and finish barriers sit inside
// the timed loop, so the last thread to start releases everyone and the first
// past the finish barrier comes after everyone's last cycle.
class RunWallClock {
public:
    void reset() noexcept {
        last_start_ = std::numeric_limits<std::int64_t>::min();
        first_finish_ = std::numeric_limits<std::int64_t>::max();
        finished_threads_ = 0;
    }
    void thread_starting() noexcept { raise_to(last_start_, now()); }
    void thread_finished() noexcept {
        lower_to(first_finish_, now());
        finished_threads_.fetch_add(1, std::memory_order_release);
    }
    // Waits until `threads` threads have called thread_finished().
    std::chrono::nanoseconds wall_time(int threads) const noexcept {
        while (finished_threads_.load(std::memory_order_acquire) < threads) std::this_thread::yield();
        return std::chrono::nanoseconds(first_finish_.load() - last_start_.load());
    }

private:
    static std::int64_t now() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }
    static void raise_to(std::atomic<std::int64_t>& a, std::int64_t v) noexcept {
        std::int64_t seen = a.load();
        while (seen < v && !a.compare_exchange_weak(seen, v)) {
        }
    }
    static void lower_to(std::atomic<std::int64_t>& a, std::int64_t v) noexcept {
        std::int64_t seen = a.load();
        while (seen > v && !a.compare_exchange_weak(seen, v)) {
        }
    }

    std::atomic<std::int64_t> last_start_{0};
    std::atomic<std::int64_t> first_finish_{0};
    std::atomic<int> finished_threads_{0};
};

RunWallClock run_clock;

// One pool per benchmark run, shared by its threads: built by the Setup hook
// before the threads start, destroyed by the Teardown hook after they join.
template <class Pool>
std::unique_ptr<Pool> shared_pool;

template <class Pool>
void create_shared_pool(const benchmark::State& state) {
    shared_pool<Pool> = make_warm_pool<Pool>(static_cast<std::size_t>(state.range(0)));
    run_clock.reset();
}

template <class Pool>
void destroy_shared_pool(const benchmark::State&) {
    shared_pool<Pool>.reset();
}

template <class Pool>
void acquire_release(benchmark::State& state) {
    Pool& pool = *shared_pool<Pool>;
    const std::uint64_t allocations_before = allocations_on_this_thread();
    run_clock.thread_starting();
    for (auto _ : state) {
        auto lease = pool.acquire();
        benchmark::DoNotOptimize(lease);
    }
    run_clock.thread_finished();
    const std::uint64_t allocations = allocations_on_this_thread() - allocations_before;

    // Google Benchmark sums the threads' counters: each thread adds its own
    // allocations (kAvgIterations then divides by every thread's cycles), and
    // thread 0 alone adds the rates, from the run's wall time.
    state.counters["allocs_per_cycle"] =
        benchmark::Counter(static_cast<double>(allocations), benchmark::Counter::kAvgIterations);
    if (state.thread_index() == 0) {
        const double wall_ns = static_cast<double>(run_clock.wall_time(state.threads()).count());
        const double cycles = static_cast<double>(state.iterations()) * state.threads();
        state.counters["ns_per_cycle"] = wall_ns / cycles;
        state.counters["items_per_second"] = cycles / wall_ns * 1e9;
    }
}

template <class Pool>
void register_shape(const char* name, const Shape& shape) {
    benchmark::RegisterBenchmark(name, acquire_release<Pool>)
        ->Arg(shape.pool_size)
        ->ArgName("pool")
        ->Threads(shape.threads)
        ->UseRealTime()
        ->Setup(create_shared_pool<Pool>)
        ->Teardown(destroy_shared_pool<Pool>);
}

[[maybe_unused]] const bool registered = [] {
    for (const Shape& shape : shapes) {
        register_shape<TrustingPool>("reservoir_trusting", shape);
        register_shape<DefaultPool>("reservoir_default", shape);
        register_shape<NaivePool>("naive", shape);
    }
    return true;
}();

}  // namespace
}  // namespace reservoir_bench
