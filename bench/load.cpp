// reservoir-load: drives a real PostgreSQL with N workers and measures what a
// service would see: throughput, latency percentiles, errors, the most server
// connections at once (from pg_stat_activity), and what the client itself
// spends per query (CPU, context switches).
//
//   reservoir-load [--url URL] [--workers N] [--pool N] [--seconds S] [--warmup S]
//                  [--query point|sleep|none|SQL] [--mode pool|naive|async|connect|shared|pipeline]
//                  [--batch N] [--threads N] [--json FILE] [--quiet] [--handoff-after MS]
//                  [--handoff-patience X]
//                  [--reset discard_all|light|trust_sql_text|none] [--cycles N]
//
// Modes, the same workers each time:
//   pool     one reservoir PgPool of --pool connections, shared by every worker
//   naive    the same workers and loop on the naive pool (bench/naive_pool.hpp:
//            a std::mutex, a std::condition_variable and a deque of --pool libpq
//            connections, opened before the run; no checks, no session reset)
//   async    the same pool, event-driven: the workers are state machines on
//            --threads event-loop threads (default 2, like pgbench -j 2) that
//            share one epoll set. A worker asks with async_acquire, sends its
//            statement from the callback, and is resumed when the socket has
//            the answer: one thread per core instead of one per worker
//   connect  a new libpq connection per query, closed after it (an anti-pattern)
//   shared   one connection behind a std::mutex (the other anti-pattern)
//   pipeline the pool, each lease running --batch statements (default 100)
//            in libpq's pipeline mode (pg::pipeline): one round trip a batch.
//            Queries count statements; a latency is a whole batch's.
// --reset: the pool's session reset mode (pg::ResetMode; default discard_all,
// a DISCARD ALL after every lease; trust_sql_text resets only after SQL that
// looks like it changed the session, so a point select never pays for one).
// Queries:
//   point    SELECT name FROM reservoir_load_items WHERE id = $1, on a seeded
//            table of 10,000 rows, a random id per query
//   sleep    SELECT pg_sleep(0.002): 2 ms of server time, no server CPU
//   none     no statement: a worker's loop is acquire and release alone, and a
//            "query" is one cycle (the summary adds ns_per_cycle, wall time
//            over every worker's cycles; cycles are counted, not timed, so no
//            latency figures); pool and naive modes only
//   SQL      any other text: run as given, without parameters
//
// Each query's latency runs from just before the acquire (or the connect, or
// the lock) to just after the connection is returned (or closed, or the lock
// let go), recorded into the worker's own
// histogram: no lock and no shared cache line on the measured path. Only
// queries that complete inside the measured window count; --warmup seconds
// run first, unmeasured.
//
// Output: a progress line on stderr once a second, a readable summary on
// stderr, and one `key=value ...` line on stdout (and, with --json, the same
// as a JSON object with the latency distribution added). The exit status is
// 1 when any query failed, the server watch failed, or (pool mode) the server
// ever saw more connections from us than --pool or the pool did not shut down
// cleanly; 2 for bad flags; 3 when the run overstayed its bound (--warmup +
// --seconds + 120 s) and was cut short.
//
// --cycles N: the run ends once the workers have made N loop iterations
// between them (each its even share), or at --seconds, whichever is first;
// there is no warm-up, every iteration is measured, and the server is counted
// once before and once after instead of every 50 ms, so that the process makes
// no system call per unit of time that would not also be made per iteration
// (for `strace -f -c`: the difference between runs of N and 2N cycles over N
// is the calls of a cycle). Pool and naive modes only.
//
// Settings without --url come from the environment (DATABASE_URL, DB_*), as
// pg::Config::from_env reads them.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <reservoir/pg/pg.hpp>
#include <reservoir/reservoir.hpp>

#include "naive_pool.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

namespace pg = reservoir::pg;

enum class Mode { pool, naive, async, connect, shared, pipeline };

constexpr const char* mode_name(Mode m) {
    switch (m) {
        case Mode::pool: return "pool";
        case Mode::naive: return "naive";
        case Mode::async: return "async";
        case Mode::connect: return "connect";
        case Mode::shared: return "shared";
        case Mode::pipeline: return "pipeline";
    }
    return "?";
}

constexpr bool uses_pool(Mode m) { return m == Mode::pool || m == Mode::async || m == Mode::pipeline; }
// Modes that hold --pool connections, reservoir's or the naive pool's.
constexpr bool holds_pool(Mode m) { return uses_pool(m) || m == Mode::naive; }

using NaivePgPool = reservoir_bench::NaivePool<pg::Driver>;

constexpr int table_rows = 10000;
constexpr const char* point_sql = "SELECT name FROM reservoir_load_items WHERE id = $1";
constexpr const char* sleep_sql = "SELECT pg_sleep(0.002)";

// Bounds, so that every run ends: a query or an acquire gives up after these,
// and the whole process after the run's length plus `watchdog_margin`.
constexpr auto query_timeout = 30s;
constexpr auto acquire_timeout = 30s;
constexpr auto connect_timeout = 10s;
constexpr auto watchdog_margin = 120s;

struct Settings {
    std::string url;        // "" = from the environment
    std::string admin_url;  // for the server watch; "" = the same as url
    int workers = 200;
    std::size_t pool = 20;
    double seconds = 10;
    double warmup = 1;
    std::string query = "point";
    Mode mode = Mode::pool;
    int batch = 100;  // statements per lease in pipeline mode
    int threads = 2;  // event-loop threads in async mode
    std::uint64_t cycles = 0;  // 0 = timed; otherwise the run's iterations, all workers together
    std::string json;
    bool quiet = false;  // no progress line and no readable summary
    std::optional<std::chrono::milliseconds> handoff_after;  // the pool's options; unset = their defaults
    std::optional<double> handoff_patience;
    pg::ResetMode reset = pg::ResetMode::discard_all;
};

