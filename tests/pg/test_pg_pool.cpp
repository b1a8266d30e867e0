// PgPool against a real server: dead connections replaced, sessions cleaned
// between borrowers, and a bounded connection count under load.

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pg_test_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {

pg::Config single_connection_config() {
    auto cfg = config();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    cfg.pool.acquire_timeout = 10s;
    return cfg;
}

reservoir::PgPool pool_with(const pg::Config& cfg, pg::context::Reset context) {
    return reservoir::PgPool(pg::Driver(cfg), cfg.pool, reservoir::sizing::Dynamic(cfg.pool),
                             reservoir::health::Default(cfg.pool), context);
}

// A NOLOGIN role the app user may SET ROLE to, dropped afterwards.
class GrantedRole {
public:
    explicit GrantedRole(const std::string& member) : name_(unique_name("reservoir_role")), member_(member) {
        auto admin = connect_admin();
        admin.execute("CREATE ROLE " + name_ + " NOLOGIN; GRANT " + name_ + " TO " + member_);
    }
    ~GrantedRole() {
        try {
            auto admin = connect_admin();
            admin.execute("REVOKE " + name_ + " FROM " + member_ + "; DROP ROLE " + name_);
        } catch (...) {
        }
    }
    GrantedRole(const GrantedRole&) = delete;
    GrantedRole& operator=(const GrantedRole&) = delete;
    const std::string& name() const { return name_; }

private:
    std::string name_, member_;
};

}  // namespace

TEST_CASE("a backend terminated while idle in the pool is replaced before anyone gets it", "[pg]") {
    auto cfg = single_connection_config();
    SECTION("found by the local check") { cfg.pool.validate_after_idle = std::chrono::hours(1); }
    SECTION("found by the ping on borrow") { cfg.pool.validate_after_idle = 0ms; }
    reservoir::PgPool pool(cfg);
    int old_pid = 0;
    {
        auto lease = pool.acquire();
        old_pid = lease->backend_pid();
    }
    terminate_backend(old_pid);

    auto lease = pool.acquire();
    CHECK(lease->backend_pid() != old_pid);
    CHECK(lease->query("SELECT 1").scalar<int>() == 1);
    CHECK(pool.stats().closes.broken == 1);
}

TEST_CASE("acquires with no time for the borrow's ping leave the connection open: a worker finishes the ping",
          "[pg]") {
    auto cfg = single_connection_config();
    cfg.pool.validate_after_idle = 0ms;  // a ping on every borrow
    reservoir::PgPool pool(cfg);
    const int pid = pool.acquire()->backend_pid();
    for (int i = 0; i < 5; ++i) {
        int served = pid;  // served only if the answer beat the poll
        try {
            served = pool.acquire(0ms)->backend_pid();
        } catch (const reservoir::AcquireTimeout&) {
        }
        CHECK(served == pid);
        REQUIRE(eventually([&] { return pool.stats().idle == 1; }));
    }
    CHECK(pool.stats().closes.broken == 0);
    auto lease = pool.acquire();
    CHECK(lease->backend_pid() == pid);  // the same session throughout
    CHECK(lease->query("SELECT 1").scalar<int>() == 1);
}

TEST_CASE("a lease returned mid-transaction is rolled back before the next borrower", "[pg]") {
    ScratchTable t("id int");
    auto cfg = single_connection_config();
    reservoir::PgPool pool(cfg);
    int pid = 0;
    {
        auto a = pool.acquire();
        pid = a->backend_pid();
        a->execute("BEGIN");
        a->query("INSERT INTO " + t.name() + " VALUES ($1)", 1);
        SECTION("open transaction") { CHECK(a->transaction_status() == PQTRANS_INTRANS); }
        SECTION("failed transaction") {
            CHECK_THROWS_AS(a->query("SELECT 1/0"), pg::QueryError);
            CHECK(a->transaction_status() == PQTRANS_INERROR);
        }
    }  // dropped without COMMIT or ROLLBACK

    auto b = pool.acquire();
    CHECK(b->backend_pid() == pid);  // the same session, cleaned rather than replaced
    CHECK(b->transaction_status() == PQTRANS_IDLE);
    CHECK(b->query("SELECT count(*) FROM " + t.name()).scalar<std::int64_t>() == 0);
    CHECK(connect().query("SELECT count(*) FROM " + t.name()).scalar<std::int64_t>() == 0);
    CHECK(pool.stats().closes.total() == 0);
}

