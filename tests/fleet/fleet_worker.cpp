// One service process of the fleet test: a reservoir pool configured from the
// environment (DATABASE_URL, DB_POOLER, DB_POOL_MAX, ...), THREADS workers
// doing point selects on fleet_items through it from START until START +
// SECONDS, each answer checked. Writes every operation's latency (µs, uint32)
// to OUT and prints one line:
//   ops=N errors=N wrong=N connects=N max_size=N warm=N[ first_error=...]
// (warm: connections open when the load started)
//
// usage: reservoir_fleet_worker THREADS SECONDS SEED ROWS START_NS OUT
// START_NS is a steady_clock time (CLOCK_MONOTONIC, shared by every process
// on the machine), so that all processes start their load at once.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <reservoir/reservoir.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct Worker {
    std::vector<std::uint32_t> latency_us;
    std::uint64_t errors = 0, wrong = 0;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 7) {
        std::fprintf(stderr, "usage: %s THREADS SECONDS SEED ROWS START_NS OUT\n", argv[0]);
        return 2;
    }
    const int threads = std::atoi(argv[1]);
    const auto seconds = std::chrono::duration<double>(std::atof(argv[2]));
    const std::uint64_t seed = std::strtoull(argv[3], nullptr, 10);
    const std::int64_t rows = std::atoll(argv[4]);
    const Clock::time_point start{std::chrono::nanoseconds(std::atoll(argv[5]))};
    const std::string out_path = argv[6];
    if (threads <= 0 || rows <= 0) return 2;

    try {
        reservoir::PgPool pool(reservoir::pg::Config::from_env());
        // Open min_size connections before the load starts (a service is warm
        // before it takes traffic), but never past the start.
        while (pool.stats().total < pool.options().min_size && Clock::now() < start)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        const std::size_t warm = pool.stats().total;
        const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(seconds);
        std::vector<Worker> workers(static_cast<std::size_t>(threads));
        std::mutex first_error_mu;
        std::string first_error;

        std::vector<std::thread> pool_threads;
        for (int w = 0; w < threads; ++w)
            pool_threads.emplace_back([&, w] {
                Worker& me = workers[static_cast<std::size_t>(w)];
                me.latency_us.reserve(1 << 14);
                std::mt19937_64 rng(seed * 1'000'003 + static_cast<std::uint64_t>(w));
                std::uniform_int_distribution<std::int64_t> pick(1, rows);
                std::this_thread::sleep_until(start);
                while (Clock::now() < stop_at) {
                    const std::int64_t id = pick(rng);
                    const auto t0 = Clock::now();
                    try {
                        auto lease = pool.acquire();
                        const auto name =
                            lease->query("SELECT name FROM fleet_items WHERE id = $1", id).scalar<std::string>();
                        if (name != "item " + std::to_string(id)) ++me.wrong;
                    } catch (const std::exception& e) {
                        ++me.errors;
                        std::lock_guard lk(first_error_mu);
                        if (first_error.empty()) first_error = e.what();
                        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // no spinning on errors
                    }
                    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
                    me.latency_us.push_back(static_cast<std::uint32_t>(std::min<long long>(us, UINT32_MAX)));
                }
            });
        for (auto& t : pool_threads) t.join();

        std::uint64_t ops = 0, errors = 0, wrong = 0;
        std::ofstream out(out_path, std::ios::binary);
        for (const Worker& w : workers) {
            ops += w.latency_us.size();
            errors += w.errors;
            wrong += w.wrong;
            out.write(reinterpret_cast<const char*>(w.latency_us.data()),
                      static_cast<std::streamsize>(w.latency_us.size() * sizeof(std::uint32_t)));
        }
        out.close();
        const auto s = pool.stats();
        std::printf("ops=%llu errors=%llu wrong=%llu connects=%llu max_size=%zu warm=%zu%s%s\n",
                    static_cast<unsigned long long>(ops), static_cast<unsigned long long>(errors),
                    static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(s.connects), s.max, warm,
                    first_error.empty() ? "" : " first_error=", first_error.c_str());
        pool.shutdown(std::chrono::seconds(5));
        return out ? 0 : 1;
    } catch (const std::exception& e) {
        std::printf("fatal: %s\n", e.what());
        return 1;
    }
}