constexpr const char* reset_name(pg::ResetMode m) {
    switch (m) {
        case pg::ResetMode::discard_all: return "discard_all";
        case pg::ResetMode::light: return "light";
        case pg::ResetMode::trust_sql_text: return "trust_sql_text";
        case pg::ResetMode::none: return "none";
    }
    return "?";
}

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "reservoir-load: %s\n"
                 "usage: reservoir-load [--url URL] [--admin-url URL] [--workers N] [--pool N] [--seconds S]\n"
                 "                      [--warmup S] [--query point|sleep|none|SQL]\n"
                 "                      [--mode pool|naive|async|connect|shared|pipeline]\n"
                 "                      [--batch N] [--threads N] [--json FILE] [--quiet] [--handoff-after MS]\n"
                 "                      [--handoff-patience X]\n"
                 "                      [--reset discard_all|light|trust_sql_text|none] [--cycles N]\n",
                 why.c_str());
    std::exit(2);
}

double number(const std::string& flag, const std::string& text, double lo, double hi) {
    try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used == text.size() && v >= lo && v <= hi) return v;
    } catch (const std::exception&) {
    }
    char range[64];
    std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
    usage(flag + " = \"" + text + "\": must be a number in " + range);
}

Settings parse(int argc, char** argv) {
    Settings s;
    for (int i = 1; i < argc; ++i) {
        std::string flag = argv[i], value;
        bool inline_value = false;
        if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
            value = flag.substr(eq + 1);
            flag.resize(eq);
            inline_value = true;
        }
        if (flag == "--quiet") {
            s.quiet = true;
            continue;
        }
        if (flag == "--help" || flag == "-h") usage("drives PostgreSQL with N workers and measures it");
        if (!inline_value) {
            if (i + 1 >= argc) usage(flag + " needs a value");
            value = argv[++i];
        }
        if (flag == "--url") s.url = value;
        else if (flag == "--admin-url") s.admin_url = value;
        else if (flag == "--workers") s.workers = static_cast<int>(number(flag, value, 1, 10000));
        else if (flag == "--pool") s.pool = static_cast<std::size_t>(number(flag, value, 1, 10000));
        else if (flag == "--seconds") s.seconds = number(flag, value, 0.1, 86400);
        else if (flag == "--warmup") s.warmup = number(flag, value, 0, 3600);
        else if (flag == "--query") s.query = value;
        else if (flag == "--batch") s.batch = static_cast<int>(number(flag, value, 1, 10000));
        else if (flag == "--threads") s.threads = static_cast<int>(number(flag, value, 1, 64));
        else if (flag == "--json") s.json = value;
        else if (flag == "--cycles") s.cycles = static_cast<std::uint64_t>(number(flag, value, 1, 1e12));
        else if (flag == "--reset") {
            const auto known = {pg::ResetMode::discard_all, pg::ResetMode::light, pg::ResetMode::trust_sql_text,
                                pg::ResetMode::none};
            const auto it = std::find_if(known.begin(), known.end(), [&](auto m) { return value == reset_name(m); });
            if (it == known.end()) usage("--reset must be discard_all, light, trust_sql_text or none");
            s.reset = *it;
        } else if (flag == "--handoff-after")
            s.handoff_after = std::chrono::milliseconds(static_cast<long long>(number(flag, value, 0, 60000)));
        else if (flag == "--handoff-patience")
            s.handoff_patience = number(flag, value, 1, 100);
        else if (flag == "--mode") {
            if (value == "pool") s.mode = Mode::pool;
            else if (value == "naive") s.mode = Mode::naive;
            else if (value == "async") s.mode = Mode::async;
            else if (value == "connect") s.mode = Mode::connect;
            else if (value == "shared") s.mode = Mode::shared;
            else if (value == "pipeline") s.mode = Mode::pipeline;
            else usage("--mode must be pool, naive, async, connect, shared or pipeline");
        } else {
            usage("unknown flag " + flag);
        }
    }
    if (s.query.empty()) usage("--query must not be empty");
    const bool threads_on_a_pool = s.mode == Mode::pool || s.mode == Mode::naive;
    if (s.query == "none" && !threads_on_a_pool) usage("--query none needs --mode pool or naive");
    if (s.cycles > 0 && !threads_on_a_pool) usage("--cycles needs --mode pool or naive");
    return s;
}

// A log-linear latency histogram finer than the library's (32 buckets per
// power of two: every bucket within 3% of the values it holds), for a single
// writer. Its counters are relaxed atomics so the progress line may read
// them while the worker writes; on x86-64 these are plain loads and stores.
class Latencies {
public:
    using Buckets = reservoir::LogLinearBuckets<5, 37>;  // up to 2^37 ns = 137 s
    static constexpr std::size_t count = Buckets::count;

    struct Snapshot {
        std::vector<std::uint64_t> buckets = std::vector<std::uint64_t>(count, 0);
        std::uint64_t n = 0, sum_ns = 0, max_ns = 0;

        void add(const Latencies& h) {
            for (std::size_t i = 0; i < count; ++i) buckets[i] += h.buckets_[i].load(std::memory_order_relaxed);
            n += h.n_.load(std::memory_order_relaxed);
            sum_ns += h.sum_.load(std::memory_order_relaxed);
            max_ns = std::max(max_ns, h.max_.load(std::memory_order_relaxed));
        }
        // The part of this snapshot that came after `earlier` (max excepted).
        Snapshot since(const Snapshot& earlier) const {
            Snapshot d;
            for (std::size_t i = 0; i < count; ++i) d.buckets[i] = buckets[i] - earlier.buckets[i];
            d.n = n - earlier.n;
            d.sum_ns = sum_ns - earlier.sum_ns;
            d.max_ns = max_ns;
            return d;
        }
        // The value at quantile q: its bucket's upper bound, never above the max.
        double quantile_ms(double q) const {
            if (n == 0) return 0;
            auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n));
            if (rank >= n) rank = n - 1;
            std::uint64_t seen = 0;
            for (std::size_t i = 0; i < count; ++i) {
                seen += buckets[i];
                if (seen > rank) return static_cast<double>(std::min(Buckets::upper(i), max_ns)) / 1e6;
            }
            return static_cast<double>(max_ns) / 1e6;
        }
        double max_ms() const { return static_cast<double>(max_ns) / 1e6; }
        double mean_ms() const { return n ? static_cast<double>(sum_ns) / static_cast<double>(n) / 1e6 : 0; }
    };

    void record(Clock::duration d) noexcept {
        const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
        bump(buckets_[Buckets::index(ns)], 1);
        bump(n_, 1);
        bump(sum_, ns);
        if (ns > max_.load(std::memory_order_relaxed)) max_.store(ns, std::memory_order_relaxed);
    }