TEST_CASE("a lease returned with a statement still running is cancelled and drained", "[pg]") {
    auto cfg = single_connection_config();
    reservoir::PgPool pool(cfg);
    int pid = 0;
    {
        auto a = pool.acquire();
        pid = a->backend_pid();
        REQUIRE(PQsendQuery(a->native_handle(), "SELECT pg_sleep(10)") == 1);  // and never read
    }
    const auto start = Clock::now();
    auto b = pool.acquire();
    CHECK(elapsed_ms(start) < 2000);
    CHECK(b->backend_pid() == pid);
    CHECK(b->query("SELECT 2").scalar<int>() == 2);
}

TEST_CASE("session state is reset between borrowers, as the reset mode says", "[pg]") {
    auto cfg = single_connection_config();
    GrantedRole role(cfg.user);
    pg::ResetMode mode = pg::ResetMode::discard_all;
    SECTION("discard_all") { mode = pg::ResetMode::discard_all; }
    SECTION("light") { mode = pg::ResetMode::light; }
    SECTION("none") { mode = pg::ResetMode::none; }
    auto pool = pool_with(cfg, pg::context::Reset(mode));
    int pid = 0;
    {
        auto a = pool.acquire();
        pid = a->backend_pid();
        a->execute("SET statement_timeout = '1234ms'");
        a->execute("PREPARE reservoir_p AS SELECT 1");
        a->execute("CREATE TEMP TABLE reservoir_tmp (x int)");
        a->execute("LISTEN reservoir_channel");
        a->query("SELECT pg_advisory_lock($1)", 42);
        a->execute("SET ROLE " + role.name());
        CHECK(a->session_dirty());
    }
    auto b = pool.acquire();
    REQUIRE(b->backend_pid() == pid);
    const auto value = [&](const std::string& sql) { return b->query(sql).scalar<std::string>(); };
    const bool reset = mode != pg::ResetMode::none;
    CHECK((value("SHOW statement_timeout") == "30s") == reset);  // the config's, from the startup packet
    CHECK((value("SELECT current_user") == cfg.user) == reset);
    CHECK((value("SELECT count(*) FROM pg_listening_channels()") == "0") == reset);
    CHECK((value("SELECT (to_regclass('pg_temp.reservoir_tmp') IS NULL)::text") == "true") == reset);
    CHECK((value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") ==
           "0") == reset);
    const bool prepared_kept = value("SELECT count(*) FROM pg_prepared_statements") == "1";
    CHECK(prepared_kept == (mode != pg::ResetMode::discard_all));
    CHECK(b->session_dirty() == !reset);
}

TEST_CASE("a lease that sends nothing keeps the reset before it: no second reset, no worker", "[pg]") {
    auto cfg = single_connection_config();
    cfg.pool.background_threads = false;  // a reset queued for a worker would wait for maintain()
    reservoir::PgPool pool(cfg);
    int pid = 0;
    {
        auto a = pool.acquire();
        pid = a->backend_pid();
        a->execute("SET search_path = pg_temp");
    }  // the reset is sent here, its answer left for the next statement
    { auto b = pool.acquire(); }  // borrowed and returned with nothing sent
    const auto st = pool.stats();
    CHECK(st.idle == 1);
    CHECK(st.resetting == 0);
    auto c = pool.acquire();
    REQUIRE(c->backend_pid() == pid);
    CHECK(c->query("SHOW search_path").scalar<std::string>() == "\"$user\", public");
}

