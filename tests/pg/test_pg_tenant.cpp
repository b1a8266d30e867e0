// pg::with_tenant against row-level security on a real server: a role that
// RLS really applies to, a randomized multi-tenant load with failures mixed
// in, the same through PgBouncer in transaction mode, and what each reset
// mode leaves of a borrower's session.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "session_state_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {

std::string random_password() {
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    std::random_device rd;
    std::string pw;
    for (int i = 0; i < 24; ++i) pw += alphabet[rd() % (sizeof alphabet - 1)];
    return pw;
}

// A tenant table under FORCE ROW LEVEL SECURITY with a fail-closed policy,
// owned by the admin, a fresh LOGIN role that RLS applies to, and a
// BYPASSRLS role it may SET ROLE to (what a careless borrower could leave
// set). Dropped afterwards. `also_grant` (the sandbox's app role, for PgBouncer, whose
// userlist only knows it) gets the same privileges.
class RlsFixture {
public:
    explicit RlsFixture(const std::string& also_grant = {})
        : table_(unique_name("tenant_items")), role_(unique_name("reservoir_tenant")),
          bypass_(unique_name("reservoir_bypass")), password_(random_password()), also_grant_(also_grant) {
        auto admin = connect_admin();
        admin.execute("CREATE TABLE " + table_ +
                      " (id bigserial PRIMARY KEY, tenant_id text NOT NULL, payload text);"
                      "ALTER TABLE " + table_ + " ENABLE ROW LEVEL SECURITY;"
                      "ALTER TABLE " + table_ + " FORCE ROW LEVEL SECURITY;"
                      // NULLIF: after a transaction-local setting ends it reads '' (not NULL).
                      "CREATE POLICY tenant_isolation ON " + table_ +
                      " USING (tenant_id = NULLIF(current_setting('app.current_tenant', true), ''))"
                      " WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant', true), ''));"
                      "CREATE ROLE " + role_ + " LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD '" +
                      password_ + "'; CREATE ROLE " + bypass_ + " NOLOGIN BYPASSRLS; GRANT " + bypass_ + " TO " +
                      role_);
        grant(admin, role_);
        grant(admin, bypass_);
        if (!also_grant_.empty()) {
            grant(admin, also_grant_);
            admin.execute("GRANT " + bypass_ + " TO " + also_grant_);
        }
    }
    ~RlsFixture() {
        try {
            auto admin = connect_admin();
            admin.query("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1", role_);
            admin.execute("DROP TABLE IF EXISTS " + table_ + "; DROP OWNED BY " + role_ + ", " + bypass_ +
                          "; DROP ROLE IF EXISTS " + role_ + "; DROP ROLE IF EXISTS " + bypass_);
        } catch (...) {
        }
    }
    RlsFixture(const RlsFixture&) = delete;
    RlsFixture& operator=(const RlsFixture&) = delete;

    const std::string& table() const { return table_; }
    const std::string& role() const { return role_; }
    const std::string& bypass_role() const { return bypass_; }
    const std::string& password() const { return password_; }

    // The app config, connecting as the new role.
    pg::Config config() const {
        auto c = pgtest::config();
        c.user = role_;
        c.password = password_;
        return c;
    }

    // RLS does not apply to superusers, BYPASSRLS roles or (without FORCE)
    // the owner: a test run as one proves nothing.
    void require_subject_to_rls(const std::string& role) const {
        auto admin = connect_admin();
        const auto r = admin.query(
            "SELECT r.rolsuper, r.rolbypassrls, c.relowner = r.oid, c.relrowsecurity, c.relforcerowsecurity "
            "FROM pg_roles r, pg_class c WHERE r.rolname = $1 AND c.oid = $2::regclass",
            role, table_);
        REQUIRE(r.rows() == 1);
        INFO("role " << role);
        CHECK_FALSE(r[0][0].get<bool>());
        CHECK_FALSE(r[0][1].get<bool>());
        CHECK_FALSE(r[0][2].get<bool>());
        CHECK(r[0][3].get<bool>());
        CHECK(r[0][4].get<bool>());
    }