private:
    static void bump(std::atomic<std::uint64_t>& a, std::uint64_t by) noexcept {
        a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }

    std::array<std::atomic<std::uint64_t>, count> buckets_{};
    std::atomic<std::uint64_t> n_{0}, sum_{0}, max_{0};
};

// One worker's own counters, on cache lines of their own.
struct alignas(64) WorkerState {
    Latencies latency;                      // measured window only
    std::atomic<std::uint64_t> done{0};     // every completed query, warm-up included
    std::atomic<std::uint64_t> errors{0};
};

enum Phase : int { warming = 0, measuring = 1, finished = 2 };

// Counts our sessions on the server from a connection of its own (whose own
// application_name differs, so it does not count itself): every 50 ms, or,
// not `polling`, only when sample() is called.
class ServerWatch {
public:
    ServerWatch(pg::Config config, std::string app, bool polling = true) : app_(std::move(app)) {
        config.application_name = app_ + "-watch";
        config.pool.connect_timeout = connect_timeout;
        conn_ = std::make_unique<pg::Connection>(pg::Driver(config).connect(Clock::now() + connect_timeout));
        if (polling) thread_ = std::thread([this] { run(); });
    }
    ServerWatch(const ServerWatch&) = delete;
    ServerWatch& operator=(const ServerWatch&) = delete;
    ~ServerWatch() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    // One count now, for a watch that does not poll.
    void sample() {
        try {
            count();
        } catch (const std::exception& e) {
            failed(e);
        }
    }
    // -1 when the watch failed: the bound was then not observed.
    std::int64_t peak() const noexcept { return peak_.load(); }
    std::int64_t last() const noexcept { return last_.load(); }

private:
    void run() {
        try {
            std::unique_lock lock(mutex_);
            while (!stop_) {
                lock.unlock();
                count();
                lock.lock();
                wake_.wait_for(lock, 50ms, [this] { return stop_; });
            }
        } catch (const std::exception& e) {
            failed(e);
        }
    }
    void count() {
        const auto n =
            conn_->query_for(10s, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app_)
                .scalar<std::int64_t>();
        last_ = n;
        if (n > peak_ && peak_ >= 0) peak_ = n;
    }
    void failed(const std::exception& e) {
        std::fprintf(stderr, "\nreservoir-load: server watch stopped: %s\n", e.what());
        peak_ = -1;
    }

    std::string app_;
    std::unique_ptr<pg::Connection> conn_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::atomic<std::int64_t> peak_{0}, last_{0};
    std::thread thread_;
};

// Ends the process if the run overstays its bound (a hung server, say).
class Watchdog {
public:
    explicit Watchdog(Clock::duration limit)
        : thread_([this, deadline = Clock::now() + limit] {
              std::unique_lock lock(mutex_);
              if (!wake_.wait_until(lock, deadline, [this] { return done_; })) {
                  std::fprintf(stderr, "\nreservoir-load: still running past its time bound; giving up\n");
                  std::fflush(stderr);
                  std::_Exit(3);
              }
          }) {}
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    ~Watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        wake_.notify_all();
        thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable wake_;
    bool done_ = false;
    std::thread thread_;
};

struct Usage {
    double cpu_us = 0;             // user + system, every thread of the process
    std::uint64_t switches = 0;    // voluntary + involuntary
    long max_rss_kb = 0;

    static Usage now() {
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        const auto us = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec); };
        return {us(u.ru_utime) + us(u.ru_stime), static_cast<std::uint64_t>(u.ru_nvcsw + u.ru_nivcsw), u.ru_maxrss};
    }
};

void seed(pg::Connection& c) {
    c.execute("CREATE TABLE IF NOT EXISTS reservoir_load_items (id int PRIMARY KEY, name text NOT NULL)");
    const auto have = c.query("SELECT count(*) FROM reservoir_load_items").scalar<std::int64_t>();
    if (have != table_rows) {
        c.query("INSERT INTO reservoir_load_items SELECT g, 'item ' || g FROM generate_series(1, $1) g "
                "ON CONFLICT (id) DO NOTHING",
                table_rows);
        c.execute("ANALYZE reservoir_load_items");
    }
}

// One query on `c`, as --query says. Throws on an unexpected result.
class Workload {
public:
    explicit Workload(const std::string& query)
        : kind_(query == "point"   ? Kind::point
                : query == "sleep" ? Kind::sleep
                : query == "none"  ? Kind::none
                                   : Kind::custom),
          sql_(kind_ == Kind::point ? point_sql : kind_ == Kind::sleep ? sleep_sql : kind_ == Kind::none ? "" : query) {}

    bool point() const noexcept { return kind_ == Kind::point; }
    bool none() const noexcept { return kind_ == Kind::none; }
    const char* name() const noexcept {
        switch (kind_) {
            case Kind::point: return "point";
            case Kind::sleep: return "sleep";
            case Kind::none: return "none";
            case Kind::custom: return "custom";
        }
        return "?";
    }
    const std::string& sql() const noexcept { return sql_; }

    void run(pg::Connection& c, std::minstd_rand& rng) const {
        if (kind_ == Kind::none) return;  // the cycle is the acquire and release around this call
        check(kind_ == Kind::point ? c.query_for(query_timeout, sql_, random_id(rng)) : c.query_for(query_timeout, sql_));
    }

