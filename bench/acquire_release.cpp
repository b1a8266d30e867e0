// The cost of one acquire + release cycle, with no work in between, for
// reservoir and for the naive mutex + condvar + deque pool, at several
// threads-over-pool-size shapes. The mock driver keeps the network out of it:
// what is measured is the pool's own overhead.
//
// Counters (all threads together):
//   items_per_second    cycles per second of wall time
//   ns_per_cycle        wall time / cycles
//   allocs_per_cycle    heap allocations in the benchmark threads / cycles
//   switches_per_cycle  context switches of the benchmark threads / cycles:
//                       how often a cycle slept (blocked) or was preempted
//   cut_off             1 when the run hit its time budget (see run_budget)
//   p99_wait_us,        reservoir only, from its stats: the acquire wait,
//   max_wait_us         which shows how fair the hand-off stayed
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
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include <sys/resource.h>

#include <reservoir/reservoir.hpp>

#include "alloc_counter.hpp"
#include "naive_pool.hpp"

namespace reservoir_bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The fastest configuration: no borrow-time health checks, no session reset.
using TrustingPool = reservoir::Pool<reservoir::mock::Driver, reservoir::sizing::Dynamic,
                                     reservoir::health::Trusting, reservoir::context::None>;
// The same with latency histograms off, to show what recording them costs.
struct NoStatsPool : TrustingPool {
    using TrustingPool::TrustingPool;
};
// The defaults, to show what the default health checks cost.
using DefaultPool = reservoir::MockPool;

// The baseline: the naive mutex + condition variable pool on the mock driver.
using NaiveMockPool = NaivePool<reservoir::mock::Driver>;

// Benchmark names; a pool type without one does not compile.
constexpr const char* name_of(std::type_identity<TrustingPool>) { return "reservoir_trusting"; }
constexpr const char* name_of(std::type_identity<NoStatsPool>) { return "reservoir_trusting_nostats"; }
constexpr const char* name_of(std::type_identity<DefaultPool>) { return "reservoir_default"; }
constexpr const char* name_of(std::type_identity<NaiveMockPool>) { return "naive"; }

template <class Pool>
constexpr const char* pool_name = name_of(std::type_identity<Pool>{});

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

constexpr auto warm_up_limit = 30s;

// Google Benchmark sizes each run from the previous, shorter one. A pool whose
// cost per cycle jumps by orders of magnitude between runs (reservoir falling
// into its waiter hand-off mode) would turn a 0.2 s run into hours: past the
// budget, the threads stop cycling and run out their iterations empty. The
// counters still hold, as they count real cycles only; the run is labelled.
constexpr auto run_budget = 20s;
constexpr std::uint64_t cycles_between_budget_checks = 1024;

// Voluntary (blocked) plus involuntary (preempted) switches of this thread.
std::uint64_t context_switches_of_this_thread() noexcept {
    rusage usage{};
    getrusage(RUSAGE_THREAD, &usage);
    return static_cast<std::uint64_t>(usage.ru_nvcsw + usage.ru_nivcsw);
}

template <class Pool>
void wait_until_warm(const Pool& pool, std::size_t size) {
    const auto deadline = Clock::now() + warm_up_limit;
    while (pool.stats().idle != size) {
        if (Clock::now() > deadline) {
            std::fprintf(stderr, "reservoir pool of %zu did not warm up within %lld s (idle = %zu)\n", size,
                         static_cast<long long>(warm_up_limit.count()), pool.stats().idle);
            std::abort();
        }
        std::this_thread::sleep_for(1ms);
    }
}

// The only per-pool difference: how a pool is built and warmed up.
template <class Pool>
std::unique_ptr<Pool> make_warm_pool(std::size_t size) {
    reservoir::mock::Driver driver(std::make_shared<reservoir::mock::Server>());
    if constexpr (std::is_same_v<Pool, NaiveMockPool>) {
        return std::make_unique<Pool>(std::move(driver), size);  // connects before returning
    } else {
        auto pool = std::make_unique<Pool>(
            std::move(driver), reservoir::PoolOptions{.min_size = size,
                                                      .max_size = size,
                                                      .acquire_timeout = 10s,
                                                      .latency_histograms = !std::is_same_v<Pool, NoStatsPool>});
        wait_until_warm(*pool, size);
        return pool;
    }
}

// One run's totals, all threads together. The wall time runs from the last
// thread's start to the first thread's finish: Google Benchmark's start and
// finish barriers sit inside the timed loop, so the last thread to start
// releases everyone, and the first one past the finish barrier comes after
// everyone's last cycle.
class RunTally {
public:
    struct Totals {
        std::chrono::nanoseconds wall;
        std::uint64_t cycles;
        std::uint64_t allocations;
        std::uint64_t switches;
        bool cut_off;  // some thread stopped early, over the time budget
    };

    // Before the threads start.
    void reset(int threads) noexcept {
        threads_ = threads;
        deadline_ = Clock::now() + run_budget;
        last_start_ = std::numeric_limits<std::int64_t>::min();
        first_finish_ = std::numeric_limits<std::int64_t>::max();
        finished_threads_ = 0;
        cycles_ = allocations_ = switches_ = 0;
        cut_off_ = false;
    }