    // Rows per tenant and the payloads stored, as the admin sees them.
    std::map<std::string, std::vector<std::string>> payloads_by_tenant() const {
        auto admin = connect_admin();
        std::map<std::string, std::vector<std::string>> out;
        const auto r = admin.query("SELECT tenant_id, payload FROM " + table_);
        for (std::size_t i = 0; i < r.rows(); ++i)
            out[r[i][0].get<std::string>()].push_back(r[i][1].get<std::string>());
        return out;
    }

private:
    void grant(pg::Connection& admin, const std::string& role) {
        admin.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON " + table_ + " TO " + role + "; GRANT USAGE ON " +
                      table_ + "_id_seq TO " + role);
    }

    std::string table_, role_, bypass_, password_, also_grant_;
};

// Hostile but legal ids: quotes, SQL, backslashes, unicode, 10 kB.
std::vector<std::string> tenant_ids() {
    return {"acme",
            "o'brien \"quoted\"",
            "x'; DROP TABLE tenant_items; --",
            "back\\slash\\'\\",
            "ünïcødé-テナント-🦀",
            std::string(10 * 1024, 'k') + "'tail"};
}


bool is_connection_failure(const reservoir::Error& e) {
    return e.kind() == reservoir::ErrorKind::connection_lost || e.kind() == reservoir::ErrorKind::connect_failed;
}

struct ThrownInside {};  // the exception fn throws on purpose

enum Kind { read, insert, throw_inside, division_by_zero, cross_tenant_insert, lease_commit, lease_abandon,
            bare_read, leave_state, context_check, kinds };
const char* const kind_names[kinds] = {"read",          "insert",          "throw_inside",
                                       "division_by_zero", "cross_tenant_insert", "lease_commit",
                                       "lease_abandon",  "bare_read",      "leave_state",
                                       "context_check"};