    // The same statement for an event loop: sent now, checked once answered.
    void send(pg::Connection& c, std::minstd_rand& rng) const {
        if (kind_ == Kind::point) c.send(sql_, random_id(rng));
        else c.send(sql_);
    }
    void check(const pg::Result& r) const {
        if (kind_ == Kind::point && r.rows() != 1) throw std::runtime_error("a point select found no row");
    }

    // `n` statements in one pipeline (one sync: all or nothing).
    void run_batch(pg::Connection& c, std::minstd_rand& rng, int n) const {
        const auto results = pg::pipeline_until(c, Clock::now() + query_timeout, [&](pg::Pipeline& p) {
            for (int i = 0; i < n; ++i) {
                if (kind_ == Kind::point) p.query(sql_, random_id(rng));
                else p.query(sql_);
            }
        });
        if (results.size() != static_cast<std::size_t>(n))
            throw std::runtime_error("a pipeline of " + std::to_string(n) + " returned " + std::to_string(results.size()));
        if (kind_ == Kind::point)
            for (const auto& r : results)
                if (r.rows() != 1) throw std::runtime_error("a point select in a pipeline found no row");
    }

private:
    static int random_id(std::minstd_rand& rng) { return static_cast<int>(rng() % table_rows) + 1; }

    enum class Kind { point, sleep, none, custom };
    Kind kind_;
    std::string sql_;
};

// Async mode: the workers are state machines driven by `threads` event
// loops, each with an epoll set of its own. A worker's cycle: async_acquire;
// the callback (on whichever thread frees the connection) sends the statement;
// the loop watching that socket reads the answer, returns the lease, which may
// start another worker's statement on the same connection at once, and asks
// again. A socket joins one loop's set the first time a statement is sent on
// it and stays there, level-triggered, so that no system call beyond the send
// and the read is made per statement; a connection handed on in a release
// stays with the loop that released it.
class EventLoops {
public:
    using ErrorSink = std::function<void(WorkerState&, const std::exception&)>;

    EventLoops(reservoir::PgPool& pool, const Workload& work, std::vector<WorkerState>& state,
               const std::atomic<int>& phase, ErrorSink on_error, int threads)
        : pool_(pool), work_(work), state_(state), phase_(phase), on_error_(std::move(on_error)),
          workers_(state.size()), active_(static_cast<int>(state.size())), loops_(static_cast<std::size_t>(threads)) {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            workers_[i].index = i;
            workers_[i].rng.seed(static_cast<unsigned>(i) + 1);
        }
        for (auto& l : loops_) {
            l.epoll = ::epoll_create1(EPOLL_CLOEXEC);
            if (l.epoll < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
        }
        for (auto& l : loops_) l.thread = std::thread([this, &l] { run(l); });
        for (auto& w : workers_) begin(w);
    }
    EventLoops(const EventLoops&) = delete;
    EventLoops& operator=(const EventLoops&) = delete;
    // Returns once every worker has finished its last statement (the phase is over).
    ~EventLoops() {
        for (auto& l : loops_) l.thread.join();
        for (auto& l : loops_) ::close(l.epoll);
    }

private:
    struct Worker {
        std::size_t index = 0;
        std::minstd_rand rng;
        Clock::time_point start;
        reservoir::PgPool::Lease lease;
    };
    struct Loop {
        int epoll = -1;
        std::thread thread;
    };
    // Per socket: the worker whose statement is on it (published before the
    // send, so the loop that sees the answer finds it), and the set that
    // watches it, for which connection (a closed socket leaves its set, and
    // its number may come back for another connection).
    struct Socket {
        std::atomic<Worker*> worker{nullptr};
        int epoll = -1;  // these under registry_
        PGconn* conn = nullptr;
        int backend_pid = 0;
        bool writable = false;  // watched for writable too
    };
    static constexpr int max_fd = 65536;

    // Starts the worker's next statement, or retires it once the run is over.
    void begin(Worker& w) {
        if (phase_.load(std::memory_order_relaxed) == finished) {
            active_.fetch_sub(1);
            return;
        }
        w.start = Clock::now();
        pool_.async_acquire(acquire_timeout, [this, &w](reservoir::PgPool::Lease lease, std::exception_ptr error) {
            if (error) return fail(w, error);
            w.lease = std::move(lease);
            const Watch how = watch_of(*w.lease);
            if (how.fd < 0 || how.fd >= max_fd) {
                w.lease.discard();
                return fail(w, std::make_exception_ptr(std::runtime_error("socket number out of range")));
            }
            try {
                work_.send(*w.lease, w.rng);
            } catch (...) {
                w.lease.release();
                return fail(w, std::current_exception());
            }
            // Published once the send is over: from here the loop watching the
            // socket may read the answer, finish the worker and start it again,
            // so neither the worker nor its connection is touched after this.
            const bool writable = w.lease->wants_write();
            sockets_[how.fd].worker.store(&w, std::memory_order_release);
            watch(how, writable);
        });
    }

    // What watching a connection's socket takes, read while the connection is ours.
    struct Watch {
        int fd;
        PGconn* conn;
        int backend_pid;
    };
    static Watch watch_of(const pg::Connection& c) { return {c.socket(), c.native_handle(), c.backend_pid()}; }

    // Makes sure a loop watches the socket (writable too while the statement is partly unsent).
    void watch(const Watch& how, bool writable) {
        const int fd = how.fd;
        Socket& sock = sockets_[fd];
        std::lock_guard lock(registry_);
        const bool known = sock.conn == how.conn && sock.backend_pid == how.backend_pid;
        if (known && sock.writable == writable) return;
        epoll_event ev{};
        ev.events = EPOLLIN | (writable ? EPOLLOUT : 0u);
        ev.data.fd = fd;
        if (known) {
            check(::epoll_ctl(sock.epoll, EPOLL_CTL_MOD, fd, &ev), "epoll_ctl MOD");
        } else {
            sock.epoll = (current_loop_ ? *current_loop_ : loops_[static_cast<std::size_t>(fd) % loops_.size()]).epoll;
            check(::epoll_ctl(sock.epoll, EPOLL_CTL_ADD, fd, &ev), "epoll_ctl ADD");
            sock.conn = how.conn;
            sock.backend_pid = how.backend_pid;
        }
        sock.writable = writable;
    }

