#pragma once
// Shared by the fault scenarios (test_faults.cpp): a load generator that
// records every operation, a sampler of the server's connection count, an
// event log, control of the sandbox server, and the one-line summary each
// scenario prints. Only the test's main thread makes Catch2 assertions; the
// threads here only record.

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <reservoir/reservoir.hpp>

#include "../common/session_sampler.hpp"
#include "../common/shell.hpp"

#include "../pg/pg_test_support.hpp"
#include "proxy.hpp"

namespace faults {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace pg = reservoir::pg;

// Under a sanitizer every instrumented step is several times slower, and a
// contended lock under ThreadSanitizer far more so (its clocks grow with the
// thread count); 100 threads failing at once then queue for the pool's lock
// for most of a second. There, bounds of a few milliseconds are multiplied by
// `slowdown` (and kept below the deadline they guard against), and failures
// may come later after their deadline. The timing of the pool is checked
// closely by the builds without a sanitizer.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif
inline constexpr int slowdown = sanitized ? 20 : 1;
// How late after its deadline a failure may come, as a fraction of the
// deadline: nine in ten within 10%; the 99th percentile and the slowest one,
// which the scheduler may have preempted (100 threads and other processes
// share two cores), within 50% and 100%. On top of that, what the machine
// made any thread of the process late at the time (LatenessProbe). A
// deadline that is not kept (a wait restarted, a call blocked until the
// network returns) shows in all three.
inline constexpr double late_p90 = sanitized ? 2.0 : 0.1;
inline constexpr double late_p99 = sanitized ? 3.0 : 0.5;
inline constexpr double late_max = sanitized ? 4.0 : 1.0;

// How long setting a pool up (opening its first connections) may take.
inline constexpr auto setup_limit = 30s;

inline double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
inline long long whole_ms(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// ---- outcomes ---------------------------------------------------------------

enum class Outcome : std::uint8_t {
    ok,
    wrong,  // the statement answered, with the wrong number
    acquire_timeout,
    pool_unavailable,
    pool_closed,
    connection_lost,
    query_error,
    other,  // anything else: not one of the typed errors above
};
inline constexpr std::size_t outcome_count = 8;
inline constexpr std::string_view outcome_names[outcome_count] = {
    "ok", "wrong", "AcquireTimeout", "PoolUnavailable", "PoolClosed", "ConnectionLost", "QueryError", "other"};

inline bool is_error(Outcome o) noexcept { return o != Outcome::ok && o != Outcome::wrong; }

struct Tally {
    std::array<std::uint64_t, outcome_count> n{};

    void add(Outcome o) noexcept { ++n[static_cast<std::size_t>(o)]; }
    std::uint64_t operator[](Outcome o) const noexcept { return n[static_cast<std::size_t>(o)]; }
    std::uint64_t ops() const noexcept {
        std::uint64_t total = 0;
        for (auto v : n) total += v;
        return total;
    }
    std::uint64_t errors() const noexcept { return ops() - (*this)[Outcome::ok] - (*this)[Outcome::wrong]; }
    std::string errors_text() const {
        std::string text = "errors{";
        for (std::size_t i = 2; i < outcome_count; ++i)
            text += (i > 2 ? " " : "") + std::string(outcome_names[i]) + "=" + std::to_string(n[i]);
        return text + "}";
    }
};

// One operation of a load worker.
struct Op {
    Clock::time_point start{};
    Clock::time_point acquired{};  // when the acquire returned; == end when it threw
    Clock::time_point end{};
    Outcome outcome = Outcome::ok;
    bool leased = false;  // the acquire succeeded (so a failure came from the statement)
    int worker = 0;

    Clock::duration duration() const noexcept { return end - start; }
    Clock::duration acquire_time() const noexcept { return acquired - start; }
    Clock::duration query_time() const noexcept { return end - acquired; }
};

template <class Keep>
Tally tally(const std::vector<Op>& ops, Keep keep) {
    Tally t;
    for (const Op& op : ops)
        if (keep(op)) t.add(op.outcome);
    return t;
}
inline Tally tally(const std::vector<Op>& ops) {
    return tally(ops, [](const Op&) { return true; });
}

// How long after `since` operations still failed: the start of the last
// operation that failed (or answered wrongly) among those started at or after
// `since`, relative to it; zero when none did. Every operation that started
// later succeeded. An operation that started before `since` and failed after
// it belongs to the fault, not to the recovery.
inline Clock::duration recovery(const std::vector<Op>& ops, Clock::time_point since) {
    Clock::duration last = Clock::duration::zero();
    for (const Op& op : ops)
        if (op.start >= since && op.outcome != Outcome::ok) last = std::max(last, op.start - since);
    return last;
}

inline std::size_t started_after(const std::vector<Op>& ops, Clock::time_point since) {
    return static_cast<std::size_t>(
        std::count_if(ops.begin(), ops.end(), [&](const Op& op) { return op.start >= since; }));
}

// The q-quantile (0..1) of a sample, nearest rank; 0 for an empty one.
inline double quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(rank, v.size() - 1)];
}