    void thread_starting() noexcept { raise_to(last_start_, now_ns()); }
    bool over_budget() const noexcept { return Clock::now() > deadline_; }

    // Adds one thread's share. Returns the totals to the last thread to
    // finish, nullopt to the others.
    std::optional<Totals> thread_finished(std::uint64_t cycles, std::uint64_t allocations, std::uint64_t switches,
                                          bool cut_off) noexcept {
        lower_to(first_finish_, now_ns());
        cycles_.fetch_add(cycles, std::memory_order_relaxed);
        allocations_.fetch_add(allocations, std::memory_order_relaxed);
        switches_.fetch_add(switches, std::memory_order_relaxed);
        if (cut_off) cut_off_.store(true, std::memory_order_relaxed);
        if (finished_threads_.fetch_add(1, std::memory_order_acq_rel) + 1 != threads_) return std::nullopt;
        return Totals{std::chrono::nanoseconds(first_finish_.load() - last_start_.load()), cycles_.load(),
                      allocations_.load(), switches_.load(), cut_off_.load()};
    }

private:
    static std::int64_t now_ns() noexcept {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
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

    int threads_ = 0;
    Clock::time_point deadline_{};
    std::atomic<std::int64_t> last_start_{0};
    std::atomic<std::int64_t> first_finish_{0};
    std::atomic<int> finished_threads_{0};
    std::atomic<std::uint64_t> cycles_{0}, allocations_{0}, switches_{0};
    std::atomic<bool> cut_off_{false};
};

RunTally run_tally;

// One pool per benchmark run, shared by its threads: built by the Setup hook
// before the threads start, destroyed by the Teardown hook after they join.
template <class Pool>
std::unique_ptr<Pool> shared_pool;

template <class Pool>
void create_shared_pool(const benchmark::State& state) {
    shared_pool<Pool> = make_warm_pool<Pool>(static_cast<std::size_t>(state.range(0)));
    run_tally.reset(state.threads());
}

template <class Pool>
void destroy_shared_pool(const benchmark::State&) {
    shared_pool<Pool>.reset();
}

template <class Pool>
void acquire_release(benchmark::State& state) {
    Pool& pool = *shared_pool<Pool>;
    const std::uint64_t allocations_before = allocations_on_this_thread();
    const std::uint64_t switches_before = context_switches_of_this_thread();
    std::uint64_t cycles = 0;
    bool cut_off = false;
    run_tally.thread_starting();
    for (auto _ : state) {
        if (cut_off) continue;
        auto lease = pool.acquire();
        benchmark::DoNotOptimize(lease);
        if (++cycles % cycles_between_budget_checks == 0) cut_off = run_tally.over_budget();
    }
    const std::optional<RunTally::Totals> totals =
        run_tally.thread_finished(cycles, allocations_on_this_thread() - allocations_before,
                                  context_switches_of_this_thread() - switches_before, cut_off);
    if (!totals) return;

    // Google Benchmark sums the threads' counters: the last thread to finish
    // sets them all, from the run's totals.
    const double wall_ns = static_cast<double>(totals->wall.count());
    const auto all_cycles = static_cast<double>(totals->cycles);
    state.counters["ns_per_cycle"] = wall_ns / all_cycles;
    state.counters["items_per_second"] = all_cycles / wall_ns * 1e9;
    state.counters["allocs_per_cycle"] = static_cast<double>(totals->allocations) / all_cycles;
    state.counters["switches_per_cycle"] = static_cast<double>(totals->switches) / all_cycles;
    state.counters["cut_off"] = totals->cut_off ? 1 : 0;
    if constexpr (!std::is_same_v<Pool, NaiveMockPool> && !std::is_same_v<Pool, NoStatsPool>) {
        const auto wait = pool.stats().acquire_wait;
        state.counters["p99_wait_us"] = static_cast<double>(wait.quantile(0.99).count()) / 1e3;
        state.counters["max_wait_us"] = static_cast<double>(wait.max().count()) / 1e3;
    }
    if (totals->cut_off) state.SetLabel("cut off at the time budget");
}

template <class Pool>
void register_shape(const Shape& shape) {
    benchmark::RegisterBenchmark(pool_name<Pool>, acquire_release<Pool>)
        ->Arg(shape.pool_size)
        ->ArgName("pool")
        ->Threads(shape.threads)
        ->UseRealTime()
        ->Setup(create_shared_pool<Pool>)
        ->Teardown(destroy_shared_pool<Pool>);
}

[[maybe_unused]] const bool registered = [] {
    for (const Shape& shape : shapes) {
        register_shape<TrustingPool>(shape);
        register_shape<NoStatsPool>(shape);
        register_shape<DefaultPool>(shape);
        register_shape<NaiveMockPool>(shape);
    }
    return true;
}();

}  // namespace
}  // namespace reservoir_bench
