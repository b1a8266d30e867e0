// Connecting: clear errors without passwords, an exact deadline, settings applied.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {

// Connects and returns the ConnectError's message, failing the test if it does not throw one.
std::string connect_error(const pg::Config& cfg, reservoir::duration timeout = 5s) {
    try {
        pg::Driver(cfg).connect(Clock::now() + timeout);
    } catch (const reservoir::ConnectError& e) {
        CHECK(e.kind() == reservoir::ErrorKind::connect_failed);
        return e.what();
    }
    FAIL("connect succeeded");
    return {};
}

// Captures what is written to file descriptor 2 (stderr) while it lives.
class StderrCapture {
public:
    StderrCapture() : file_(std::tmpfile()), saved_(::dup(2)) {
        REQUIRE(file_);
        REQUIRE(saved_ >= 0);
        std::fflush(stderr);
        REQUIRE(::dup2(::fileno(file_), 2) >= 0);
    }
    ~StderrCapture() {
        restore();
        std::fclose(file_);
    }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;

    // Stops capturing and returns what was written.
    std::string text() {
        restore();
        std::string out;
        std::rewind(file_);
        char buffer[4096];
        for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, file_)) > 0;) out.append(buffer, n);
        return out;
    }

private:
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }
    std::FILE* file_;
    int saved_;
};

}  // namespace

TEST_CASE("a wrong password gives a clear ConnectError that shows no password", "[pg]") {
    auto cfg = config();
    const std::string real_password = cfg.password;
    REQUIRE_FALSE(real_password.empty());
    cfg.password = "Wr0ng-" + unique_name("pw");
    const auto message = connect_error(cfg);
    CHECK_THAT(message, Catch::StartsWith("reservoir: connect to host=") &&
                            Catch::Contains("password authentication failed for user \"" + cfg.user + "\""));
    CHECK_THAT(message, !Catch::Contains(cfg.password) && !Catch::Contains(real_password));
}

TEST_CASE("an unknown database gives a clear ConnectError", "[pg]") {
    auto cfg = config();
    cfg.dbname = unique_name("no_such_db");
    const auto message = connect_error(cfg);
    CHECK_THAT(message, Catch::Contains("database \"" + cfg.dbname + "\" does not exist"));
    CHECK_THAT(message, !Catch::Contains(cfg.password));
}

TEST_CASE("a closed port gives a clear ConnectError", "[pg]") {
    auto cfg = config();
    LocalSocket closed(false);  // bound, so no one else takes the port, but not listening: refused
    cfg.host = "127.0.0.1";
    cfg.port = closed.port();
    const auto message = connect_error(cfg);
    CHECK_THAT(message, Catch::Contains("port=" + cfg.port) && Catch::Contains("Connection refused"));
    CHECK_THAT(message, !Catch::Contains(cfg.password));
}

TEST_CASE("a server that never answers fails the connect within its deadline", "[pg]") {
    LocalSocket silent(true);
    auto cfg = config();
    cfg.host = "127.0.0.1";
    cfg.port = silent.port();
    // Deadline + 10%. The best of up to three attempts: a late implementation
    // is late every time, a thread descheduled on a loaded machine is not.
    long long best = 0;
    std::string message;
    for (int attempt = 0; attempt < 3 && (attempt == 0 || best > 550); ++attempt) {
        const auto start = Clock::now();
        message = connect_error(cfg, 500ms);
        const auto took = elapsed_ms(start);
        CHECK(took >= 500);
        best = attempt == 0 ? took : std::min(best, took);
        UNSCOPED_INFO("attempt " << attempt << " took " << took << " ms");
    }
    CHECK(best <= 550);
    CHECK_THAT(message, Catch::Contains("timed out after") && Catch::Contains("port=" + cfg.port));
    CHECK_THAT(message, !Catch::Contains(cfg.password));
}

