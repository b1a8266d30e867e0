// Failover between two servers named in one conninfo:
//   host=127.0.0.1,127.0.0.1 port=A,B target_session_attrs=read-write
// A starts writable and B read-only (default_transaction_read_only = on, as a
// standby looks to libpq). Under a load of reads and writes, A is made
// read-only and then B writable. The application does nothing special: the
// first 25006 (read-only) error retires its connection, and the next
// connection opened, which lands on B because libpq skips the read-only A,
// retires every other one opened before it (pg::ServerEpoch).
//
// Checked: writes succeed again within `write_bound` of the demotion; every
// acknowledged write is found on the server that acknowledged it (and on no
// other), nothing unacknowledged is found; every read answers correctly and
// reads never stop for long; and after the switch writes land on B. The
// bounds add the slowest connect the pool made in the same run (twice: libpq
// may try A first): on a busy machine a server forks its backends late, and
// that is the machine's time, not the pool's.

#include <sys/stat.h>

#include <fstream>
#include <set>

#include "fleet_support.hpp"

namespace {

using namespace fleet;

constexpr int writers = 4, readers = 4;
constexpr auto write_bound = 3s;  // writes must be back within this of the demotion, plus two connects
constexpr auto read_gap_bound = 3s;  // plus two connects
constexpr const char* insert_sql = "INSERT INTO failover_log (id, worker) VALUES ($1, $2) RETURNING inet_server_port()";
constexpr auto pace = 2ms;  // between one worker's operations: a steady load that leaves the 2 cores room

struct Write {
    std::int64_t id = 0;
    Clock::time_point start, end;
    enum Outcome { acked, failed, unknown } outcome = failed;  // unknown: the connection broke mid-statement
    int port = 0;                                              // the server that acknowledged it
    bool read_only_error = false;                              // SQLSTATE 25006
    std::string error;
};

struct Read {
    Clock::time_point start, end;
    bool ok = false;
    int port = 0;
    std::string error;
};

std::set<std::int64_t> ids_on(const Server& s) {
    auto admin = connect(s.admin_url);
    std::set<std::int64_t> ids;
    for (auto row : admin.query("SELECT id FROM failover_log")) ids.insert(row.get<std::int64_t>(0));
    return ids;
}

}  // namespace

