#pragma once
// Shared by the fleet tests: their servers, each a pg-sandbox directory that
// ctest starts for them (RESERVOIR_FLEET_SANDBOXES=BASE holds BASE/NAME/env),
// direct connections to them, a sampler of the server's sessions, shell
// commands, and the one-line report each test prints. A test whose server is
// missing fails with a message saying how to start it: none passes without it.
//
// Only a test's main thread makes Catch2 assertions; other threads record.

#include <catch2/catch.hpp>


#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <reservoir/reservoir.hpp>

#include "../common/session_sampler.hpp"
#include "../common/shell.hpp"

namespace fleet {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace pg = reservoir::pg;

inline double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// One sandbox server, as `pg-sandbox start` described it in DIR/env.
struct Server {
    std::string dir;
    std::string port;
    std::string url;          // the app role (reservoir), owner of database reservoir
    std::string admin_url;    // the superuser
    std::string password;     // the app role's
    std::string bouncer_url;  // "" unless `pg-sandbox pgbouncer` ran
};

inline std::string sandbox_base() {
    const char* base = std::getenv("RESERVOIR_FLEET_SANDBOXES");
    if (!base || !*base)
        FAIL("RESERVOIR_FLEET_SANDBOXES is not set: the fleet tests need their own PostgreSQL servers. Run them "
             "through ctest (ctest -L fleet), which starts them with scripts/pg-sandbox");
    return base;
}

// The sandbox NAME under RESERVOIR_FLEET_SANDBOXES; fails when it is not running.
inline Server server(const std::string& name) {
    Server s;
    s.dir = sandbox_base() + "/" + name;
    std::ifstream in(s.dir + "/env");
    if (!in) FAIL(s.dir << "/env not found: did `pg-sandbox start " << s.dir << "` run (ctest fixture)?");
    std::map<std::string, std::string> env;
    for (std::string line; std::getline(in, line);)
        if (const auto eq = line.find('='); eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
    s.port = env["PGSANDBOX_PORT"];
    s.url = env["PGSANDBOX_URL"];
    s.admin_url = env["PGSANDBOX_ADMIN_URL"];
    s.password = env["PGSANDBOX_PASSWORD"];
    s.bouncer_url = env["PGSANDBOX_BOUNCER_URL"];
    if (s.port.empty() || s.url.empty() || s.admin_url.empty()) FAIL(s.dir << "/env lacks the server's port or URLs");
    return s;
}

inline pg::Connection connect(const std::string& url, Clock::duration timeout = 10s) {
    return pg::Driver(pg::Config::from_url(url)).connect(Clock::now() + timeout);
}

// ALTER SYSTEM SET / RESET a setting and reload: it reaches new sessions at
// once and each existing one before its next statement.
inline void set_system(pg::Connection& admin, const std::string& setting, const std::string& value) {
    admin.execute(value.empty() ? "ALTER SYSTEM RESET " + setting : "ALTER SYSTEM SET " + setting + " = " + value);
    admin.execute("SELECT pg_reload_conf()");
}

// Makes a server read-only for new transactions (as a standby, or a demoted
// primary, looks to target_session_attrs), or writable again; waits until a
// new session sees it.
inline void set_read_only(const Server& s, bool read_only) {
    auto admin = connect(s.admin_url);
    set_system(admin, "default_transaction_read_only", read_only ? "on" : "");
    const std::string want = read_only ? "on" : "off";
    const auto deadline = Clock::now() + 10s;
    for (;;) {
        auto fresh = connect(s.admin_url);
        if (fresh.query("SELECT current_setting('default_transaction_read_only')").scalar<std::string>() == want)
            return;
        if (Clock::now() > deadline) FAIL("server " << s.port << " did not become read_only=" << want << " in 10 s");
        std::this_thread::sleep_for(10ms);
    }
}

// How many client backends the server has for database `db` and role `role`
// (the connections it sees from us, directly or through PgBouncer), sampled
// every `every`.
class SessionSampler : public testsupport::SessionSampler {
public:
    SessionSampler(const std::string& admin_url, const std::string& role, const std::string& db,
                   Clock::duration every = 5ms)
        : testsupport::SessionSampler(
              admin_url,
              [role, db](pg::Connection& c) {
                  return c
                      .query_for(5s,
                                 "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = $2 AND "
                                 "backend_type = 'client backend'",
                                 role, db)
                      .scalar<std::int64_t>();
              },
              every) {}
};

using testsupport::CommandResult;
using testsupport::run_command;
using testsupport::shell_quote;

// `scripts/pg-sandbox COMMAND DIR OPTIONS`.
inline CommandResult sandbox(const std::string& command, const Server& s, const std::string& options = "") {
    return run_command(shell_quote(RESERVOIR_PG_SANDBOX_SCRIPT) + " " + command + " " + shell_quote(s.dir) + " " +
                       options);
}

// The q-quantile (0..1) of a sample, nearest rank; 0 for an empty one.
template <class T>
T quantile(std::vector<T> v, double q) {
    if (v.empty()) return T{};
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(rank, v.size() - 1)];
}

// Prints a test's line of figures (ctest shows it with -V or
// --output-on-failure) and appends it to $RESERVOIR_FLEET_REPORT when set.
inline void report(const std::string& line) {
    std::cout << line << std::endl;
    if (const char* path = std::getenv("RESERVOIR_FLEET_REPORT"); path && *path) {
        std::ofstream out(path, std::ios::app);
        out << line << '\n';
    }
}

inline std::string fixed(double v, int decimals = 1) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
    return buffer;
}

}  // namespace fleet