// ---- load -------------------------------------------------------------------

// Thrown by a body to end its worker (not recorded as an operation).
struct StopWorker {};

// What a body gets for each operation.
struct Context {
    int worker;
    std::uint64_t iteration;
    std::mt19937_64& rng;
    Clock::time_point acquired{};
    void mark_acquired() noexcept { acquired = Clock::now(); }
};

struct LoadOptions {
    int workers = 100;
    // A worker that saw an error waits this long before its next operation, as
    // a client backing off would; it also keeps failing workers from spinning
    // on two cores and starving the threads under test.
    Clock::duration pause_after_error = 5ms;
    Clock::duration limit = 60s;  // no worker runs longer than this, whatever happens
    // Each worker starts after a random part of this, so that 100 clients do
    // not run (and time out) in lockstep.
    Clock::duration start_spread = 100ms;
    std::uint64_t max_ops_per_worker = 10'000'000;
    std::uint64_t seed = 1;
    // false: count outcomes only, for loads that run millions of operations.
    bool keep_ops = true;
};

// `workers` threads running `body` in a loop, each operation recorded with its
// times and its outcome, typed by the exception that ended it.
class Load {
public:
    using Body = std::function<bool(Context&)>;  // true: the answer was right

    explicit Load(Body body, LoadOptions options = {})
        : body_(std::move(body)),
          options_(options),
          ops_(static_cast<std::size_t>(options.workers)),
          tallies_(static_cast<std::size_t>(options.workers)) {}
    ~Load() { stop(60s); }
    Load(const Load&) = delete;
    Load& operator=(const Load&) = delete;

    // Starts the workers, all at once once every thread exists (creating 100
    // threads takes a while, much longer under a sanitizer).
    void start() {
        for (int w = 0; w < options_.workers; ++w) threads_.emplace_back([this, w] { run(w); });
        std::lock_guard lk(mu_);
        t0_ = Clock::now();
        go_ = true;
        go_cv_.notify_all();
    }

    // Asks every worker to stop after its current operation and joins them.
    // True when all of them had stopped within `bound` (a worker that takes
    // longer is still joined, later: the test then fails on the result).
    bool stop(Clock::duration bound) {
        if (threads_.empty()) return stopped_in_time_;
        const auto asked = Clock::now();
        stop_.store(true);
        {
            std::unique_lock lk(mu_);
            stopped_in_time_ = done_cv_.wait_until(lk, asked + bound, [&] { return finished_ == options_.workers; });
        }
        for (auto& t : threads_) t.join();
        threads_.clear();
        stop_took_ = Clock::now() - asked;
        for (auto& mine : ops_) all_.insert(all_.end(), mine.begin(), mine.end());
        ops_.clear();
        for (const auto& t : tallies_)
            for (std::size_t i = 0; i < outcome_count; ++i) tally_.n[i] += t.n[i];
        std::sort(all_.begin(), all_.end(), [](const Op& a, const Op& b) { return a.start < b.start; });
        return stopped_in_time_;
    }

    Clock::time_point t0() const noexcept { return t0_; }
    Clock::duration stop_took() const noexcept { return stop_took_; }
    const std::vector<Op>& ops() const noexcept { return all_; }  // after stop(), by start time
    const Tally& tally() const noexcept { return tally_; }        // after stop(), kept or not