    // A socket readable with no statement on it would wake its loop forever:
    // the server closed an idle connection, or another thread's statement was
    // answered before the thread published it. It leaves the set until its
    // next statement is published (rechecked under the lock, against one just published).
    void unwatch(int fd) {
        Socket& sock = sockets_[fd];
        std::lock_guard lock(registry_);
        if (sock.worker.load(std::memory_order_acquire) || sock.epoll < 0) return;
        ::epoll_ctl(sock.epoll, EPOLL_CTL_DEL, fd, nullptr);  // fails harmlessly if it closed meanwhile
        sock.conn = nullptr;
        sock.epoll = -1;
    }

    static void check(int rc, const char* what) {
        if (rc != 0) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));  // a bug, not load
    }

    // Failed workers retry after a pause, so that a failing server does not become a busy loop.
    void fail(Worker& w, std::exception_ptr error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            on_error_(state_[w.index], e);
        }
        std::lock_guard lock(retry_mutex_);
        retry_.push_back({Clock::now() + 10ms, &w});
    }

    void run(Loop& loop) {
        current_loop_ = &loop;
        std::array<epoll_event, 64> events;
        while (active_.load() > 0) {
            const int n = ::epoll_wait(loop.epoll, events.data(), static_cast<int>(events.size()), 10);
            for (int i = 0; i < n; ++i) answer(events[static_cast<std::size_t>(i)].data.fd);
            retry_due();
        }
    }

    void answer(int fd) {
        Worker* const w = sockets_[fd].worker.load(std::memory_order_acquire);
        if (!w) return unwatch(fd);
        if (!w->lease->consume()) return watch(watch_of(*w->lease), w->lease->wants_write());  // more to come
        WorkerState& me = state_[w->index];
        try {
            work_.check(w->lease->result());
            if (phase_.load(std::memory_order_relaxed) == measuring) me.latency.record(Clock::now() - w->start);
            me.done.store(me.done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        } catch (const std::exception& e) {
            on_error_(me, e);
        }
        sockets_[fd].worker.store(nullptr, std::memory_order_relaxed);
        w->lease.release();  // may start a queued worker's statement on this socket, on this thread
        begin(*w);
    }

    void retry_due() {
        std::vector<Worker*> due;
        {
            std::lock_guard lock(retry_mutex_);
            const auto now = Clock::now();
            std::erase_if(retry_, [&](const auto& r) {
                if (r.first > now) return false;
                due.push_back(r.second);
                return true;
            });
        }
        for (Worker* w : due) begin(*w);
    }

    reservoir::PgPool& pool_;
    const Workload& work_;
    std::vector<WorkerState>& state_;
    const std::atomic<int>& phase_;
    ErrorSink on_error_;
    std::vector<Worker> workers_;
    std::atomic<int> active_;  // workers not yet retired
    std::vector<Socket> sockets_ = std::vector<Socket>(max_fd);
    std::mutex registry_;
    std::mutex retry_mutex_;
    std::vector<std::pair<Clock::time_point, Worker*>> retry_;
    std::vector<Loop> loops_;
    static inline thread_local Loop* current_loop_ = nullptr;
};

std::string json_escape(std::string_view s) {
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out;
}

struct Summary {
    std::string mode, reset, query, sql;
    int workers = 0;
    std::size_t pool = 0;
    std::uint64_t batch = 1;  // statements per latency recorded (pipeline mode)
    double seconds = 0, warmup = 0;
    std::uint64_t queries = 0, errors = 0;
    double qps = 0, p50 = 0, p95 = 0, p99 = 0, max = 0, mean = 0;
    std::uint64_t cycles = 0;  // --cycles, 0 = a timed run
    double ns_per_cycle = 0;   // --query none only
    std::int64_t peak = 0;
    double cpu_us_per_query = 0, switches_per_query = 0;
    long peak_rss_kb = 0;
    std::optional<reservoir::PoolStats> pool_stats;        // warm-up included
    std::optional<reservoir::HistogramSnapshot> query_time;  // the statements alone, warm-up included

    std::string line() const {
        char buf[1024];
        std::snprintf(buf, sizeof buf,
                      "mode=%s reset=%s query=%s workers=%d pool=%zu batch=%llu seconds=%.3f queries=%llu qps=%.1f p50_ms=%.3f "
                      "p95_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%llu peak_server_connections=%lld "
                      "client_cpu_us_per_query=%.2f peak_rss_kb=%ld context_switches_per_query=%.3f%s",
                      mode.c_str(), reset.c_str(), query.c_str(), workers, pool, static_cast<unsigned long long>(batch), seconds,
                      static_cast<unsigned long long>(queries),
                      qps, p50, p95, p99, max, static_cast<unsigned long long>(errors), static_cast<long long>(peak),
                      cpu_us_per_query, peak_rss_kb, switches_per_query, extra().c_str());
        return buf;
    }

