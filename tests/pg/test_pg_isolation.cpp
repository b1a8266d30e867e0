// Session isolation as a property, against the real server: borrowers run a
// generated mix of state-changing SQL (session_state_support.hpp), and the
// next borrower of the same backend compares a fingerprint of its session
// with a fresh connection's. Seeded: RESERVOIR_ISOLATION_SEED replays a run.

#include <iostream>
#include <string>
#include <vector>

#include "session_state_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {

struct PropertyRun {
    int compared = 0, other_backend = 0, residues = 0, statements = 0, failed = 0;
    std::vector<std::string> problems;  // the first few, with what the borrower before ran
};

// `leases` borrowers on a one-connection pool in `mode`, bounded by `limit`.
PropertyRun run_property(const pg::Config& cfg, const StatePlayground& play, pg::ResetMode mode, bool superuser,
                         std::uint64_t seed, int leases, Clock::duration limit,
                         const std::vector<std::string>& skip = {}) {
    auto pool_cfg = cfg.pool;
    pool_cfg.min_size = 1;
    pool_cfg.max_size = 1;
    pool_cfg.acquire_timeout = 10s;
    reservoir::PgPool pool(pg::Driver(cfg), pool_cfg, reservoir::sizing::Dynamic(pool_cfg),
                           reservoir::health::Default(pool_cfg), pg::context::Reset(mode));
    Fingerprint fresh;
    {
        auto c = connect(cfg);
        fresh = fingerprint(c, play);
    }
    StateGenerator gen(play, seed, superuser);
    PropertyRun run;
    int last_pid = 0;
    std::string last_log;
    const auto start = Clock::now();
    for (int i = 0; i < leases && Clock::now() - start < limit; ++i) {
        auto lease = pool.acquire();
        if (lease->backend_pid() != last_pid) {
            ++run.other_backend;  // the first lease, or a reset that failed and closed the connection
        } else {
            ++run.compared;
            std::string diff;
            try {
                diff = differences(fresh, fingerprint(*lease, play, &run.residues), skip);
            } catch (const reservoir::Error& e) {
                diff = std::string("the fingerprint failed: ") + e.what();
            }
            if (!diff.empty() && run.problems.size() < 5)
                run.problems.push_back("lease " + std::to_string(i) + " after: " + last_log + "\n" + diff);
        }
        last_pid = lease->backend_pid();
        const auto out = gen.dirty(*lease);
        run.statements += out.ran;
        run.failed += out.failed;
        last_log = out.log;
    }
    return run;
}

void report(const char* label, std::uint64_t seed, const PropertyRun& run) {
    std::cout << "[session isolation " << label << "] seed " << seed
              << " (RESERVOIR_ISOLATION_SEED replays): compared=" << run.compared
              << " other_backend=" << run.other_backend << " statements=" << run.statements
              << " failed_statements=" << run.failed << " placeholder_residues=" << run.residues
              << " differences=" << run.problems.size() << "\n";
    for (const auto& p : run.problems) UNSCOPED_INFO(p);
}

}  // namespace

TEST_CASE("whatever SQL a borrower runs the next one gets a session like a fresh one", "[pg][isolation]") {
    const std::uint64_t seed = seed_from("RESERVOIR_ISOLATION_SEED");
    // Each mode that promises a fresh session, as the app role and as a
    // superuser (who can also SET SESSION AUTHORIZATION).
    const int combo = GENERATE(0, 1, 2, 3);
    const bool light = combo % 2 == 1, superuser = combo >= 2;
    const pg::ResetMode mode = light ? pg::ResetMode::light : pg::ResetMode::discard_all;
    const std::vector<std::string> skip = light ? std::vector<std::string>{"prepared"} : std::vector<std::string>{};
    const std::string label = std::string(light ? "light" : "discard_all") + (superuser ? ", superuser" : ", app role");
    auto cfg = superuser ? pg::Config::from_url(admin_url()) : config();
    cfg.application_name = unique_name("reservoir_test");
    StatePlayground play(config().user);
    const auto run = run_property(cfg, play, mode, superuser, seed, 400, 40s, skip);
    report(label.c_str(), seed, run);
    CHECK(run.problems.empty());
    CHECK(run.compared > 100);
    CHECK(run.failed < run.statements / 2);  // most statements really changed something
}

TEST_CASE("trust_sql_text trusts the text: state made where no scan sees it reaches the next borrower",
          "[pg][isolation]") {
    // The documented risk of the opt-in mode, and the reason it is not the default.
    auto cfg = config();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    reservoir::PgPool pool(pg::Driver(cfg), cfg.pool, reservoir::sizing::Dynamic(cfg.pool),
                           reservoir::health::Default(cfg.pool), pg::context::Reset(pg::ResetMode::trust_sql_text));
    int pid = 0;
    {
        auto a = pool.acquire();
        pid = a->backend_pid();
        a->execute("CREATE TABLE pg_temp.reservoir_unseen (x int)");
        a->execute("SET work_mem = '7MB'");  // seen: a DISCARD ALL follows
    }
    {
        auto b = pool.acquire();
        REQUIRE(b->backend_pid() == pid);
        CHECK(b->query("SELECT to_regclass('pg_temp.reservoir_unseen') IS NULL").scalar<bool>());
        b->execute("CREATE TABLE pg_temp.reservoir_unseen (x int)");  // not seen: no reset
    }
    auto c = pool.acquire();
    REQUIRE(c->backend_pid() == pid);
    CHECK_FALSE(c->query("SELECT to_regclass('pg_temp.reservoir_unseen') IS NULL").scalar<bool>());
}

TEST_CASE("a lease's query timeout ends with it, whatever the reset mode", "[pg][isolation]") {
    auto cfg = config();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    for (const auto mode : {pg::ResetMode::discard_all, pg::ResetMode::light, pg::ResetMode::trust_sql_text,
                            pg::ResetMode::none}) {
        reservoir::PgPool pool(pg::Driver(cfg), cfg.pool, reservoir::sizing::Dynamic(cfg.pool),
                               reservoir::health::Default(cfg.pool), pg::context::Reset(mode));
        { pool.acquire()->set_query_timeout(1ms); }
        auto b = pool.acquire();
        CHECK(b->query_timeout() == 0ms);
        CHECK(b->query("SELECT pg_sleep(0.01), 1").rows() == 1);
    }
}

TEST_CASE("the next borrower's libpq calls of its own find the session reset and libpq idle", "[pg][isolation]") {
    auto cfg = config();
    cfg.pool.min_size = 1;
    cfg.pool.max_size = 1;
    reservoir::PgPool pool(cfg);
    int pid = 0;
    {
        auto a = pool.acquire();
        pid = a->backend_pid();
        a->execute("SET work_mem = '7MB'");
    }
    auto b = pool.acquire();  // its reset may still be in flight
    REQUIRE(b->backend_pid() == pid);
    CHECK(b->transaction_status() == PQTRANS_IDLE);
    PGconn* raw = b->native_handle();
    CHECK(PQpipelineStatus(raw) == PQ_PIPELINE_OFF);
    PQsetnonblocking(raw, 0);  // PQexec waits for its answer: let it block
    pg::detail::ResultPtr r(PQexec(raw, "SHOW work_mem"));
    PQsetnonblocking(raw, 1);
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "4MB");
}
