// A fleet behind PgBouncer: 10 service processes, each one reservoir pool of
// max 10 with 50 worker threads (500 concurrent workers, 100 client
// connections to PgBouncer), PgBouncer in transaction mode with
// default_pool_size = 20 in front of one PostgreSQL. Every point select must
// succeed with the right answer, and the server, sampled throughout, must
// never see more than 20 of our sessions.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "fleet_support.hpp"

extern char** environ;

namespace {

using namespace fleet;

constexpr int processes = 10;
constexpr int threads_per_process = 50;
constexpr int pool_max = 10;
constexpr int bouncer_pool = 20;  // as the fixture starts PgBouncer: --default-pool-size 20
constexpr double load_seconds = 4.0;
constexpr std::int64_t rows = 1000;
constexpr std::uint64_t seed = 20240601;

struct Child {
    pid_t pid = -1;
    int status = -1;
    std::string out_path, latency_path;
};

// The worker process with its environment: ours plus the pool's settings.
pid_t spawn_worker(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                   const std::string& stdout_path) {
    std::vector<std::string> env_strings(extra_env);
    for (char** e = environ; *e; ++e) {
        const std::string entry = *e;
        const auto key = entry.substr(0, entry.find('=') + 1);
        const bool overridden =
            std::any_of(extra_env.begin(), extra_env.end(), [&](const std::string& x) { return x.rfind(key, 0) == 0; });
        // Not DB_* or DATABASE_URL from the caller: only what this test sets.
        if (!overridden && key.rfind("DB_", 0) != 0 && key != "DATABASE_URL=") env_strings.push_back(entry);
    }
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0 ? pid : -1;
}

// Waits for every child until `deadline`; kills (by pid) those still running then.
void reap(std::vector<Child>& children, Clock::time_point deadline) {
    for (;;) {
        bool running = false;
        for (Child& c : children) {
            if (c.pid <= 0 || c.status != -1) continue;
            int status = 0;
            const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
            if (r == c.pid)
                c.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
            else
                running = true;
        }
        if (!running) return;
        if (Clock::now() > deadline) {
            for (Child& c : children)
                if (c.pid > 0 && c.status == -1) ::kill(c.pid, SIGKILL);
            for (Child& c : children)
                if (c.pid > 0 && c.status == -1) {
                    ::waitpid(c.pid, nullptr, 0);
                    c.status = 128 + SIGKILL;
                }
            return;
        }
        std::this_thread::sleep_for(20ms);
    }
}

std::uint64_t field(const std::string& line, const std::string& name) {
    const auto at = line.find(name + "=");
    return at == std::string::npos ? 0 : std::stoull(line.substr(at + name.size() + 1));
}

}  // namespace

