#pragma once
// Shared by the [pg] integration tests: the server comes from
// RESERVOIR_TEST_DATABASE_URL (an ordinary role that owns its database) and
// RESERVOIR_TEST_ADMIN_URL (a superuser). A test that needs one and finds it
// unset fails: an integration test must never pass without its server.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <reservoir/pg/pg.hpp>

#include "../common/eventually.hpp"

namespace pgtest {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The URL from the environment variable, or else from the sandbox that ctest
// started (RESERVOIR_TEST_SANDBOX=DIR holds DIR/url and DIR/admin-url).
inline std::string server_url(const char* variable, const char* sandbox_file) {
    if (const char* value = std::getenv(variable); value && *value) return value;
    if (const char* dir = std::getenv("RESERVOIR_TEST_SANDBOX"); dir && *dir) {
        std::ifstream in(std::string(dir) + "/" + sandbox_file);
        std::string url;
        if (std::getline(in, url) && !url.empty()) return url;
        FAIL("RESERVOIR_TEST_SANDBOX=" << dir << " has no " << sandbox_file << ": did `pg-sandbox start` run?");
    }
    FAIL(variable << " is not set: the [pg] tests need a PostgreSQL server. Run them through ctest (which "
                     "starts scripts/pg-sandbox), or start one with `scripts/pg-sandbox start DIR` and export "
                     "RESERVOIR_TEST_DATABASE_URL=$PGSANDBOX_URL RESERVOIR_TEST_ADMIN_URL=$PGSANDBOX_ADMIN_URL");
    return {};
}

inline std::string database_url() { return server_url("RESERVOIR_TEST_DATABASE_URL", "url"); }
inline std::string admin_url() { return server_url("RESERVOIR_TEST_ADMIN_URL", "admin-url"); }

// A name no other test or run uses: for application_name, tables and roles.
inline std::string unique_name(const std::string& prefix) {
    static std::atomic<unsigned> counter{0};
    return prefix + "_" + std::to_string(::getpid()) + "_" +
           std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "_" + std::to_string(++counter);
}

// The app config with a unique application_name, so a test can find its own sessions.
inline reservoir::pg::Config config() {
    auto c = reservoir::pg::Config::from_url(database_url());
    c.application_name = unique_name("reservoir_test");
    return c;
}

inline reservoir::pg::Connection connect(const reservoir::pg::Config& c) {
    return reservoir::pg::Driver(c).connect(Clock::now() + 10s);
}
inline reservoir::pg::Connection connect() { return connect(config()); }
inline reservoir::pg::Connection connect_admin() { return connect(reservoir::pg::Config::from_url(admin_url())); }

using testsupport::eventually;

// Whether backend `pid` is running a statement, as pg_stat_activity shows it.
inline bool backend_active(reservoir::pg::Connection& admin, int pid) {
    return admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid)
               .scalar<std::int64_t>() > 0;
}

// Terminates a backend and waits until it is gone (PostgreSQL 14+).
inline void terminate_backend(int pid) {
    auto admin = connect_admin();
    REQUIRE(admin.query("SELECT pg_terminate_backend($1, 5000)", pid).scalar<bool>());
}

// A table that exists for one test and is dropped after it.
class ScratchTable {
public:
    explicit ScratchTable(const std::string& columns) : name_(unique_name("reservoir_t")) {
        auto c = connect();
        c.execute("CREATE TABLE " + name_ + " (" + columns + ")");
    }
    ~ScratchTable() {
        try {
            auto c = connect();
            c.execute("DROP TABLE IF EXISTS " + name_);
        } catch (...) {
        }
    }
    ScratchTable(const ScratchTable&) = delete;
    ScratchTable& operator=(const ScratchTable&) = delete;
    const std::string& name() const { return name_; }

private:
    std::string name_;
};

inline long long elapsed_ms(Clock::time_point since) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
}

// A TCP socket on 127.0.0.1 bound to a free port, listening or not.
class LocalSocket {
public:
    explicit LocalSocket(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        // Listening, the kernel completes handshakes into the backlog, and
        // nobody ever accepts or reads: the startup exchange never answers.
        if (listening) REQUIRE(::listen(fd_, 16) == 0);
    }
    ~LocalSocket() { ::close(fd_); }
    LocalSocket(const LocalSocket&) = delete;
    LocalSocket& operator=(const LocalSocket&) = delete;
    std::string port() const { return std::to_string(port_); }

private:
    int fd_;
    int port_ = 0;
};

}  // namespace pgtest