// The randomized isolation test: see the brief at the top of the file.
// Some borrowers leave session state behind on purpose (a temporary table
// shadowing the tenant table with their tenant's rows, the tenant setting at
// session level, a BYPASSRLS role, search_path with pg_temp first, and the
// generated mix of session_state_support.hpp); every tenant scope must hold
// anyway. `behind_pooler`: PgBouncer in transaction mode, where no reset runs
// between borrowers and a query outside any scope may see what another left
// (counted and shown, as the docs say), while every scope still holds.
void run_isolation(const RlsFixture& fx, pg::Config cfg, const char* label, bool behind_pooler) {
    constexpr int threads = 16, max_ops = 3000, kill_every = 400;
    constexpr auto max_time = 45s;
    const std::uint64_t seed = seed_from("RESERVOIR_TENANT_SEED");
    std::cout << "[tenant isolation " << label << "] seed " << seed << " (set RESERVOIR_TENANT_SEED to replay)\n";
    const auto tenants = tenant_ids();

    cfg.pool.min_size = 0;
    cfg.pool.max_size = 2;
    cfg.pool.acquire_timeout = 30s;
    reservoir::TenantPool pool(cfg);
    const std::string table = fx.table();

    std::atomic<int> issued{0};
    std::atomic<long> counts[kinds] = {}, lost{0}, violations{0}, unexpected{0}, kills{0}, left_failed{0},
        outside_scope_leaks{0}, pooler_errors{0};
    const StatePlayground play(config().user);
    std::mutex mu;
    std::string first_problem;
    std::map<std::string, std::set<std::string>> committed, maybe;  // tenant -> payloads
    std::set<std::string> must_not_exist;
    const auto problem = [&](std::atomic<long>& counter, const std::string& what) {
        counter.fetch_add(1);
        std::lock_guard lk(mu);
        if (first_problem.empty()) first_problem = what;
    };

    const auto start = Clock::now();
    std::atomic<bool> done{false};
    std::thread killer([&] {
        auto admin = connect_admin();
        for (int next = kill_every; !done.load(); std::this_thread::sleep_for(2ms)) {
            if (issued.load() < next) continue;
            next += kill_every;
            const auto n = admin.query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE application_name = $1 AND pid <> pg_backend_pid()",
                                       cfg.application_name)
                               .scalar<std::int64_t>();
            kills.fetch_add(n);
        }
    });

    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::mt19937_64 rng(seed * 1000003 + static_cast<std::uint64_t>(t));
            StateGenerator gen(play, rng(), false);
            for (int op; (op = issued.fetch_add(1)) < max_ops && Clock::now() - start < max_time;) {
                const std::size_t ti = rng() % tenants.size();
                const std::string& tenant = tenants[ti];
                const std::string payload = std::to_string(ti) + ":" + std::to_string(t) + ":" + std::to_string(op);
                const int roll = static_cast<int>(rng() % 100);
                const Kind kind = roll < 30   ? read
                                  : roll < 52 ? insert
                                  : roll < 59 ? throw_inside
                                  : roll < 65 ? division_by_zero
                                  : roll < 71 ? cross_tenant_insert
                                  : roll < 76 ? lease_commit
                                  : roll < 81 ? lease_abandon
                                  : roll < 86 ? bare_read
                                  : roll < 95 ? leave_state
                                              : context_check;
                counts[kind].fetch_add(1);
                const auto insert_row = [&](pg::Connection& c, const std::string& as_tenant) {
                    c.query("INSERT INTO " + table + " (tenant_id, payload) VALUES ($1, $2)", as_tenant, payload);
                };
                const auto note = [&](std::map<std::string, std::set<std::string>>& where) {
                    std::lock_guard lk(mu);
                    where[tenant].insert(payload);
                };
                try {
                    switch (kind) {
                        case read: {
                            const auto r = pg::with_tenant(pool, tenant, [&](pg::Connection& c) {
                                return c.query("SELECT tenant_id, current_setting('app.current_tenant') FROM " + table);
                            });
                            for (std::size_t i = 0; i < r.rows(); ++i)
                                if (r[i][0].get<std::string>() != tenant || r[i][1].get<std::string>() != tenant)
                                    problem(violations, "a read for tenant " + std::to_string(ti) + " saw another's row");
                            break;
                        }
                        case insert:
                            try {
                                pg::with_tenant(pool, tenant, [&](pg::Connection& c) { insert_row(c, tenant); });
                                note(committed);
                            } catch (const reservoir::Error& e) {
                                // Lost during COMMIT: it may have committed.
                                if (is_connection_failure(e)) note(maybe);
                                throw;
                            }
                            break;
                        case throw_inside:
                            try {
                                pg::with_tenant(pool, tenant, [&](pg::Connection& c) {
                                    insert_row(c, tenant);
                                    throw ThrownInside{};
                                });
                                problem(unexpected, "with_tenant did not rethrow");
                            } catch (const ThrownInside&) {
                                std::lock_guard lk(mu);
                                must_not_exist.insert(payload);
                            }
                            break;
                        case division_by_zero:
                        case cross_tenant_insert:
                            try {
                                pg::with_tenant(pool, tenant, [&](pg::Connection& c) {
                                    insert_row(c, tenant);
                                    if (kind == division_by_zero)
                                        c.query("SELECT 1 / 0");
                                    else  // WITH CHECK rejects a row for another tenant
                                        insert_row(c, tenants[(ti + 1) % tenants.size()]);
                                });
                                problem(violations, std::string(kind_names[kind]) + " succeeded");
                            } catch (const pg::QueryError& e) {
                                const bool expected = e.sqlstate() == (kind == division_by_zero ? "22012" : "42501");
                                if (!expected && behind_pooler)
                                    pooler_errors.fetch_add(1);
                                else if (!expected)
                                    problem(unexpected, e.what());
                                std::lock_guard lk(mu);
                                must_not_exist.insert(payload);
                            }
                            break;
                        case lease_commit:
                            try {
                                auto lease = pg::acquire_for_tenant(pool, {tenant, "user-" + std::to_string(t), payload});
                                insert_row(*lease, tenant);
                                lease.commit();
                                note(committed);
                            } catch (const reservoir::Error& e) {
                                if (is_connection_failure(e)) note(maybe);
                                throw;
                            }
                            break;
                        case lease_abandon: {
                            auto lease = pg::acquire_for_tenant(pool, {tenant, {}, {}});
                            insert_row(*lease, tenant);
                            std::lock_guard lk(mu);
                            must_not_exist.insert(payload);
                            break;  // destroyed without commit: the pool rolls it back
                        }
                        case bare_read: {
                            auto lease = pool.acquire();
                            const auto r = lease->query("SELECT count(*), coalesce(current_setting('app.current_tenant', "
                                                        "true), '') FROM " + table);
                            if (r[0][0].get<std::int64_t>() != 0 || !r[0][1].get<std::string>().empty()) {
                                if (behind_pooler)
                                    outside_scope_leaks.fetch_add(1);
                                else
                                    problem(violations, "a query outside any tenant context saw rows or a tenant");
                            }
                            break;
                        }
                        case leave_state:
                            try {
                                switch (rng() % 6) {
                                    case 0:  // a shadow of the tenant table, holding this tenant's rows
                                        pg::with_tenant(pool, tenant, [&](pg::Connection& c) {
                                            c.execute("CREATE TABLE IF NOT EXISTS pg_temp." + table +
                                                      " AS SELECT * FROM " + table);
                                        });
                                        break;
                                    case 1:  // the tenant setting at session level, from inside a scope
                                        pg::with_tenant(pool, tenant, [&](pg::Connection& c) {
                                            c.query("SELECT set_config('app.current_tenant', $1, false)", tenant);
                                        });
                                        break;
                                    case 2:  // a BYPASSRLS role, through a DO block
                                        pool.acquire()->execute("DO $$ BEGIN EXECUTE 'SET ROLE " + fx.bypass_role() +
                                                                "'; END $$");
                                        break;
                                    case 3:
                                        pool.acquire()->query(
                                            "SELECT set_config('search_path', 'pg_temp, public', false)");
                                        break;
                                    case 4:  // the tenant setting at session level, outside any scope
                                        pool.acquire()->query("SELECT set_config('app.current_tenant', $1, false)",
                                                              tenant);
                                        break;
                                    default: {
                                        auto lease = pool.acquire();
                                        gen.dirty(*lease);
                                    }
                                }
                            } catch (const pg::QueryError&) {
                                left_failed.fetch_add(1);  // an earlier borrower's state can make it fail
                            }
                            break;
                        case context_check:
                            pg::with_tenant(pool, tenant, [&](pg::Connection& c) {
                                const auto r = c.query("SELECT current_user::text, session_user::text, "
                                                       "current_setting('app.current_tenant'), "
                                                       "current_setting('app.current_user'), "
                                                       "(to_regclass($1)::oid = to_regclass($2)::oid)::text",
                                                       table, "public." + table);
                                if (r[0][0].get<std::string>() != cfg.user || r[0][1].get<std::string>() != cfg.user)
                                    problem(violations, "a tenant scope ran as " + r[0][0].get<std::string>());
                                if (r[0][2].get<std::string>() != tenant || !r[0][3].get<std::string>().empty())
                                    problem(violations, "a tenant scope had another's settings");
                                if (r[0][4].get<std::string>() != "true")
                                    problem(violations, "a temporary table shadowed a table in a tenant scope");
                                c.execute("SAVEPOINT lastval_probe");
                                try {
                                    c.query("SELECT lastval()");
                                    problem(violations, "lastval() in a tenant scope returned another's id");
                                } catch (const pg::QueryError& e) {
                                    if (e.sqlstate() != "55000") throw;
                                }
                                c.execute("ROLLBACK TO SAVEPOINT lastval_probe");
                            });
                            break;
                        case kinds: break;
                    }
                } catch (const reservoir::Error& e) {
                    if (is_connection_failure(e))
                        lost.fetch_add(1);
                    else if (behind_pooler && e.kind() == reservoir::ErrorKind::query)
                        pooler_errors.fetch_add(1);  // a setting another borrower left (read only, a timeout...)
                    else
                        problem(unexpected, e.what());
                }
            }
        });
    }
    for (auto& w : workers) w.join();
    done.store(true);
    killer.join();

    // Every insert under its own tenant: committed ones all there, rolled
    // back ones absent, the ambiguous ones (lost in COMMIT) either way.
    const auto stored = fx.payloads_by_tenant();
    long stored_total = 0, committed_total = 0;
    for (const auto& [tenant, payloads] : stored) {
        const auto ti = std::find(tenants.begin(), tenants.end(), tenant) - tenants.begin();
        for (const auto& p : payloads) {
            ++stored_total;
            INFO("payload " << p);
            CHECK(std::stol(p.substr(0, p.find(':'))) == ti);
            CHECK(must_not_exist.count(p) == 0);
            CHECK((committed[tenant].count(p) + maybe[tenant].count(p)) == 1);
        }
    }
    for (const auto& [tenant, payloads] : committed) {
        committed_total += static_cast<long>(payloads.size());
        const auto it = stored.find(tenant);
        const std::size_t have = it == stored.end() ? 0 : it->second.size();
        CHECK(have >= payloads.size());
        CHECK(have <= payloads.size() + maybe[tenant].size());
    }
    if (!behind_pooler) {
        auto lease = pool.acquire();  // outside any tenant context: nothing
        CHECK(lease->query("SELECT count(*) FROM " + table).scalar<std::int64_t>() == 0);
    }
    pool.shutdown(5s);
    // Server sessions that kept what the borrowers left (PgBouncer's) end here.
    connect_admin().query("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = $1",
                          cfg.application_name);

    std::cout << "[tenant isolation " << label << "] " << std::min(issued.load(), max_ops) << " ops in "
              << elapsed_ms(start) << " ms:";
    for (int k = 0; k < kinds; ++k) std::cout << " " << kind_names[k] << "=" << counts[k].load();
    std::cout << " | backends_killed=" << kills.load() << " connection_lost=" << lost.load()
              << " committed_rows=" << committed_total << " stored_rows=" << stored_total
              << " ambiguous=" << std::accumulate(maybe.begin(), maybe.end(), std::size_t{0}, [](auto n, const auto& kv) {
                     return n + kv.second.size();
                 })
              << " stats.closes=" << pool.stats().closes.total() << " leave_state_failed=" << left_failed.load()
              << " outside_scope_leaks=" << outside_scope_leaks.load() << " pooler_errors=" << pooler_errors.load()
              << "\n";
    INFO("first problem: " << first_problem);
    CHECK(violations.load() == 0);
    CHECK(unexpected.load() == 0);
    CHECK(counts[read].load() > 0);
    CHECK(committed_total > 0);
}