TEST_CASE("fleet: 10 processes x 50 threads through PgBouncer never exceed its 20 server connections",
          "[fleet][pgbouncer]") {
    const Server s = server("bouncer");
    if (s.bouncer_url.empty())
        FAIL(s.dir << " has no PgBouncer: run `pg-sandbox pgbouncer " << s.dir
                   << " --pool-mode transaction --default-pool-size 20` (the ctest fixture does)");

    {  // the table, straight on the server
        auto c = connect(s.url);
        c.execute("CREATE TABLE IF NOT EXISTS fleet_items (id int8 PRIMARY KEY, name text NOT NULL)");
        c.execute("TRUNCATE fleet_items");
        c.query("INSERT INTO fleet_items SELECT g, 'item ' || g FROM generate_series(1, $1::int8) g", rows);
    }

    const std::string work_dir = s.dir + "/fleet-run";
    REQUIRE(run_command("mkdir -p " + shell_quote(work_dir)).status == 0);

    // Our sessions on the real server: what PgBouncer opened for role
    // reservoir on database reservoir (the sampler itself is the superuser).
    SessionSampler sampler(s.admin_url, "reservoir", "reservoir");

    // Every process starts its load at the same moment, once all exist.
    const auto begin = Clock::now();
    const auto start = begin + 2500ms;  // time to spawn and warm up (100 SCRAM logins through PgBouncer)
    std::vector<Child> children(processes);
    for (int p = 0; p < processes; ++p) {
        Child& c = children[static_cast<std::size_t>(p)];
        c.out_path = work_dir + "/worker-" + std::to_string(p) + ".out";
        c.latency_path = work_dir + "/worker-" + std::to_string(p) + ".lat";
        c.pid = spawn_worker(
            {RESERVOIR_FLEET_WORKER, std::to_string(threads_per_process), std::to_string(load_seconds),
             std::to_string(seed + static_cast<std::uint64_t>(p)), std::to_string(rows),
             std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count()),
             c.latency_path},
            {"DATABASE_URL=" + s.bouncer_url, "DB_POOLER=pgbouncer", "DB_POOL_MIN=" + std::to_string(pool_max),
             "DB_POOL_MAX=" + std::to_string(pool_max), "DB_ACQUIRE_TIMEOUT_MS=10000",
             "DB_APPLICATION_NAME=reservoir_fleet_" + std::to_string(p)},
            c.out_path);
    }
    reap(children, begin + 25s);
    const auto wall = Clock::now() - begin;
    sampler.stop();

    std::uint64_t ops = 0, errors = 0, wrong = 0, connects = 0, warm = 0;
    std::vector<std::uint32_t> latencies;
    std::string outputs;
    for (int p = 0; p < processes; ++p) {
        const Child& c = children[static_cast<std::size_t>(p)];
        std::ifstream out(c.out_path);
        std::stringstream text;
        text << out.rdbuf();
        const std::string line = text.str();
        outputs += "worker " + std::to_string(p) + " (exit " + std::to_string(c.status) + "): " + line;
        ops += field(line, "ops");
        errors += field(line, "errors");
        wrong += field(line, "wrong");
        connects += field(line, "connects");
        warm += field(line, "warm");
        std::ifstream lat(c.latency_path, std::ios::binary);
        std::vector<char> bytes((std::istreambuf_iterator<char>(lat)), std::istreambuf_iterator<char>());
        const std::size_t n = bytes.size() / sizeof(std::uint32_t);
        const std::size_t before = latencies.size();
        latencies.resize(before + n);
        if (n > 0) std::memcpy(latencies.data() + before, bytes.data(), n * sizeof(std::uint32_t));
    }
    INFO(outputs);

    const double throughput = static_cast<double>(ops) / load_seconds;
    const double p50 = quantile(latencies, 0.50) / 1000.0, p99 = quantile(latencies, 0.99) / 1000.0;
    const double max = latencies.empty() ? 0 : *std::max_element(latencies.begin(), latencies.end()) / 1000.0;
    report("fleet: " + std::to_string(processes) + " processes x pool " + std::to_string(pool_max) + " x " +
           std::to_string(threads_per_process) + " threads via PgBouncer (transaction, pool " +
           std::to_string(bouncer_pool) + ") for " + fixed(load_seconds) + " s: ops=" + std::to_string(ops) +
           " throughput=" + fixed(throughput, 0) + "/s p50=" + fixed(p50, 2) + "ms p99=" + fixed(p99, 2) +
           "ms max=" + fixed(max, 1) + "ms errors=" + std::to_string(errors) + " wrong=" + std::to_string(wrong) +
           " client_connections=" + std::to_string(connects) + " (warm at start: " + std::to_string(warm) + ")" +
           " peak_server_connections=" + std::to_string(sampler.peak()) + " (" + std::to_string(sampler.samples()) +
           " samples) wall=" + fixed(ms(wall) / 1000.0, 1) + "s");

    for (const Child& c : children) CHECK(c.status == 0);
    CHECK(errors == 0);
    CHECK(wrong == 0);
    CHECK(latencies.size() == ops);
    CHECK(ops >= 1000);  // the load really ran
    // The budget: never more than PgBouncer's pool, whatever the 100 client
    // connections and 500 workers above it.
    CHECK(sampler.peak() <= bouncer_pool);
    CHECK(sampler.peak() >= 1);       // the sampler saw our sessions at all
    CHECK(sampler.samples() >= 100);  // and looked often enough to count
    CHECK(connects >= processes);     // each process connected to PgBouncer
    CHECK(connects <= processes * pool_max);
}