TEST_CASE("session dirtiness: what leaves state behind, and what does not", "[pg]") {
    auto c = connect();
    const auto dirty_after = [&](const std::string& sql) {
        auto fresh = connect();
        fresh.execute(sql);
        return fresh.session_dirty();
    };
    CHECK_FALSE(dirty_after("SELECT 1 AS temperature, 2 AS label_temp, 3 AS temp_2"));
    CHECK_FALSE(dirty_after("BEGIN; SELECT pg_advisory_xact_lock(7); COMMIT"));
    CHECK_FALSE(dirty_after("RESET statement_timeout"));
    CHECK_FALSE(c.session_dirty());
    CHECK(dirty_after("SET search_path = public"));
    CHECK(dirty_after("SELECT pg_try_advisory_lock(7)"));
    CHECK(dirty_after("SELECT set_config('application_name', 'x', false)"));
    CHECK(dirty_after("CREATE TEMPORARY TABLE reservoir_t (x int)"));
    CHECK(dirty_after("BEGIN; DECLARE reservoir_c CURSOR WITH HOLD FOR SELECT 1; COMMIT"));
}

TEST_CASE("behind PgBouncer the default reset leaves the session alone", "[pg]") {
    auto cfg = single_connection_config();
    cfg.pooler = pg::Pooler::pgbouncer;  // a direct server works too: only the policy differs
    reservoir::PgPool pool(cfg);
    {
        auto a = pool.acquire();
        CHECK(a->session_reset() == pg::ResetMode::none);
        a->execute("SET lock_timeout = '777ms'");
        a->execute("BEGIN");
    }
    auto b = pool.acquire();
    CHECK(b->transaction_status() == PQTRANS_IDLE);  // still rolled back
    CHECK(b->query("SHOW lock_timeout").scalar<std::string>() == "777ms");
}

TEST_CASE("a connection that must be evicted is closed when returned", "[pg]") {
    ScratchTable t("id int");
    auto cfg = single_connection_config();
    reservoir::PgPool pool(cfg);
    int pid = 0;
    {
        auto a = pool.acquire();
        pid = a->backend_pid();
        a->execute("SET default_transaction_read_only = on");
        CHECK_THROWS_AS(a->query("INSERT INTO " + t.name() + " VALUES (1)"), pg::QueryError);  // 25006
        CHECK(a->must_evict());
    }
    auto b = pool.acquire();
    CHECK(b->backend_pid() != pid);
    CHECK(pool.stats().closes.discarded == 1);
}

// However a session made itself read-only, a write it has refused (25006)
// retires that session alone: the next session the driver opens finds the
// server writable, so its siblings are kept.
TEST_CASE("a session that made itself read-only retires only itself, however it did", "[pg]") {
    ScratchTable t("id int");
    const std::string insert = "INSERT INTO " + t.name() + " VALUES (1)";
    // Each makes the session read-only in its own way; the write that follows is refused.
    const auto [how, setup] = GENERATE(table<std::string, std::string>({
        {"SET", "SET default_transaction_read_only = on"},
        {"BEGIN READ ONLY", "BEGIN READ ONLY"},
        {"session characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"},
        {"a DO block", "DO $$ BEGIN PERFORM set_config('default_transaction_read_only', 'on', false); END $$"},
        {"a function", "CREATE FUNCTION pg_temp.ro() RETURNS void LANGUAGE sql AS "
                       "$$ SELECT set_config('default_transaction_read_only', 'on', false) $$; SELECT pg_temp.ro()"},
    }));
    CAPTURE(how);
    auto cfg = config();
    cfg.pool.min_size = 2;
    cfg.pool.max_size = 2;
    reservoir::PgPool pool(cfg);
    auto b = pool.acquire();
    int refused_pid = 0;
    {
        auto a = pool.acquire();
        refused_pid = a->backend_pid();
        a->execute(setup);
        try {
            a->query(insert);
            FAIL("the write was not refused");
        } catch (const pg::QueryError& e) {
            CHECK(e.sqlstate() == "25006");
        }
        CHECK(a->must_evict());
    }
    auto c = pool.acquire();  // opened to replace `a`: the referee, which finds the server writable
    CHECK(c->backend_pid() != refused_pid);
    CHECK_FALSE(b->must_evict());
    CHECK_FALSE(c->must_evict());
    CHECK(b->query(insert).affected_rows() == 1);
    CHECK(pool.stats().closes.discarded == 1);
}