// The PgBouncer URL: given, or from the sandbox (started there if needed).
std::string bouncer_url() {
    if (const char* url = std::getenv("RESERVOIR_TEST_BOUNCER_URL"); url && *url) return url;
    const char* dir = std::getenv("RESERVOIR_TEST_SANDBOX");
    if (!dir || !*dir) FAIL("the PgBouncer test needs RESERVOIR_TEST_BOUNCER_URL or RESERVOIR_TEST_SANDBOX");
    const std::string file = std::string(dir) + "/bouncer-url";
    if (!std::filesystem::exists(file)) {
        const auto script = std::filesystem::path(__FILE__).parent_path() / "../../scripts/pg-sandbox";
        const std::string cmd = "'" + script.string() + "' pgbouncer '" + dir + "' --pool-mode transaction >/dev/null";
        REQUIRE(std::system(cmd.c_str()) == 0);
    }
    std::ifstream in(file);
    std::string url;
    REQUIRE(std::getline(in, url));
    return url;
}

}  // namespace

TEST_CASE("tenant ids are data: hostile ids round-trip, empty and NUL ones are rejected before any SQL",
          "[pg][tenant]") {
    auto cfg = config();
    cfg.pool.min_size = 0;
    cfg.pool.max_size = 1;
    reservoir::PgPool pool(cfg);
    for (const auto& id : tenant_ids()) {
        const auto seen = pg::with_tenant(pool, pg::TenantContext{id, "u'1", "s;2"}, [](pg::Connection& c) {
            return c.query("SELECT current_setting('app.current_tenant') || '|' || current_setting('app.current_user') "
                           "|| '|' || current_setting('app.current_session')")
                .scalar<std::string>();
        });
        CHECK(seen == id + "|u'1|s;2");
    }
    const auto acquires = pool.stats().acquires;
    const std::string big_with_nul = std::string(5000, 'a') + '\0' + std::string(5000, 'b');
    for (const auto& bad : {pg::TenantContext{"", {}, {}}, pg::TenantContext{big_with_nul, {}, {}},
                            pg::TenantContext{"ok", std::string("u\0v", 3), {}}}) {
        try {
            pg::with_tenant(pool, bad, [] { FAIL("fn ran"); });
            FAIL("no error");
        } catch (const reservoir::Error& e) {
            INFO(e.what());
            CHECK(e.kind() == reservoir::ErrorKind::config);
            CHECK(std::string(e.what()).size() < 300);
            CHECK(std::string(e.what()).find("aaaa") == std::string::npos);
        }
        CHECK_THROWS_AS(pg::acquire_for_tenant(pool, bad), reservoir::ConfigError);
    }
    CHECK(pool.stats().acquires == acquires);  // nothing acquired, so nothing sent
}

