// tour: the README's first snippet, as a program. One process-wide pool from
// the environment, then a query, a transaction, a pipeline, an asynchronous
// acquire, the figures and a drain. The README's first block is the part of
// main() between the markers, verbatim but for the indent: change both together.
//
//   DATABASE_URL=postgresql://user@host/db reservoir-example-tour

#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <iostream>
#include <string>

#include <reservoir/reservoir.hpp>

namespace {

// The table the snippet reads, created (on a pool of its own) so that the
// snippet runs on an empty database.
void create_items() {
    reservoir::PgPool pool(reservoir::pg::Config::from_env());
    pool.acquire()->execute(
        "CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text NOT NULL, seen boolean NOT NULL DEFAULT false);"
        "INSERT INTO items (id, name) SELECT g, 'item ' || g FROM generate_series(1, 100) g ON CONFLICT DO NOTHING");
}

}  // namespace

int main() try {
    create_items();
    // README: begin
    using reservoir::PgPool;
    auto& pool = reservoir::global<PgPool>::init(reservoir::pg::Config::from_env());  // DATABASE_URL, DB_*

    {
        auto lease = pool.acquire();  // waits up to acquire_timeout, first come first served
        auto rows = lease->query("SELECT id, name FROM items WHERE id = $1", 42);  // a parameter, never spliced
        for (auto row : rows) std::cout << row.get<std::string>("name") << "\n";
    }  // back in the pool here, rolled back if need be, its session reset

    auto marked = reservoir::pg::transaction(pool.acquire(), [](reservoir::pg::Connection& c) {
        return c.query("UPDATE items SET seen = true WHERE NOT seen").affected_rows();
    });  // commits, or rolls back and rethrows

    auto names = reservoir::pg::pipeline(*pool.acquire(), [](reservoir::pg::Pipeline& p) {
        for (int id : {1, 2, 3}) p.query("SELECT name FROM items WHERE id = $1", id);
    });  // one round trip, all or nothing

    std::promise<std::int64_t> count;  // async_acquire never blocks: its callback runs once a connection is
    pool.async_acquire([&count](PgPool::Lease lease, std::exception_ptr error) {  // free, in the same queue
        if (error) return count.set_exception(error);  // an event loop would lease->send() here instead
        count.set_value(lease->query("SELECT count(*) FROM items").at(0).get<std::int64_t>(0));
    });

    auto s = pool.stats();  // gauges, counters and latency histograms: see "Statistics" below
    std::cout << marked << " marked, " << names.size() << " looked up, " << count.get_future().get() << " items, "
              << s.total << " connections, " << s.acquires << " acquires\n";
    std::cout << reservoir::to_prometheus(pool, {{"pool", "main"}});
    pool.shutdown(std::chrono::seconds(10));  // drain: stop acquires, wait for leases, close
    // README: end
    return 0;
} catch (const std::exception& e) {
    std::cerr << "tour: " << e.what() << "\n";
    return 1;
}
