// Read/write routing with reservoir::Router over two real servers: a primary
// and a replica (a second cluster, read-only as a standby is). A marker table
// holds "primary" on one and "replica" on the other, and every statement also
// returns inet_server_port(), so each answer says where it ran.
//
// Checked: reads run on the replica and writes on the primary (and the writes
// are found on the primary only); with the replica stopped, every read falls
// back to the primary, and the router's fallback counter shows each one;
// restarted, the replica takes the reads again.

#include <set>

#include <reservoir/app/router.hpp>

#include "fleet_support.hpp"

namespace {

using namespace fleet;
using Global = reservoir::global<reservoir::PgPool>;

constexpr int threads = 4;
constexpr auto fallback_bound = 3s;  // first read answered by the primary after the replica stopped
constexpr auto return_bound = 10s;   // first read answered by the replica after it restarted

// Both sides quick to give up on a dead server: a few failed connects open
// the breaker, and then a read falls back at once.
pg::Config side_config(const Server& s, const std::string& app) {
    auto c = pg::Config::from_url(s.url);
    c.application_name = app;
    c.pool.min_size = 1;  // the replica pool's own connect to min also probes a server that came back
    c.pool.max_size = 4;
    c.pool.acquire_timeout = 3s;
    c.pool.connect_timeout = 2s;
    c.pool.retry_initial = 20ms;
    c.pool.retry_max = 200ms;
    c.pool.breaker_threshold = 3;
    c.pool.breaker_cooldown = 500ms;
    return c;
}

struct Answer {
    std::string side;
    int port = 0;
};

struct Tally {
    std::map<std::string, std::size_t> sides;  // "primary", "replica", or "error: ..."
    std::set<int> ports;
    std::size_t errors = 0;
    std::string first_error;
};

// `per_thread` reads on each of `threads` threads at once.
Tally read_many(reservoir::Router<reservoir::PgPool>& router, int per_thread) {
    std::vector<Tally> tallies(threads);
    std::vector<std::thread> pool_threads;
    for (int t = 0; t < threads; ++t)
        pool_threads.emplace_back([&, t] {
            Tally& mine = tallies[static_cast<std::size_t>(t)];
            for (int i = 0; i < per_thread; ++i) {
                try {
                    auto lease = router.acquire_read();
                    const auto result = lease->query("SELECT name, inet_server_port() FROM routing_side");
                    const auto row = result[0];  // a Row reads from its Result: keep that alive
                    ++mine.sides[row.get<std::string>(0)];
                    mine.ports.insert(row.get<int>(1));
                } catch (const std::exception& e) {
                    ++mine.errors;
                    if (mine.first_error.empty()) mine.first_error = e.what();
                }
            }
        });
    for (auto& t : pool_threads) t.join();
    Tally all;
    for (const Tally& t : tallies) {
        for (const auto& [side, n] : t.sides) all.sides[side] += n;
        all.ports.insert(t.ports.begin(), t.ports.end());
        all.errors += t.errors;
        if (all.first_error.empty()) all.first_error = t.first_error;
    }
    return all;
}

Answer read_once(reservoir::Router<reservoir::PgPool>& router) {
    const auto result = router.acquire_read()->query("SELECT name, inet_server_port() FROM routing_side");
    return {result[0].get<std::string>(0), result[0].get<int>(1)};
}

// Global pools are process-wide: whatever happens, the next test finds none.
struct GlobalReset {
    GlobalReset() { Global::reset(); }
    ~GlobalReset() { Global::reset(); }
};

}  // namespace