TEST_CASE("destroying a pool whose connects hang stops them and returns", "[pg]") {
    LocalSocket silent(true);
    auto cfg = config();
    cfg.host = "127.0.0.1";
    cfg.port = silent.port();
    cfg.pool.min_size = 2;
    cfg.pool.max_size = 2;
    cfg.pool.connect_timeout = std::chrono::hours(1);
    const auto start = Clock::now();
    {
        reservoir::PgPool pool(cfg);
        REQUIRE(eventually([&] { return pool.stats().connecting == 2; }));
    }
    // The destructor joined its workers: their connects stopped long before
    // the one-hour deadline.
    CHECK(elapsed_ms(start) < 60'000);
}

TEST_CASE("a pool reports a connect failure without the password", "[pg]") {
    auto cfg = config();
    cfg.password = "Wr0ng-" + unique_name("pw");
    cfg.pool.min_size = 0;
    cfg.pool.max_size = 1;
    cfg.pool.acquire_timeout = 2s;
    reservoir::PgPool pool(cfg);
    try {
        (void)pool.acquire();
        FAIL("acquire succeeded");
    } catch (const reservoir::Error& e) {  // AcquireTimeout, or PoolUnavailable once the breaker opens
        CHECK((e.kind() == reservoir::ErrorKind::acquire_timeout || e.kind() == reservoir::ErrorKind::pool_unavailable));
        CHECK_THAT(std::string(e.what()), Catch::Contains("password authentication failed"));
        CHECK_THAT(std::string(e.what()), !Catch::Contains(cfg.password));
    }
}

TEST_CASE("session settings and TCP keepalives are applied at connect", "[pg]") {
    auto cfg = config();
    cfg.statement_timeout = 4321ms;
    cfg.options.emplace_back("options", "-c lock_timeout=1234");
    cfg.options.emplace_back("keepalives_idle", "45");  // overrides the default of 30
    pg::Driver driver(cfg);
    auto c = driver.connect(Clock::now() + 10s);
    CHECK(c.query("SHOW application_name").scalar<std::string>() == cfg.application_name);
    CHECK(c.query("SHOW statement_timeout").scalar<std::string>() == "4321ms");
    CHECK(c.query("SHOW lock_timeout").scalar<std::string>() == "1234ms");

    // What libpq actually used.
    PQconninfoOption* info = PQconninfo(c.native_handle());
    REQUIRE(info);
    const auto setting = [&](std::string_view key) {
        for (auto* o = info; o->keyword; ++o)
            if (key == o->keyword) return std::string(o->val ? o->val : "");
        return std::string("?");
    };
    CHECK(setting("keepalives") == "1");
    CHECK(setting("keepalives_idle") == "45");
    CHECK(setting("keepalives_interval") == "10");
    CHECK(setting("keepalives_count") == "3");
    CHECK(setting("tcp_user_timeout") == "30000");
    PQconninfoFree(info);
}

TEST_CASE("multi-host strings and target_session_attrs pass through to libpq", "[pg]") {
    auto cfg = config();
    LocalSocket closed(false);
    const std::string dead_port = closed.port();
    cfg.host = "127.0.0.1," + cfg.host;
    cfg.port = dead_port + "," + cfg.port;
    cfg.target_session_attrs = "read-write";
    auto c = pg::Driver(cfg).connect(Clock::now() + 10s);  // the first host refuses; the second is a primary
    CHECK(c.query("SELECT 1").scalar<int>() == 1);
    CHECK(std::string(PQport(c.native_handle())) != dead_port);
}

TEST_CASE("notices the server sends while it starts a session never reach stderr", "[pg]") {
    // A per-role setting that is invalid at login makes the server send a
    // WARNING after authentication, before the session is ready.
    struct LoginRole {
        std::string name = unique_name("reservoir_notice");
        std::string password = "pw-" + unique_name("x");
        LoginRole() {
            auto admin = connect_admin();
            admin.execute("CREATE ROLE " + name + " LOGIN PASSWORD '" + password + "'");
            admin.execute("ALTER ROLE " + name + " SET default_tablespace = 'no_such_tablespace'");
        }
        ~LoginRole() {
            try {
                connect_admin().execute("DROP ROLE IF EXISTS " + name);
            } catch (...) {
            }
        }
        LoginRole(const LoginRole&) = delete;
        LoginRole& operator=(const LoginRole&) = delete;
    } role;
    auto cfg = config();
    cfg.user = role.name;
    cfg.password = role.password;
    const pg::Driver driver(cfg);

    // Without a receiver of its own, libpq prints the warning: the case is real.
    std::vector<const char*> keys, values;
    for (const auto& [key, value] : driver.keywords()) {
        keys.push_back(key.c_str());
        values.push_back(value.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    std::string printed;
    {
        StderrCapture capture;
        PGconn* raw = PQconnectdbParams(keys.data(), values.data(), 0);
        const bool ok = PQstatus(raw) == CONNECTION_OK;
        PQfinish(raw);
        printed = capture.text();
        REQUIRE(ok);
    }
    CHECK_THAT(printed, Catch::Contains("default_tablespace"));

    // The driver's connect prints nothing, and the session works.
    {
        StderrCapture capture;
        bool ok = false;
        try {
            auto c = driver.connect(Clock::now() + 10s);
            ok = c.query("SELECT 1").scalar<int>() == 1;
        } catch (...) {
        }
        printed = capture.text();
        CHECK(ok);
    }
    CHECK(printed.empty());

    // A FATAL that fails a connect (here a wrong password) never went to
    // stderr: libpq reports it through the connection's error message.
    cfg.password = "Wr0ng-" + unique_name("pw");
    {
        StderrCapture capture;
        CHECK_THAT(connect_error(cfg), Catch::Contains("password authentication failed"));
        printed = capture.text();
    }
    CHECK(printed.empty());
}

// The server counts a session until its backend has exited, after the close.
// A pool that opened a replacement at once would make it see one more than
// max; closing therefore returns only once the server has let the session go.
TEST_CASE("closing a connection returns once the server no longer counts its session", "[pg]") {
    auto admin = connect_admin();
    for (int i = 0; i < 40; ++i) {
        int pid = 0;
        {
            auto c = connect();
            pid = c.backend_pid();
        }
        CAPTURE(i);
        REQUIRE(admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).scalar<std::int64_t>() == 0);
    }
}
