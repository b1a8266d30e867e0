// The cost of one acquire + release cycle, with no work in between, for
// reservoir and for the naive mutex + condvar + deque pool, at several
// threads-over-pool-size shapes. The mock driver keeps the network out of it:
// what is measured is the pool's own overhead.
//
// Counters (all wall-clock, all threads together):
//   items_per_second  cycles per second
//   ns_per_cycle      wall time / cycles
//   allocs_per_cycle  heap allocations in the benchmark threads / cycles

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
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

// One pool per benchmark run, shared by its threads: built by the Setup hook
// before the threads start, destroyed by the Teardown hook after they join.
template <class Pool>
std::unique_ptr<Pool> shared_pool;

template <class Pool>
void create_shared_pool(const benchmark::State& state) {
    shared_pool<Pool> = make_warm_pool<Pool>(static_cast<std::size_t>(state.range(0)));
}

template <class Pool>
void destroy_shared_pool(const benchmark::State&) {
    shared_pool<Pool>.reset();
}

template <class Pool>
void acquire_release(benchmark::State& state) {
    Pool& pool = *shared_pool<Pool>;
    const std::uint64_t allocations_before = allocations_on_this_thread();
    for (auto _ : state) {
        auto lease = pool.acquire();
        benchmark::DoNotOptimize(lease);
    }
    const std::uint64_t allocations = allocations_on_this_thread() - allocations_before;

    // Each thread reports its own share; Google Benchmark sums the threads'
    // counters, then applies the flags against the run's wall time and its
    // total iterations (all threads).
    const auto cycles = static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations());
    // Summed cycles * 1e-9 / wall seconds, inverted: wall nanoseconds per cycle
    // (the console appends "s" to every inverted rate; the number is in ns).
    state.counters["ns_per_cycle"] =
        benchmark::Counter(cycles * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["allocs_per_cycle"] =
        benchmark::Counter(static_cast<double>(allocations), benchmark::Counter::kAvgIterations);
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