    // The fields of a cycles run and of --query none, for line().
    std::string extra() const {
        char buf[96] = "";
        int n = 0;
        if (cycles) n = std::snprintf(buf, sizeof buf, " cycles=%llu", static_cast<unsigned long long>(cycles));
        if (query == "none") std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), " ns_per_cycle=%.1f", ns_per_cycle);
        return buf;
    }

    std::string json(const Latencies::Snapshot& dist) const {
        std::string out = "{\n";
        char buf[512];
        const auto field = [&](const char* key, const std::string& value, bool last = false) {
            out += "  \"" + std::string(key) + "\": " + value + (last ? "\n" : ",\n");
        };
        const auto num = [&](double v, const char* fmt = "%.3f") {
            std::snprintf(buf, sizeof buf, fmt, v);
            return std::string(buf);
        };
        field("mode", "\"" + mode + "\"");
        field("reset", "\"" + reset + "\"");
        field("query", "\"" + query + "\"");
        field("sql", "\"" + json_escape(sql) + "\"");
        field("workers", std::to_string(workers));
        field("pool", std::to_string(pool));
        field("batch", std::to_string(batch));
        field("seconds", num(seconds));
        field("warmup", num(warmup));
        field("queries", std::to_string(queries));
        if (cycles) field("cycles", std::to_string(cycles));
        if (query == "none") field("ns_per_cycle", num(ns_per_cycle, "%.1f"));
        field("qps", num(qps, "%.1f"));
        field("mean_ms", num(mean));
        field("p50_ms", num(p50));
        field("p95_ms", num(p95));
        field("p99_ms", num(p99));
        field("max_ms", num(max));
        field("errors", std::to_string(errors));
        field("peak_server_connections", std::to_string(peak));
        field("client_cpu_us_per_query", num(cpu_us_per_query, "%.2f"));
        field("peak_rss_kb", std::to_string(peak_rss_kb));
        field("context_switches_per_query", num(switches_per_query));
        if (pool_stats) {
            const auto& st = *pool_stats;
            field("pool_acquires", std::to_string(st.acquires));
            field("pool_acquire_timeouts", std::to_string(st.acquire_timeouts));
            field("pool_connects", std::to_string(st.connects));
            field("pool_acquire_wait_p99_ms", num(static_cast<double>(st.acquire_wait.quantile(0.99).count()) / 1e6));
            field("pool_acquire_wait_max_ms", num(static_cast<double>(st.acquire_wait.max().count()) / 1e6));
        }
        if (query_time) {
            field("statement_p99_ms", num(static_cast<double>(query_time->quantile(0.99).count()) / 1e6));
            field("statement_max_ms", num(static_cast<double>(query_time->max().count()) / 1e6));
        }
        // The latency distribution: [upper bound of a bucket in ms, fraction of queries at or below it].
        std::string cdf = "[";
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < Latencies::count && dist.n > 0; ++i) {
            if (dist.buckets[i] == 0) continue;
            seen += dist.buckets[i];
            std::snprintf(buf, sizeof buf, "%s[%.4f, %.6f]", cdf.size() > 1 ? ", " : "",
                          static_cast<double>(std::min(Latencies::Buckets::upper(i), dist.max_ns)) / 1e6,
                          static_cast<double>(seen) / static_cast<double>(dist.n));
            cdf += buf;
        }
        field("latency_cdf", cdf + "]", true);
        return out + "}\n";
    }
};