TEST_CASE("with_tenant commits, rolls back on throw, and leaves no context or dirty session", "[pg][tenant]") {
    RlsFixture fx;
    fx.require_subject_to_rls(fx.role());
    auto cfg = fx.config();
    cfg.pool.min_size = 0;
    cfg.pool.max_size = 1;
    reservoir::TenantPool pool(cfg);
    const auto count_as = [&](const std::string& tenant) {
        return pg::with_tenant(pool, tenant, [&](pg::Connection& c) {
            return c.query("SELECT count(*) FROM " + fx.table()).scalar<std::int64_t>();
        });
    };
    const auto insert = [&](pg::Connection& c) {
        c.query("INSERT INTO " + fx.table() + " (tenant_id, payload) VALUES ('a', 'p')");
    };

    pg::with_tenant(pool, "a", insert);
    CHECK(count_as("a") == 1);
    CHECK(count_as("b") == 0);
    CHECK_THROWS_AS(pg::with_tenant(pool, "a", [&](pg::Connection& c) { insert(c), throw ThrownInside{}; }),
                    ThrownInside);
    // A statement error caught inside fn: COMMIT rolls back, and says so.
    try {
        pg::with_tenant(pool, "a", [&](pg::Connection& c) {
            insert(c);
            CHECK_THROWS(c.query("SELECT 1 / 0"));
        });
        FAIL("COMMIT of a failed transaction did not throw");
    } catch (const pg::QueryError& e) {
        CHECK(e.sqlstate() == pg::sqlstate::in_failed_transaction);
    }
    { pg::acquire_for_tenant(pool, {"a", {}, {}})->query("INSERT INTO " + fx.table() + " VALUES (DEFAULT, 'a', 'x')"); }
    CHECK(count_as("a") == 1);

    auto lease = pool.acquire();
    CHECK_FALSE(lease->session_dirty());  // the scan (trust_sql_text) sees no session state in a tenant operation
    CHECK(lease->transaction_status() == PQTRANS_IDLE);
    CHECK(lease->query("SELECT coalesce(current_setting('app.current_tenant', true), '')").scalar<std::string>() ==
          "");
    CHECK(lease->query("SELECT count(*) FROM " + fx.table()).scalar<std::int64_t>() == 0);  // fail closed
    CHECK(pool.stats().closes.total() == 0);
}