TEST_CASE("routing: reads on the replica, writes on the primary, fallback while the replica is down",
          "[fleet][routing]") {
    const Server primary = server("routing-primary"), replica = server("routing-replica");
    const int primary_port = std::stoi(primary.port), replica_port = std::stoi(replica.port);

    // The marker table on each side; the write table on the primary only;
    // the replica read-only, as a standby is.
    set_read_only(replica, false);
    for (const auto& [s, name] : {std::pair{&primary, "primary"}, std::pair{&replica, "replica"}}) {
        auto c = connect(s->url);
        c.execute("DROP TABLE IF EXISTS routing_side, routing_writes");
        c.execute("CREATE TABLE routing_side (name text NOT NULL)");
        c.query("INSERT INTO routing_side VALUES ($1)", std::string(name));
    }
    connect(primary.url).execute("CREATE TABLE routing_writes (id int8 PRIMARY KEY, port int NOT NULL)");
    set_read_only(replica, true);

    GlobalReset globals;
    Global::init_named("primary", side_config(primary, "reservoir_routing_primary"));
    Global::init_named("replica", side_config(replica, "reservoir_routing_replica"));
    auto router = reservoir::Router<reservoir::PgPool>::from_global();

    // 1. Both up: reads on the replica, writes on the primary.
    const Tally up = read_many(router, 50);
    INFO("first read error: " << up.first_error);
    CHECK(up.errors == 0);
    CHECK(up.sides == std::map<std::string, std::size_t>{{"replica", threads * 50}});
    CHECK(up.ports == std::set<int>{replica_port});
    std::set<int> write_ports;
    for (std::int64_t id = 1; id <= 50; ++id)
        write_ports.insert(router.acquire_write()
                               ->query("INSERT INTO routing_writes VALUES ($1, inet_server_port()) RETURNING port", id)
                               .scalar<int>());
    CHECK(write_ports == std::set<int>{primary_port});
    CHECK(connect(primary.url).query("SELECT count(*) FROM routing_writes").scalar<std::int64_t>() == 50);
    // The replica has no such table: nothing was written there.
    CHECK(connect(replica.url).query("SELECT to_regclass('routing_writes') IS NULL").scalar<bool>());
    auto s = router.stats();
    CHECK(s.replica_reads == threads * 50);
    CHECK(s.fallback_reads == 0);
    CHECK(s.writes == 50);
    REQUIRE(s.replica);
    CHECK(s.replica->acquires == threads * 50);
    CHECK(s.primary.acquires == 50);

    // 2. The replica stops: reads fall back to the primary, none fails.
    const auto stopped = sandbox("stop", replica);
    REQUIRE(stopped.status == 0);
    const auto stop_done = Clock::now();
    const Answer first = read_once(router);
    const auto first_fallback = Clock::now() - stop_done;
    CHECK(first.side == "primary");
    CHECK(first.port == primary_port);
    const Tally down = read_many(router, 25);
    INFO("first read error while the replica was down: " << down.first_error);
    CHECK(down.errors == 0);
    CHECK(down.sides == std::map<std::string, std::size_t>{{"primary", threads * 25}});
    CHECK(router.acquire_write()->query("SELECT inet_server_port()").scalar<int>() == primary_port);
    const auto s_down = router.stats();
    CHECK(s_down.fallback_reads == 1 + threads * 25);  // every read of this phase, counted
    CHECK(s_down.replica_reads == s.replica_reads);
    REQUIRE(s_down.replica);
    CHECK(s_down.replica->connect_failures > 0);
    CHECK(s_down.replica->breaker_trips >= 1);
    CHECK(first_fallback <= fallback_bound);

    // 3. The replica comes back on its port: reads return to it.
    const auto started = sandbox("start", replica, "--keep-port");
    REQUIRE(started.status == 0);
    const auto start_done = Clock::now();
    std::optional<Clock::duration> back;
    while (Clock::now() - start_done < return_bound) {
        if (read_once(router).side == "replica") {
            back = Clock::now() - start_done;
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    const auto s_end = router.stats();
    report("routing: " + std::to_string(threads * 50) + " reads on the replica (port " + replica.port +
           "), 50 writes on the primary (port " + primary.port +
           "); replica stopped: first read answered by the primary after " + fixed(ms(first_fallback), 1) + "ms, " +
           std::to_string(threads * 25) +
           " more reads all on the primary, 0 errors; fallback_reads=" + std::to_string(s_down.fallback_reads) +
           " replica connect_failures=" + std::to_string(s_down.replica->connect_failures) +
           " breaker_trips=" + std::to_string(s_down.replica->breaker_trips) +
           "; replica restarted: reads back on it after " + (back ? fixed(ms(*back), 1) + "ms" : std::string("never")) +
           " (fallback_reads then " + std::to_string(s_end.fallback_reads) + ")");
    CHECK(back.has_value());
    CHECK(router.stats().replica_reads > s_down.replica_reads);

    set_read_only(replica, false);  // leave it writable for the next run's setup
}
