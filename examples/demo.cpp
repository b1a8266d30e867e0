// The demo: many workers through one small pool, with a live progress line
// and the final figures. Runs on the mock driver (a 1 ms "query").
//
//   reservoir-demo [--workers N] [--pool N] [--seconds S]

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <reservoir/reservoir.hpp>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Settings {
    int workers = 200;
    std::size_t pool = 20;
    double seconds = 5;
};

Settings parse(int argc, char** argv) {
    Settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const char* value = argv[i + 1];
        if (flag == "--workers") s.workers = std::atoi(value);
        else if (flag == "--pool") s.pool = static_cast<std::size_t>(std::atoi(value));
        else if (flag == "--seconds") s.seconds = std::atof(value);
        else {
            std::fprintf(stderr, "unknown flag %s (known: --workers --pool --seconds)\n", flag.c_str());
            std::exit(2);
        }
    }
    if (s.workers < 1 || s.pool < 1 || s.seconds <= 0) {
        std::fprintf(stderr, "--workers, --pool and --seconds must be positive\n");
        std::exit(2);
    }
    return s;
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

}  // namespace

int main(int argc, char** argv) {
    const Settings settings = parse(argc, argv);
    auto server = std::make_shared<reservoir::mock::Server>();
    server->set_query_latency(1ms);
    reservoir::MockPool pool(reservoir::mock::Driver(server),
                             {.min_size = settings.pool / 2, .max_size = settings.pool, .acquire_timeout = 10s});

    reservoir::Histogram latency;
    std::atomic<std::uint64_t> done{0}, errors{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int w = 0; w < settings.workers; ++w) {
        workers.emplace_back([&] {
            while (!stop.load(std::memory_order_relaxed)) {
                const auto start = Clock::now();
                try {
                    auto lease = pool.acquire();
                    lease->execute("SELECT name FROM items WHERE id = $1");
                    latency.record(Clock::now() - start);
                    done.fetch_add(1, std::memory_order_relaxed);
                } catch (const reservoir::Error& e) {
                    errors.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }

    std::printf("%d workers through a pool of %zu for %.0f s (mock driver, 1 ms per query)\n", settings.workers,
                settings.pool, settings.seconds);
    const bool tty = isatty(STDOUT_FILENO) != 0;
    const auto begin = Clock::now();
    const auto end = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(settings.seconds));
    std::uint64_t last_done = 0;
    auto last = begin;
    while (Clock::now() < end) {
        std::this_thread::sleep_for(tty ? 250ms : 1s);
        const auto now = Clock::now();
        const std::uint64_t n = done.load();
        const auto st = pool.stats();
        std::printf("%s%8.0f q/s  p99 %6.2f ms  in use %2zu  idle %2zu  waiting %3zu  errors %llu%s",
                    tty ? "\r" : "", static_cast<double>(n - last_done) / std::chrono::duration<double>(now - last).count(),
                    ms(latency.snapshot().quantile(0.99)), st.in_use, st.idle, st.waiting,
                    static_cast<unsigned long long>(errors.load()), tty ? "" : "\n");
        std::fflush(stdout);
        last_done = n;
        last = now;
    }
    stop = true;
    for (auto& t : workers) t.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();

    const auto s = latency.snapshot();
    const auto st = pool.stats();
    std::printf("\n\nqueries      %llu in %.1f s = %.0f q/s\n", static_cast<unsigned long long>(s.count), elapsed,
                static_cast<double>(s.count) / elapsed);
    std::printf("latency      p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms\n", ms(s.quantile(0.5)),
                ms(s.quantile(0.95)), ms(s.quantile(0.99)), ms(s.max()));
    std::printf("errors       %llu\n", static_cast<unsigned long long>(errors.load()));
    std::printf("connections  peak %zu of max %zu; opened %llu, closed %llu\n", server->peak(), settings.pool,
                static_cast<unsigned long long>(st.connects), static_cast<unsigned long long>(st.closes.total()));
    std::printf("pool         acquires %llu, timeouts %llu\n", static_cast<unsigned long long>(st.acquires),
                static_cast<unsigned long long>(st.acquire_timeouts));

    const bool drained = pool.shutdown(10s);
    std::printf("shutdown     %s\n", drained ? "clean" : "timed out");
    const bool ok = errors.load() == 0 && server->peak() <= settings.pool && drained;
    return ok ? 0 : 1;
}