// A server that new sessions find read-only (here a database whose default is
// read-only; a fenced or demoted primary looks the same to a new session):
// the first refused write retires every session opened before it, once the
// next session the driver opens confirms it.
TEST_CASE("a write refused by a read-only server retires every connection opened before it", "[pg]") {
    const std::string db = unique_name("reservoir_ro");
    const auto owner = connect().query("SELECT quote_ident(current_user)").scalar<std::string>();
    auto admin = connect_admin();
    admin.execute("CREATE DATABASE " + db + " OWNER " + owner);  // PostgreSQL 15: only the owner creates in public
    struct Drop {
        std::string db;
        ~Drop() {
            try {
                auto admin = connect_admin();
                admin.execute("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
            } catch (...) {
            }
        }
    } drop{db};
    auto cfg = config();
    cfg.dbname = db;
    cfg.pool.min_size = 2;
    cfg.pool.max_size = 2;
    reservoir::PgPool pool(cfg);
    int before[2] = {};
    {
        auto a = pool.acquire(), b = pool.acquire();
        REQUIRE(a->query("SELECT current_database()").scalar<std::string>() == db);
        a->execute("CREATE TABLE t (id int)");
        before[0] = a->backend_pid();
        before[1] = b->backend_pid();
        // New sessions are read-only from now on; these two are not, until
        // `a` is (as a session on a demoted server is) and has a write refused.
        admin.execute("ALTER DATABASE " + db + " SET default_transaction_read_only = on");
        a->execute("SET default_transaction_read_only = on");
        CHECK_THROWS_AS(a->query("INSERT INTO t VALUES (1)"), pg::QueryError);
        CHECK_FALSE(b->must_evict());  // a suspicion until a new session confirms it
    }
    // `a` is replaced by a new session, the referee, which finds the server read-only.
    REQUIRE(eventually([&] { return pool.stats().connects == 3; }));
    auto c = pool.acquire(), d = pool.acquire();  // `b`, idle, is retired at its borrow
    for (int pid : {c->backend_pid(), d->backend_pid()}) CHECK((pid != before[0] && pid != before[1]));
}

TEST_CASE("120 workers through a pool of 20: no errors, never more than 20 server connections", "[pg]") {
    constexpr int workers = 120, queries_each = 50;
    constexpr std::size_t max_connections = 20;
    auto cfg = config();
    cfg.pool.min_size = 0;
    cfg.pool.max_size = max_connections;
    cfg.pool.acquire_timeout = 30s;
    reservoir::PgPool pool(cfg);

    std::atomic<bool> done{false};
    std::atomic<long long> peak{0}, samples{0};
    std::thread monitor([&] {
        auto admin = connect_admin();
        while (!done.load()) {
            const auto n = admin.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                                       cfg.application_name)
                               .scalar<std::int64_t>();
            peak.store(std::max<long long>(peak.load(), n));
            samples.fetch_add(1);
        }
    });

    std::atomic<int> errors{0}, ok{0};
    std::mutex first_error_mutex;
    std::string first_error;
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) {
        threads.emplace_back([&, w] {
            for (int i = 0; i < queries_each; ++i) {
                try {
                    auto lease = pool.acquire();
                    const auto got = lease->query("SELECT $1::int8 * $2", std::int64_t{w}, i).scalar<std::int64_t>();
                    got == std::int64_t{w} * i ? ok.fetch_add(1) : errors.fetch_add(1);
                } catch (const std::exception& e) {
                    errors.fetch_add(1);
                    std::lock_guard lk(first_error_mutex);
                    if (first_error.empty()) first_error = e.what();
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    done.store(true);
    monitor.join();

    INFO("first error: " << first_error);
    CHECK(errors.load() == 0);
    CHECK(ok.load() == workers * queries_each);
    CHECK(samples.load() > 0);
    CHECK(peak.load() >= 1);
    CHECK(peak.load() <= static_cast<long long>(max_connections));
    const auto stats = pool.stats();
    CHECK(stats.total <= max_connections);
    CHECK(stats.connects <= max_connections);
}