TEST_CASE("tenant isolation under random load, failures and killed backends", "[pg][tenant]") {
    RlsFixture fx;
    fx.require_subject_to_rls(fx.role());
    run_isolation(fx, fx.config(), "direct", false);
}

TEST_CASE("tenant isolation through PgBouncer in transaction mode", "[pg][tenant]") {
    // PgBouncer's userlist knows only the sandbox's app role: it runs the
    // test, so it must be subject to RLS like the fresh role.
    auto cfg = pg::Config::from_url(bouncer_url());
    RlsFixture fx(cfg.user);
    fx.require_subject_to_rls(cfg.user);
    cfg.application_name = unique_name("reservoir_tenant_bouncer");
    cfg.pooler = pg::Pooler::pgbouncer;
    run_isolation(fx, cfg, "pgbouncer", true);
}

TEST_CASE("session state a tenant borrower leaves is reset as the mode says", "[pg][tenant]") {
    auto cfg = config();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    pg::ResetMode mode = pg::ResetMode::discard_all;
    SECTION("discard_all") { mode = pg::ResetMode::discard_all; }
    SECTION("light") { mode = pg::ResetMode::light; }
    SECTION("none") { mode = pg::ResetMode::none; }
    reservoir::TenantPool pool(pg::Driver(cfg), cfg.pool, reservoir::sizing::Dynamic(cfg.pool),
                               reservoir::health::Default(cfg.pool), pg::context::Tenant(mode));
    auto admin = connect_admin();
    const std::string other_role = unique_name("reservoir_role");
    admin.execute("CREATE ROLE " + other_role + " NOLOGIN; GRANT " + other_role + " TO " + cfg.user);

    const int pid = pg::with_tenant(pool, "a", [&](pg::Connection& c) {
        c.execute("SET work_mem = '7MB'");  // no LOCAL: outlives the transaction
        c.query("SELECT set_config('app.x', 'y', false)");
        c.execute("CREATE TEMP TABLE reservoir_tmp (x int)");
        c.execute("LISTEN reservoir_channel");
        c.query("SELECT pg_advisory_lock($1)", 4242);
        c.execute("PREPARE reservoir_p AS SELECT 1");
        c.execute("SET ROLE " + other_role);
        return c.backend_pid();
    });
    pg::with_tenant(pool, "b", [&](pg::Connection& c) {
        REQUIRE(c.backend_pid() == pid);
        const auto value = [&](const std::string& sql) { return c.query(sql).scalar<std::string>(); };
        const bool reset = mode != pg::ResetMode::none;
        CHECK(value("SELECT current_setting('app.current_tenant')") == "b");
        CHECK((value("SHOW work_mem") == "4MB") == reset);
        CHECK((value("SELECT coalesce(current_setting('app.x', true), '')") == "") == reset);
        CHECK((value("SELECT (to_regclass('pg_temp.reservoir_tmp') IS NULL)::text") == "true") == reset);
        CHECK((value("SELECT count(*) FROM pg_listening_channels()") == "0") == reset);
        CHECK((value("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") ==
               "0") == reset);
        // The scope itself resets the role, whatever the mode: SET ROLE outlives it only outside scopes.
        CHECK(value("SELECT current_user") == cfg.user);
        CHECK((value("SELECT count(*) FROM pg_prepared_statements") == "1") == (mode != pg::ResetMode::discard_all));
    });
    {
        auto lease = pool.acquire();
        lease->execute("RESET ROLE");  // none: undo it ourselves so the role can be dropped
    }
    pool.shutdown(5s);
    admin.execute("DROP ROLE " + other_role);
}

