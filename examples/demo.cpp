// The demo: 200 workers through one pool of 20 against a real PostgreSQL,
// each running a parameterized point select on a seeded table, with a live
// progress line, then the figures that matter: throughput, latency
// percentiles, errors (must be 0) and the most connections the server ever
// saw from us in pg_stat_activity (must be <= the pool's max).
//
//   DATABASE_URL=postgresql://... reservoir-demo [--workers N] [--pool N] [--seconds S]
//
// Settings come from the environment (DATABASE_URL, DB_*). This is the demo
// in its shortest form. scripts/demo, which starts a throwaway server when
// DATABASE_URL is not set, runs the same load with reservoir-load
// (bench/load.cpp), which measures more: client CPU, the anti-patterns.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <reservoir/pg/pg.hpp>
#include <reservoir/reservoir.hpp>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Settings {
    int workers = 200;
    std::size_t pool = 20;
    double seconds = 10;
};

Settings parse(int argc, char** argv) {
    Settings s;
    for (int i = 1; i < argc; i += 2) {
        const std::string flag = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : "";
        if (flag == "--workers") s.workers = std::atoi(value);
        else if (flag == "--pool") s.pool = static_cast<std::size_t>(std::atoi(value));
        else if (flag == "--seconds") s.seconds = std::atof(value);
        else {
            std::fprintf(stderr, "unknown flag %s (known: --workers N --pool N --seconds S)\n", flag.c_str());
            std::exit(2);
        }
    }
    if (s.workers < 1 || s.pool < 1 || s.seconds <= 0) {
        std::fprintf(stderr, "--workers, --pool and --seconds must be positive\n");
        std::exit(2);
    }
    return s;
}

constexpr int table_rows = 10000;

void seed(reservoir::pg::Connection& c) {
    c.execute("CREATE TABLE IF NOT EXISTS reservoir_demo_items (id int PRIMARY KEY, name text NOT NULL)");
    c.query("INSERT INTO reservoir_demo_items SELECT g, 'item ' || g FROM generate_series(1, $1) g "
            "ON CONFLICT (id) DO NOTHING",
            table_rows);
}

// Counts our sessions on the server from a connection of its own (with its
// own application_name, so it does not count itself).
class ServerWatch {
public:
    ServerWatch(reservoir::pg::Config config, std::string app) : app_(std::move(app)) {
        config.application_name = app_ + "-watch";
        conn_ = std::make_unique<reservoir::pg::Connection>(reservoir::pg::Driver(config).connect(Clock::now() + 10s));
        thread_ = std::thread([this] {
            try {
                while (!stop_) {
                    const auto n =
                        conn_->query("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_)
                            .scalar<std::int64_t>();
                    if (n > peak_) peak_ = n;
                    std::this_thread::sleep_for(20ms);
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "\nserver watch stopped: %s\n", e.what());
                peak_ = -1;  // unknown: the demo fails rather than claim a bound it did not see
            }
        });
    }
    ~ServerWatch() {
        stop_ = true;
        thread_.join();
    }
    std::int64_t peak() const { return peak_; }

private:
    std::string app_;
    std::unique_ptr<reservoir::pg::Connection> conn_;
    std::atomic<bool> stop_{false};
    std::atomic<std::int64_t> peak_{0};
    std::thread thread_;
};

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

}  // namespace

int main(int argc, char** argv) try {
    const Settings settings = parse(argc, argv);
    auto config = reservoir::pg::Config::from_env();
    config.application_name = "reservoir-demo-" + std::to_string(::getpid());
    config.pool.max_size = settings.pool;
    config.pool.min_size = std::min(config.pool.min_size, settings.pool);
    config.pool.acquire_timeout = 10s;

    // One pool for the whole process, reachable from every component.
    auto& pool = reservoir::global<reservoir::PgPool>::init(config);
    seed(*pool.acquire());
    ServerWatch watch(config, config.application_name);

    reservoir::Histogram latency;
    std::atomic<std::uint64_t> errors{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int w = 0; w < settings.workers; ++w) {
        workers.emplace_back([&, w] {
            std::minstd_rand rng(static_cast<unsigned>(w) + 1);
            while (!stop.load(std::memory_order_relaxed)) {
                const int id = static_cast<int>(rng() % table_rows) + 1;
                const auto start = Clock::now();
                try {
                    auto lease = reservoir::global<reservoir::PgPool>::get().acquire();
                    const auto name = lease->query("SELECT name FROM reservoir_demo_items WHERE id = $1", id)
                                          .scalar<std::string>();
                    if (name != "item " + std::to_string(id)) throw std::runtime_error("wrong row for id " + std::to_string(id));
                    latency.record(Clock::now() - start);
                } catch (const std::exception& e) {
                    if (errors.fetch_add(1) < 5) std::fprintf(stderr, "\nerror: %s\n", e.what());
                }
            }
        });
    }

    std::printf("%d workers through one pool of %zu for %.0f s against %s\n", settings.workers, settings.pool,
                settings.seconds, config.redacted_url().c_str());
    const bool tty = isatty(STDOUT_FILENO) != 0;
    const auto begin = Clock::now();
    const auto end = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(settings.seconds));
    std::uint64_t last_count = 0;
    auto last = begin;
    while (Clock::now() < end) {
        std::this_thread::sleep_for(tty ? 250ms : 1s);
        const auto now = Clock::now();
        const auto snapshot = latency.snapshot();
        const auto st = pool.stats();
        std::printf("%s%8.0f q/s  p99 %6.2f ms  in use %2zu  idle %2zu  waiting %3zu  server conns %2lld  errors %llu%s",
                    tty ? "\r" : "",
                    static_cast<double>(snapshot.count - last_count) / std::chrono::duration<double>(now - last).count(),
                    ms(snapshot.quantile(0.99)), st.in_use, st.idle, st.waiting,
                    static_cast<long long>(watch.peak()), static_cast<unsigned long long>(errors.load()),
                    tty ? "" : "\n");
        std::fflush(stdout);
        last_count = snapshot.count;
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
    std::printf("server       peak %lld connections from this pool in pg_stat_activity (max %zu)\n",
                static_cast<long long>(watch.peak()), settings.pool);
    std::printf("pool         acquires %llu, timeouts %llu, connects %llu, closes %llu\n",
                static_cast<unsigned long long>(st.acquires), static_cast<unsigned long long>(st.acquire_timeouts),
                static_cast<unsigned long long>(st.connects), static_cast<unsigned long long>(st.closes.total()));

    const bool drained = pool.shutdown(10s);
    std::printf("shutdown     %s\n", drained ? "clean" : "timed out");
    const bool ok = errors.load() == 0 && watch.peak() >= 0 &&
                    watch.peak() <= static_cast<std::int64_t>(settings.pool) && drained;
    reservoir::global<reservoir::PgPool>::reset();
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "reservoir-demo: %s\n", e.what());
    return 1;
}