TEST_CASE("failover: writes move from A to B within the bound, no acknowledged write lost", "[fleet][failover]") {
    const Server a = server("failover-a"), b = server("failover-b");
    const int port_a = std::stoi(a.port), port_b = std::stoi(b.port);

    // A clean start: both writable, an empty table on each, then B read-only.
    for (const Server* s : {&a, &b}) {
        set_read_only(*s, false);
        auto c = connect(s->url);
        c.execute("DROP TABLE IF EXISTS failover_log");
        c.execute("CREATE TABLE failover_log (id int8 PRIMARY KEY, worker int NOT NULL)");
    }
    set_read_only(b, true);

    // One password per sandbox: libpq takes each host's from a passfile.
    const std::string passfile = a.dir + "/failover.pgpass";
    {
        std::ofstream out(passfile);
        out << "127.0.0.1:" << a.port << ":reservoir:reservoir:" << a.password << "\n"
            << "127.0.0.1:" << b.port << ":reservoir:reservoir:" << b.password << "\n";
    }
    REQUIRE(::chmod(passfile.c_str(), 0600) == 0);

    pg::Config cfg;
    cfg.host = "127.0.0.1,127.0.0.1";
    cfg.port = a.port + "," + b.port;
    cfg.dbname = "reservoir";
    cfg.user = "reservoir";
    cfg.target_session_attrs = "read-write";
    cfg.options.emplace_back("passfile", passfile);
    cfg.application_name = "reservoir_failover";
    cfg.pool.min_size = 4;
    cfg.pool.max_size = 8;
    cfg.pool.acquire_timeout = 5s;
    cfg.pool.connect_timeout = 3s;
    cfg.pool.retry_initial = 20ms;
    cfg.pool.retry_max = 200ms;
    cfg.pool.breaker_cooldown = 200ms;
    reservoir::PgPool pool(cfg);
    REQUIRE(pool.acquire(10s)->query("SELECT inet_server_port()").scalar<int>() == port_a);

    std::atomic<bool> stop{false}, acked_on_b{false};
    std::atomic<std::int64_t> next_id{1};
    std::vector<std::vector<Write>> writes(writers);
    std::vector<std::vector<Read>> reads(readers);
    std::vector<std::thread> threads;
    const auto run_limit = Clock::now() + 25s;  // stops by itself whatever happens
    for (int w = 0; w < writers; ++w)
        threads.emplace_back([&, w] {
            while (!stop.load() && Clock::now() < run_limit) {
                Write op;
                op.id = next_id.fetch_add(1);
                op.start = Clock::now();
                try {
                    auto lease = pool.acquire();
                    op.port = lease->query(insert_sql, op.id, w).scalar<int>();
                    op.outcome = Write::acked;
                    if (op.port == port_b) acked_on_b.store(true);
                } catch (const pg::QueryError& e) {  // the statement failed: not committed
                    op.error = e.what();
                    op.read_only_error = e.sqlstate() == pg::sqlstate::read_only_transaction;
                } catch (const pg::ConnectionLost& e) {
                    op.outcome = Write::unknown;
                    op.error = e.what();
                } catch (const std::exception& e) {  // acquire failed: nothing was sent
                    op.error = e.what();
                }
                op.end = Clock::now();
                writes[static_cast<std::size_t>(w)].push_back(op);
                std::this_thread::sleep_for(pace);
            }
        });
    for (int r = 0; r < readers; ++r)
        threads.emplace_back([&, r] {
            std::mt19937_64 rng(7 + static_cast<std::uint64_t>(r));
            std::uniform_int_distribution<std::int64_t> operand(-1'000'000, 1'000'000);
            while (!stop.load() && Clock::now() < run_limit) {
                Read op;
                const std::int64_t x = operand(rng), y = operand(rng);
                op.start = Clock::now();
                try {
                    auto lease = pool.acquire();
                    auto result = lease->query("SELECT $1::int8 * $2, inet_server_port()", x, y);
                    op.ok = result[0].get<std::int64_t>(0) == x * y;
                    op.port = result[0].get<int>(1);
                    if (!op.ok) op.error = "wrong answer";
                } catch (const std::exception& e) {
                    op.error = e.what();
                }
                op.end = Clock::now();
                reads[static_cast<std::size_t>(r)].push_back(op);
                std::this_thread::sleep_for(pace);
            }
        });

    // The switch: demote A, then promote B, each on an admin session opened beforehand.
    auto admin_a = connect(a.admin_url), admin_b = connect(b.admin_url);
    std::this_thread::sleep_for(1500ms);
    const auto demote_begin = Clock::now();
    set_system(admin_a, "default_transaction_read_only", "on");
    const auto demoted = Clock::now();
    set_system(admin_b, "default_transaction_read_only", "");
    const auto promoted = Clock::now();
    // The load runs on until B has acknowledged a write (or the run's limit),
    // then past the bound by a second, for the writes after it.
    while (!acked_on_b.load() && Clock::now() < run_limit) std::this_thread::sleep_for(10ms);
    const auto connect_allowance = 2 * std::chrono::duration_cast<Clock::duration>(pool.stats().connect_time.max());
    std::this_thread::sleep_until(std::max(Clock::now(), demoted + write_bound + connect_allowance) + 1s);
    stop.store(true);
    for (auto& t : threads) t.join();

    std::vector<Write> all_writes;
    for (auto& v : writes) all_writes.insert(all_writes.end(), v.begin(), v.end());
    std::vector<Read> all_reads;
    for (auto& v : reads) all_reads.insert(all_reads.end(), v.begin(), v.end());

    // Writes: when they came back.
    std::optional<Clock::time_point> first_ack_b, last_ack_a, last_failure_start;
    std::size_t acked_a = 0, acked_b = 0, failed = 0, read_only_errors = 0, unknown = 0;
    std::string first_error;
    for (const Write& w : all_writes) {
        if (w.outcome == Write::acked && w.port == port_a) {
            ++acked_a;
            if (!last_ack_a || w.end > *last_ack_a) last_ack_a = w.end;
        } else if (w.outcome == Write::acked && w.port == port_b) {
            ++acked_b;
            if (!first_ack_b || w.end < *first_ack_b) first_ack_b = w.end;
        } else {
            ++(w.outcome == Write::unknown ? unknown : failed);
            if (w.read_only_error) ++read_only_errors;
            if (first_error.empty()) first_error = w.error;
            if (!last_failure_start || w.start > *last_failure_start) last_failure_start = w.start;
        }
    }
    // Reads: errors, and the longest stretch without a read completing.
    std::vector<Clock::time_point> read_ends;
    std::size_t read_errors = 0, reads_after = 0;
    std::string first_read_error;
    for (const Read& r : all_reads) {
        if (!r.ok) {
            ++read_errors;
            if (first_read_error.empty()) first_read_error = r.error;
            continue;
        }
        read_ends.push_back(r.end);
        if (r.start > promoted) ++reads_after;
    }
    std::sort(read_ends.begin(), read_ends.end());
    Clock::duration max_read_gap{};
    for (std::size_t i = 1; i < read_ends.size(); ++i)
        max_read_gap = std::max(max_read_gap, read_ends[i] - read_ends[i - 1]);

    const auto since_demotion = [&](const std::optional<Clock::time_point>& t) {
        return t ? fixed(ms(*t - demoted), 1) + "ms" : std::string("none");
    };
    const auto s = pool.stats();
    report("failover: A demoted (" + fixed(ms(demoted - demote_begin), 1) + "ms), B promoted " +
           fixed(ms(promoted - demoted), 1) + "ms later; first write acknowledged by B " + since_demotion(first_ack_b) +
           " after the demotion; last failed write started " + since_demotion(last_failure_start) + "; last ack by A " +
           since_demotion(last_ack_a) + "; writes acked A=" + std::to_string(acked_a) +
           " B=" + std::to_string(acked_b) + " failed=" + std::to_string(failed) +
           " (25006: " + std::to_string(read_only_errors) + ") unknown=" + std::to_string(unknown) +
           "; reads=" + std::to_string(all_reads.size()) + " read_errors=" + std::to_string(read_errors) +
           " max_read_gap=" + fixed(ms(max_read_gap), 1) + "ms; pool connects=" + std::to_string(s.connects) +
           " retired=" + std::to_string(s.closes.discarded + s.closes.broken) + " connect_failures=" +
           std::to_string(s.connect_failures) + " connect_time p50=" + fixed(ms(s.connect_time.quantile(0.5)), 1) +
           "ms max=" + fixed(ms(s.connect_time.max()), 1) + "ms; bounds +" + fixed(ms(connect_allowance), 1) + "ms");
    INFO("first write error: " << first_error);
    INFO("first read error: " << first_read_error);

    // Writes came back, on B, within the bound; none failed after it.
    REQUIRE(first_ack_b.has_value());
    CHECK(*first_ack_b - demoted <= write_bound + connect_allowance);
    if (last_failure_start) CHECK(*last_failure_start - demoted <= write_bound + connect_allowance);
    CHECK(acked_a > 0);
    CHECK(acked_b > 0);
    CHECK(unknown == 0);
    // A acknowledged nothing that started well after its demotion (a backend
    // applies the reload before its next statement; 1 s covers the signal).
    std::size_t late_on_a = 0, after_bound = 0, after_bound_not_on_b = 0;
    for (const Write& w : all_writes) {
        if (w.outcome == Write::acked && w.port == port_a && w.start >= demoted + 1s) ++late_on_a;
        // Every write that started after the bound went to B and succeeded.
        if (w.start > demoted + write_bound + connect_allowance) {
            ++after_bound;
            if (w.outcome != Write::acked || w.port != port_b) ++after_bound_not_on_b;
        }
    }
    CHECK(late_on_a == 0);
    CHECK(after_bound > 0);
    CHECK(after_bound_not_on_b == 0);

    // No wrong results: each acknowledged write is on the server that
    // acknowledged it and not on the other; nothing else is anywhere.
    const auto on_a = ids_on(a), on_b = ids_on(b);
    std::size_t misplaced = 0, phantom = 0;
    std::set<std::int64_t> acked_ids, maybe_ids;
    for (const Write& w : all_writes) {
        if (w.outcome == Write::acked) {
            acked_ids.insert(w.id);
            const bool in_a = on_a.contains(w.id), in_b = on_b.contains(w.id);
            if (!(w.port == port_a ? in_a && !in_b : in_b && !in_a)) ++misplaced;
        } else if (w.outcome == Write::unknown) {
            maybe_ids.insert(w.id);
        }
    }
    for (const auto* ids : {&on_a, &on_b})
        for (const auto id : *ids)
            if (!acked_ids.contains(id) && !maybe_ids.contains(id)) ++phantom;
    CHECK(misplaced == 0);
    CHECK(phantom == 0);
    CHECK(on_a.size() + on_b.size() >= acked_ids.size());

    // Reads continued throughout, all correct.
    CHECK(read_errors == 0);
    CHECK(max_read_gap <= read_gap_bound + connect_allowance);
    CHECK(reads_after > 0);

    // And the pool now writes to B.
    CHECK(pool.acquire()->query(insert_sql, next_id.fetch_add(1), -1).scalar<int>() == port_b);
    pool.shutdown(5s);
    set_read_only(a, false);  // leave both writable for the next run
}