// Keeps the message of every event the pool reports (its log).
class EventLog final : public reservoir::EventListener {
public:
    void on_event(const reservoir::Event& e) noexcept override {
        std::lock_guard lk(mu_);
        messages_.emplace_back(e.message);
    }
    std::vector<std::string> messages() const {
        std::lock_guard lk(mu_);
        return messages_;
    }

private:
    mutable std::mutex mu_;
    std::vector<std::string> messages_;
};

TEST_CASE("tenant failures never show a password, in errors or events", "[pg][tenant]") {
    RlsFixture fx;
    std::vector<std::string> messages;
    const auto failure = [&](pg::Config cfg, auto&& action) {
        cfg.pool.min_size = 0;
        cfg.pool.max_size = 1;
        cfg.pool.acquire_timeout = 2s;
        const auto log = std::make_shared<EventLog>();
        cfg.pool.listener = log;
        {
            reservoir::TenantPool pool(cfg);
            try {
                action(pool);
                FAIL("no error");
            } catch (const reservoir::Error& e) {
                messages.push_back(e.what());
            }
        }
        for (auto& m : log->messages()) messages.push_back(std::move(m));
    };
    auto wrong_password = fx.config();
    wrong_password.password = "Wr0ng-" + fx.password();
    failure(wrong_password, [](auto& pool) { pg::with_tenant(pool, "a", [] {}); });
    auto wrong_db = fx.config();
    wrong_db.dbname = "no_such_db_" + fx.password().substr(0, 4);
    failure(wrong_db, [](auto& pool) { pg::acquire_for_tenant(pool, {"a", {}, {}}); });
    failure(fx.config(), [&](auto& pool) {  // a statement error inside the tenant transaction
        pg::with_tenant(pool, "a", [](pg::Connection& c) { c.query("SELECT 1 / 0"); });
    });
    REQUIRE(messages.size() > 3);  // three errors, and the pool's events
    for (const auto& m : messages) {
        INFO(m);
        CHECK(m.find(fx.password()) == std::string::npos);
    }
}

