// transactions: pg::transaction(lease, fn) runs fn between BEGIN and COMMIT,
// or rolls back and rethrows when fn throws. Errors from the server arrive as
// pg::QueryError with the SQLSTATE, so a caller can tell a duplicate key
// (23505) from a timeout (57014) without parsing messages.
//
//   DATABASE_URL=postgresql://user@host/db reservoir-example-transactions

#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>

#include <reservoir/reservoir.hpp>

namespace pg = reservoir::pg;

int main() try {
    reservoir::PgPool pool(pg::Config::from_env());
    auto lease = pool.acquire();
    // A temporary table: the pool's session reset drops it when the lease returns.
    lease->execute("CREATE TEMP TABLE account (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))");
    lease->execute("INSERT INTO account VALUES (1, 100), (2, 0)");

    // 1. Commit: both updates or neither; fn's value is returned.
    const auto moved = pg::transaction(lease, [](pg::Connection& c) {
        c.query("UPDATE account SET balance = balance - $1 WHERE id = $2", 30, 1);
        c.query("UPDATE account SET balance = balance + $1 WHERE id = $2", 30, 2);
        return c.query("SELECT balance FROM account WHERE id = 2").scalar<std::int64_t>();
    });
    std::printf("committed: account 2 now holds %lld\n", static_cast<long long>(moved));

    // 2. Rollback on a C++ exception: the first update is undone.
    try {
        pg::transaction(lease, [](pg::Connection& c) {
            c.query("UPDATE account SET balance = 0 WHERE id = $1", 1);
            throw std::runtime_error("business rule says no");
        });
    } catch (const std::runtime_error& e) {
        std::printf("rolled back (%s): account 1 still holds %lld\n", e.what(),
                    static_cast<long long>(
                        lease->query("SELECT balance FROM account WHERE id = 1").scalar<std::int64_t>()));
    }

    // 3. Rollback on a server error, with its SQLSTATE.
    try {
        pg::transaction(lease, [](pg::Connection& c) {
            c.query("UPDATE account SET balance = balance + 1 WHERE id = 1");
            c.query("INSERT INTO account VALUES ($1, $2)", 2, 5);  // duplicate key
        });
    } catch (const pg::QueryError& e) {
        const bool duplicate = e.sqlstate() == pg::sqlstate::unique_violation;
        std::printf("rolled back: SQLSTATE %s%s\n  %s\n", e.sqlstate().c_str(), duplicate ? " (unique_violation)" : "",
                    e.what());
    }

    // 4. A statement over its client-side deadline is cancelled: SQLSTATE 57014.
    try {
        lease->query_for(std::chrono::milliseconds(100), "SELECT pg_sleep(5)");
    } catch (const pg::QueryError& e) {
        std::printf("timed out: SQLSTATE %s, connection still usable: %s\n", e.sqlstate().c_str(),
                    lease->usable() ? "yes" : "no");
    }

    const auto total = lease->query("SELECT sum(balance) FROM account").scalar<std::int64_t>();
    std::printf("total balance %lld (must be 100)\n", static_cast<long long>(total));
    lease.release();
    pool.shutdown(std::chrono::seconds(5));
    return total == 100 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "transactions: %s\n", e.what());
    return 1;
}