    // The first message seen for each error type: for the test's diagnostics.
    std::string first_messages() const {
        std::lock_guard lk(mu_);
        std::string text;
        for (std::size_t i = 0; i < outcome_count; ++i)
            if (!first_message_[i].empty()) text += std::string(outcome_names[i]) + ": " + first_message_[i] + "\n";
        return text;
    }

private:
    void run(int w) {
        {
            std::unique_lock lk(mu_);
            go_cv_.wait(lk, [&] { return go_; });
        }
        std::mt19937_64 rng(options_.seed * 1'000'003 + static_cast<std::uint64_t>(w));
        if (options_.start_spread > Clock::duration::zero())
            std::this_thread::sleep_for(Clock::duration(
                static_cast<Clock::rep>(rng() % static_cast<std::uint64_t>(options_.start_spread.count()))));
        auto& mine = ops_[static_cast<std::size_t>(w)];
        auto& counts = tallies_[static_cast<std::size_t>(w)];
        if (options_.keep_ops) mine.reserve(4096);
        const auto end_by = Clock::now() + options_.limit;
        for (std::uint64_t i = 0; i < options_.max_ops_per_worker && !stop_.load(std::memory_order_relaxed); ++i) {
            if (Clock::now() >= end_by) break;
            Context c{w, i, rng, {}};
            Op op;
            op.worker = w;
            op.start = Clock::now();
            try {
                op.outcome = body_(c) ? Outcome::ok : Outcome::wrong;
                op.end = Clock::now();
            } catch (const StopWorker&) {
                break;
            } catch (const reservoir::AcquireTimeout& e) {
                failed(op, Outcome::acquire_timeout, e.what());
            } catch (const reservoir::PoolUnavailable& e) {
                failed(op, Outcome::pool_unavailable, e.what());
            } catch (const reservoir::PoolClosed& e) {
                failed(op, Outcome::pool_closed, e.what());
            } catch (const pg::ConnectionLost& e) {
                failed(op, Outcome::connection_lost, e.what());
            } catch (const pg::QueryError& e) {
                failed(op, Outcome::query_error, e.what());
            } catch (const std::exception& e) {
                failed(op, Outcome::other, e.what());
            } catch (...) {
                failed(op, Outcome::other, "an exception of unknown type");
            }
            op.leased = c.acquired != Clock::time_point{};
            op.acquired = op.leased ? c.acquired : op.end;
            counts.add(op.outcome);
            if (options_.keep_ops) mine.push_back(op);
            if (op.outcome != Outcome::ok && options_.pause_after_error > Clock::duration::zero())
                std::this_thread::sleep_for(options_.pause_after_error);
        }
        std::lock_guard lk(mu_);
        ++finished_;
        done_cv_.notify_all();
    }

    void failed(Op& op, Outcome o, const char* message) {
        op.end = Clock::now();
        op.outcome = o;
        const auto i = static_cast<std::size_t>(o);
        if (seen_[i].load(std::memory_order_relaxed)) return;
        std::lock_guard lk(mu_);
        if (first_message_[i].empty()) first_message_[i] = message;
        seen_[i].store(true, std::memory_order_relaxed);
    }

    Body body_;
    LoadOptions options_;
    std::vector<std::vector<Op>> ops_;  // one per worker, written by it alone
    std::vector<Tally> tallies_;        // likewise
    std::vector<Op> all_;
    Tally tally_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mu_;
    std::condition_variable done_cv_, go_cv_;
    bool go_ = false;
    int finished_ = 0;
    bool stopped_in_time_ = true;
    Clock::time_point t0_{};
    Clock::duration stop_took_{};
    std::array<std::atomic<bool>, outcome_count> seen_{};
    std::array<std::string, outcome_count> first_message_{};
};

// ---- the server, directly ------------------------------------------------------

// A connection straight to the server (never through the proxy).
inline pg::Connection connect_direct(const std::string& url, Clock::duration timeout = 5s) {
    return pg::Driver(pg::Config::from_url(url)).connect(Clock::now() + timeout);
}

inline std::uint16_t server_port(const std::string& url) {
    return static_cast<std::uint16_t>(std::stoi(pg::Config::from_url(url).port));
}

inline constexpr const char* count_sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";

// How many server sessions carry one application_name, sampled every `every`.
class PeakSampler : public testsupport::SessionSampler {
public:
    PeakSampler(const std::string& admin_url, const std::string& app, Clock::duration every = 5ms)
        : SessionSampler(
              admin_url, [app](pg::Connection& c) { return c.query_for(2s, count_sql, app).scalar<std::int64_t>(); },
              every) {}
};

using testsupport::eventually;

// Sessions of `app` on the server now, from a fresh admin connection.
inline long long sessions_of(const std::string& admin_url, const std::string& app) {
    auto admin = connect_direct(admin_url);
    return admin.query_for(5s, count_sql, app).scalar<std::int64_t>();
}

// True when the server at 127.0.0.1:port accepts connections (no login needed).
inline bool server_accepts(std::uint16_t port) {
    const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port) + " dbname=postgres connect_timeout=2";
    return PQping(conninfo.c_str()) == PQPING_OK;
}

// ---- events -----------------------------------------------------------------------

// Sleeps to deadlines as the pool's waiters do (a timed wait on a condition
// variable), 5 to 25 ms at a time, and records how late it wakes: what the
// machine alone adds to any deadline in this process while it runs.
class LatenessProbe {
public:
    LatenessProbe() : thread_([this] { run(); }) {}
    ~LatenessProbe() { stop(); }
    LatenessProbe(const LatenessProbe&) = delete;
    LatenessProbe& operator=(const LatenessProbe&) = delete;