TEST_CASE("tenant statements are schema-qualified: a hostile search_path cannot redirect them", "[pg][tenant]") {
    RlsFixture fx;
    const std::string hostile = unique_name("hostile");
    auto admin = connect_admin();
    // Same signatures as pg_catalog's: listed before pg_catalog, they would win.
    admin.execute("CREATE SCHEMA " + hostile + "; GRANT USAGE ON SCHEMA " + hostile + " TO PUBLIC;"
                  "CREATE FUNCTION " + hostile + ".set_config(text, text, boolean) RETURNS text LANGUAGE sql "
                  "  AS $$ SELECT pg_catalog.set_config($1, 't01', $3) $$;"
                  "CREATE FUNCTION " + hostile + ".concat(VARIADIC \"any\") RETURNS text LANGUAGE internal "
                  "  AS 'text_concat';"
                  "CREATE FUNCTION " + hostile + ".ltrim(text, text) RETURNS text LANGUAGE sql "
                  "  AS $$ SELECT 'pg_temp' $$;"
                  "CREATE FUNCTION " + hostile + ".pg_advisory_unlock_all() RETURNS void LANGUAGE sql AS $$ $$");
    auto cfg = fx.config();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    for (const auto mode : {pg::ResetMode::discard_all, pg::ResetMode::light, pg::ResetMode::trust_sql_text,
                            pg::ResetMode::none}) {
        reservoir::TenantPool pool(pg::Driver(cfg), cfg.pool, reservoir::sizing::Dynamic(cfg.pool),
                                   reservoir::health::Default(cfg.pool), pg::context::Tenant(mode));
        INFO("mode " << static_cast<int>(mode));
        // Out of any scan's sight: only the modes that reset every lease undo it.
        pool.acquire()->execute("DO $$ BEGIN EXECUTE 'SET search_path = " + hostile +
                                ", pg_catalog, public'; END $$");
        pg::with_tenant(pool, "t02", [&](pg::Connection& c) {
            const auto r = c.query("SELECT pg_catalog.current_setting('app.current_tenant'), "
                                   "pg_catalog.current_setting('search_path')");
            CHECK(r[0][0].get<std::string>() == "t02");
            CHECK(r[0][1].get<std::string>() == "\"$user\", public, pg_temp");
        });
    }
    admin.execute("DROP SCHEMA " + hostile + " CASCADE");
}