int run(const Settings& settings) {
    pg::Config config = settings.url.empty() ? pg::Config::from_env() : pg::Config::from_url(settings.url);
    const std::string app = "reservoir-load-" + std::to_string(::getpid());
    config.application_name = app;
    config.pool.max_size = settings.pool;
    config.pool.min_size = settings.pool;  // opened up front, before the warm-up
    config.pool.acquire_timeout = acquire_timeout;
    config.pool.connect_timeout = connect_timeout;
    if (settings.handoff_after) config.pool.handoff_after = *settings.handoff_after;
    if (settings.handoff_patience) config.pool.handoff_patience = *settings.handoff_patience;
    config.validate();

    const Workload work(settings.query);
    const Watchdog watchdog(std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(settings.seconds + settings.warmup)) +
                            watchdog_margin);

    // Seeding on a connection of its own, closed before the run.
    pg::Config setup_config = config;
    setup_config.application_name = app + "-setup";
    {
        auto c = pg::Driver(setup_config).connect(Clock::now() + connect_timeout);
        if (work.point()) seed(c);
    }
    pg::Config watch_config = settings.admin_url.empty() ? config : pg::Config::from_url(settings.admin_url);
    ServerWatch watch(watch_config, app, settings.cycles == 0);

    std::unique_ptr<reservoir::PgPool> pool;
    std::unique_ptr<NaivePgPool> naive;
    std::unique_ptr<pg::Connection> shared;
    std::mutex shared_mutex;
    if (uses_pool(settings.mode)) {
        pool = std::make_unique<reservoir::PgPool>(pg::Driver(config), config.pool,
                                                   reservoir::sizing::Dynamic(config.pool),
                                                   reservoir::health::Default(config.pool),
                                                   pg::context::Reset(settings.reset));
        const auto deadline = Clock::now() + connect_timeout;
        while (pool->stats().idle < settings.pool && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    } else if (settings.mode == Mode::naive) {
        naive = std::make_unique<NaivePgPool>(pg::Driver(config), settings.pool, connect_timeout);
    } else if (settings.mode == Mode::shared) {
        shared = std::make_unique<pg::Connection>(pg::Driver(config).connect(Clock::now() + connect_timeout));
    }

    if (settings.cycles > 0) watch.sample();  // the pool is open: every connection counts

    std::atomic<int> phase{warming};
    std::vector<WorkerState> state(static_cast<std::size_t>(settings.workers));
    const auto note_error = [&](WorkerState& me, const std::exception& e) {
        static std::atomic<int> shown{0};
        me.errors.store(me.errors.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (shown.fetch_add(1) < 5) std::fprintf(stderr, "\nreservoir-load: error: %s\n", e.what());
    };

    // Statements per loop iteration (and per latency recorded).
    const std::uint64_t per_iteration = settings.mode == Mode::pipeline ? static_cast<std::uint64_t>(settings.batch) : 1;
    // With --cycles: each worker's share of the iterations, and the time bound.
    const auto share = [&](int w) {
        if (settings.cycles == 0) return ~std::uint64_t{0};
        const auto n = static_cast<std::uint64_t>(settings.workers);
        return settings.cycles / n + (static_cast<std::uint64_t>(w) < settings.cycles % n ? 1 : 0);
    };
    const auto to_duration = [](double s) {
        return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
    };
    const auto cycles_deadline = Clock::now() + to_duration(settings.seconds);
    // Every worker thread starts its loop at once: a short --cycles run would
    // otherwise be over for the first threads before the last one started.
    std::latch start_line(settings.mode == Mode::async ? 0 : settings.workers);
    const auto worker = [&](int w) {
        WorkerState& me = state[static_cast<std::size_t>(w)];
        std::minstd_rand rng(static_cast<unsigned>(w) + 1);
        std::optional<pg::Driver> driver;
        if (settings.mode == Mode::connect) driver.emplace(config);
        const std::uint64_t iterations = share(w);
        // A W1 cycle (--query none) costs less than the two clock reads that
        // would time it, so it is counted, not timed, and the clock is read
        // only every 1024 cycles for the --cycles deadline.
        const bool timed = !work.none();
        const auto stamp = [timed] { return timed ? Clock::now() : Clock::time_point{}; };
        start_line.arrive_and_wait();
        for (std::uint64_t i = 0; i < iterations; ++i) {
            const int now_phase = phase.load(std::memory_order_relaxed);
            if (now_phase == finished) return;
            const auto start = timed || i % 1024 == 0 ? Clock::now() : Clock::time_point{};
            if (settings.cycles > 0 && start != Clock::time_point{} && start >= cycles_deadline) return;
            try {
                switch (settings.mode) {
                    case Mode::pool: {
                        auto lease = pool->acquire();
                        work.run(*lease, rng);
                        break;
                    }
                    case Mode::naive: {  // the same loop as pool's, on the naive pool
                        auto lease = naive->acquire();
                        work.run(*lease, rng);
                        break;
                    }
                    case Mode::async: return;  // EventLoops drives these workers
                    case Mode::connect: {
                        auto c = driver->connect(start + connect_timeout);
                        work.run(c, rng);
                        break;
                    }
                    case Mode::shared: {
                        std::lock_guard lock(shared_mutex);
                        work.run(*shared, rng);
                        break;
                    }
                    case Mode::pipeline: {
                        auto lease = pool->acquire();
                        work.run_batch(*lease, rng, settings.batch);
                        break;
                    }
                }
                // Stamped after the lease is returned: a release that waits (the naive
                // pool's mutex under contention) is part of the cycle a worker sees.
                const Clock::time_point end = stamp();
                // Untimed (W1), a cycle is recorded as 0 ns: the histogram still counts it.
                if (phase.load(std::memory_order_relaxed) == measuring) me.latency.record(end - start);
                me.done.store(me.done.load(std::memory_order_relaxed) + per_iteration, std::memory_order_relaxed);
            } catch (const std::exception& e) {
                note_error(me, e);
                // A failing server must not turn the loop into a busy spin.
                std::this_thread::sleep_for(10ms);
            }
        }
    };

    Usage usage_start{}, usage_end{};
    Clock::time_point measured_from{}, measured_to{};
    if (settings.cycles > 0) {  // measured from the first iteration to the last
        usage_start = Usage::now();
        measured_from = Clock::now();
        phase.store(measuring);
    }
    std::vector<std::thread> threads;
    std::optional<EventLoops> loops;
    if (settings.mode == Mode::async) {
        loops.emplace(*pool, work, state, phase, note_error, settings.threads);
    } else {
        threads.reserve(state.size());
        for (int w = 0; w < settings.workers; ++w) threads.emplace_back(worker, w);
    }

    const bool tty = isatty(STDERR_FILENO) != 0;
    if (!settings.quiet && settings.cycles == 0)
        std::fprintf(stderr, "%d workers, mode %s, query %s, %s%.0f s (+%.0f s warm-up) against %s\n",
                     settings.workers, mode_name(settings.mode), work.name(),
                     holds_pool(settings.mode) ? ("pool of " + std::to_string(settings.pool) + ", ").c_str() : "",
                     settings.seconds, settings.warmup, config.redacted_url().c_str());

    const auto total = [&](auto member) {
        std::uint64_t n = 0;
        for (const auto& s : state) n += (s.*member).load(std::memory_order_relaxed);
        return n;
    };
    const auto merged = [&] {
        Latencies::Snapshot snap;
        for (const auto& s : state) snap.add(s.latency);
        return snap;
    };

    const auto begin = Clock::now();
    const auto window_start = begin + to_duration(settings.warmup);
    const auto window_end = window_start + to_duration(settings.seconds);
    Latencies::Snapshot last_snap;
    std::uint64_t last_done = 0;
    auto last_tick = begin;
    auto next_tick = begin + 1s;

    const auto progress = [&](Clock::time_point now) {
        const std::uint64_t done = total(&WorkerState::done);
        const double rate =
            static_cast<double>(done - last_done) / std::max(1e-9, std::chrono::duration<double>(now - last_tick).count());
        std::string p99 = "p99 (warm-up)";
        if (phase.load() == measuring) {
            Latencies::Snapshot snap = merged();
            const Latencies::Snapshot second = snap.since(last_snap);
            if (second.n > 0 && measured_from <= last_tick) {  // a whole second inside the window
                char buf[64];
                std::snprintf(buf, sizeof buf, "p99 %7.2f ms", second.quantile_ms(0.99));
                p99 = buf;
            }
            last_snap = std::move(snap);
        }
        std::string pool_part;
        if (pool) {
            const auto st = pool->stats();
            char buf[128];
            std::snprintf(buf, sizeof buf, "  in use %3zu  idle %3zu  waiting %4zu", st.in_use, st.idle, st.waiting);
            pool_part = buf;
        }
        std::fprintf(stderr, "%s[%5.1f s] %8.0f q/s  %s%s  server conns %3lld (peak %3lld)  errors %llu%s",
                     tty ? "\r" : "", std::chrono::duration<double>(now - begin).count(), rate, p99.c_str(),
                     pool_part.c_str(), static_cast<long long>(watch.last()), static_cast<long long>(watch.peak()),
                     static_cast<unsigned long long>(total(&WorkerState::errors)), tty ? "" : "\n");
        last_done = done;
        last_tick = now;
    };

    // The measured window opens and closes on the main thread, which reads
    // the process's resource usage at both ends; with --cycles it closes when
    // the last worker is done, and the main thread only waits for that.
    if (settings.cycles > 0) {
        for (auto& t : threads) t.join();
        measured_to = Clock::now();
        usage_end = Usage::now();
        phase.store(finished);
    }
    while (settings.cycles == 0) {
        const int ph = phase.load();
        const auto wake = std::min(next_tick, ph == warming ? window_start : window_end);
        std::this_thread::sleep_until(wake);
        const auto now = Clock::now();
        if (ph == warming && now >= window_start) {
            usage_start = Usage::now();
            measured_from = Clock::now();
            phase.store(measuring);
        } else if (ph == measuring && now >= window_end) {
            phase.store(finished);
            measured_to = Clock::now();
            usage_end = Usage::now();
            break;
        }
        if (now >= next_tick) {
            if (!settings.quiet) progress(now);
            next_tick += 1s;
        }
    }
    const Latencies::Snapshot dist = merged();  // recording stopped with the phase
    for (auto& t : threads)
        if (t.joinable()) t.join();
    if (settings.cycles > 0) watch.sample();  // before the pool closes
    loops.reset();
    if (!settings.quiet && tty) std::fprintf(stderr, "\n");

    Summary s;
    s.mode = mode_name(settings.mode);
    s.reset = settings.mode == Mode::naive ? "none" : reset_name(settings.reset);  // the naive pool never resets
    s.query = work.name();
    s.sql = work.sql();
    s.workers = settings.workers;
    // The most connections the client may hold: the pool's max, one, or no bound (0).
    s.pool = holds_pool(settings.mode) ? settings.pool : settings.mode == Mode::shared ? 1 : 0;
    s.batch = per_iteration;
    s.seconds = std::chrono::duration<double>(measured_to - measured_from).count();
    s.warmup = settings.cycles > 0 ? 0 : settings.warmup;
    s.cycles = settings.cycles;
    s.queries = dist.n * per_iteration;
    s.errors = total(&WorkerState::errors);
    s.qps = static_cast<double>(s.queries) / s.seconds;
    if (work.none()) s.ns_per_cycle = s.queries ? s.seconds * 1e9 / static_cast<double>(s.queries) : 0;
    s.p50 = dist.quantile_ms(0.50);
    s.p95 = dist.quantile_ms(0.95);
    s.p99 = dist.quantile_ms(0.99);
    s.max = dist.max_ms();
    s.mean = dist.mean_ms();
    const double per = s.queries ? 1.0 / static_cast<double>(s.queries) : 0;
    s.cpu_us_per_query = (usage_end.cpu_us - usage_start.cpu_us) * per;
    s.switches_per_query = static_cast<double>(usage_end.switches - usage_start.switches) * per;

    bool drained = true;
    if (pool) {
        s.pool_stats = pool->stats();
        s.query_time = pool->driver().query_time();
        drained = pool->shutdown(10s);
        pool.reset();
    }
    naive.reset();
    shared.reset();
    s.peak = watch.peak();  // over the warm-up and the window
    s.peak_rss_kb = Usage::now().max_rss_kb;

    if (!settings.quiet) {
        std::fprintf(stderr, "\nqueries      %llu in %.1f s = %.0f q/s\n", static_cast<unsigned long long>(s.queries),
                     s.seconds, s.qps);
        std::fprintf(stderr, "latency      p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms\n", s.p50, s.p95, s.p99,
                     s.max);
        std::fprintf(stderr, "errors       %llu\n", static_cast<unsigned long long>(s.errors));
        if (work.none())
            std::fprintf(stderr, "cycles       %.1f ns each, wall time over all workers' cycles\n", s.ns_per_cycle);
        if (holds_pool(settings.mode))
            std::fprintf(stderr, "server       peak %lld connections from this process in pg_stat_activity (max %zu)\n",
                         static_cast<long long>(s.peak), settings.pool);
        else
            std::fprintf(stderr, "server       peak %lld connections from this process in pg_stat_activity\n",
                         static_cast<long long>(s.peak));
        std::fprintf(stderr, "client       %.1f us CPU and %.2f context switches per query, peak RSS %ld kB\n",
                     s.cpu_us_per_query, s.switches_per_query, s.peak_rss_kb);
        if (s.pool_stats)
            std::fprintf(stderr, "pool         acquires %llu, timeouts %llu, connects %llu; shutdown %s\n",
                         static_cast<unsigned long long>(s.pool_stats->acquires),
                         static_cast<unsigned long long>(s.pool_stats->acquire_timeouts),
                         static_cast<unsigned long long>(s.pool_stats->connects), drained ? "clean" : "timed out");
    }
    std::printf("%s\n", s.line().c_str());
    std::fflush(stdout);
    if (!settings.json.empty()) {
        std::FILE* f = std::fopen(settings.json.c_str(), "w");
        const std::string text = s.json(dist);
        if (!f || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0) {
            std::fprintf(stderr, "reservoir-load: cannot write %s\n", settings.json.c_str());
            return 1;
        }
    }

    bool ok = true;
    const auto fail = [&](const char* why) {
        std::fprintf(stderr, "reservoir-load: FAILED: %s\n", why);
        ok = false;
    };
    if (s.errors > 0) fail("some queries failed");
    if (s.queries == 0) fail("no query completed in the measured window");
    if (s.peak < 0) fail("the server watch failed, so the connection bound was not observed");
    if (holds_pool(settings.mode) && s.peak > static_cast<std::int64_t>(settings.pool))
        fail("the server saw more connections than the pool's max");
    // The naive pool opens all of them before the run and never closes one.
    if (settings.mode == Mode::naive && s.peak >= 0 && s.peak < static_cast<std::int64_t>(settings.pool))
        fail("the server saw fewer connections than the naive pool's size");
    if (!drained) fail("the pool did not shut down cleanly");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) try {
    return run(parse(argc, argv));
} catch (const std::exception& e) {
    std::fprintf(stderr, "reservoir-load: %s\n", e.what());
    return 1;
}