    void stop() {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    // The q-quantile (0..1) of the lateness seen so far, in milliseconds.
    double quantile_ms(double q) const {
        std::lock_guard lk(mu_);
        return quantile(late_ms_, q);
    }

private:
    void run() {
        std::mt19937 rng(7);
        const auto end_by = Clock::now() + 120s;
        std::unique_lock lk(mu_);
        while (!stop_ && Clock::now() < end_by) {
            const auto deadline = Clock::now() + std::chrono::milliseconds(5 + rng() % 21);
            if (cv_.wait_until(lk, deadline, [&] { return stop_; })) break;
            late_ms_.push_back(ms(Clock::now() - deadline));
        }
    }

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::vector<double> late_ms_;
    std::thread thread_;  // last: starts once the rest is built
};

// Keeps every event the pool reports, with the time it arrived.
class EventLog final : public reservoir::EventListener {
public:
    struct Entry {
        Clock::time_point at;
        reservoir::EventKind kind;
        std::string message;
    };

    void on_event(const reservoir::Event& e) noexcept override {
        try {
            std::lock_guard lk(mu_);
            entries_.push_back({Clock::now(), e.kind, std::string(e.message)});
        } catch (...) {  // out of memory: the test sees the event missing
        }
    }
    std::vector<Entry> of(reservoir::EventKind kind) const {
        std::lock_guard lk(mu_);
        std::vector<Entry> out;
        for (const auto& e : entries_)
            if (e.kind == kind) out.push_back(e);
        return out;
    }

private:
    mutable std::mutex mu_;
    std::vector<Entry> entries_;
};

// ---- the sandbox server -------------------------------------------------------------

using testsupport::CommandResult;
using testsupport::run_command;
using testsupport::shell_quote;

// `pg-sandbox COMMAND DIR OPTIONS` on the sandbox ctest started for these tests.
inline CommandResult sandbox(const std::string& command, const std::string& options = "") {
    const char* dir = std::getenv("RESERVOIR_TEST_SANDBOX");
    if (!dir || !*dir) return {-1, "RESERVOIR_TEST_SANDBOX is not set: run the fault tests through ctest"};
    return run_command(shell_quote(RESERVOIR_PG_SANDBOX_SCRIPT) + " " + command + " " + shell_quote(dir) + " " +
                       options);
}

// ---- the pool's configuration -------------------------------------------------------

// The app role's config, through the proxy, with its own application_name.
// Faster retries than the defaults (backoff up to 500 ms rather than 5 s, a
// 500 ms breaker cooldown) so that recovery fits the scenarios' seconds. The
// connect deadline is 5 s: a connect (SCRAM, through the proxy) takes up to a
// second or two on a loaded machine, and one a blackhole stalled for 1.5 s
// must still be able to finish once it ends.
inline pg::Config proxied_config(const fault::FaultProxy& proxy, const std::string& app) {
    auto c = pg::Config::from_url(pgtest::database_url());
    c.host = "127.0.0.1";
    c.port = std::to_string(proxy.port());
    c.application_name = app;
    c.pool.min_size = 2;
    c.pool.max_size = 20;
    c.pool.acquire_timeout = 1s;
    c.pool.connect_timeout = 5s;
    c.pool.retry_initial = 20ms;
    c.pool.retry_max = 500ms;
    c.pool.breaker_cooldown = 500ms;
    return c;
}

// The operation of every scenario: one lease, one statement, its answer checked.
inline Load::Body multiply(reservoir::PgPool& pool, Clock::duration acquire_timeout, Clock::duration query_timeout) {
    return [&pool, acquire_timeout, query_timeout](Context& c) {
        std::uniform_int_distribution<std::int64_t> operand(-1'000'000, 1'000'000);
        const std::int64_t a = operand(c.rng), b = operand(c.rng);
        auto lease = pool.acquire(acquire_timeout);
        c.mark_acquired();
        const auto got = lease->query_for(query_timeout, "SELECT $1::int8 * $2", a, b).scalar<std::int64_t>();
        return got == a * b;
    };
}

// ---- the summary ------------------------------------------------------------------

// Prints a scenario's line of figures and appends it to $RESERVOIR_FAULT_REPORT.
inline void report(const std::string& line) {
    std::cout << line << std::endl;
    if (const char* path = std::getenv("RESERVOIR_FAULT_REPORT"); path && *path) {
        std::ofstream out(path, std::ios::app);
        out << line << '\n';
    }
}

// "ops=.. errors{..} wrong=.." for a set of operations.
inline std::string figures(const Tally& t) {
    return "ops=" + std::to_string(t.ops()) + " " + t.errors_text() + " wrong=" + std::to_string(t[Outcome::wrong]);
}

}  // namespace faults
