// basic_query: the smallest complete use of reservoir against PostgreSQL.
// One pool from the environment, a lease, a parameterized query, typed
// columns, and the pool's figures at the end.
//
//   DATABASE_URL=postgresql://user@host/db reservoir-example-basic-query

#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include <reservoir/reservoir.hpp>

int main() try {
    // Settings from DATABASE_URL (or PGHOST/DB_* ...), pool sizes included.
    reservoir::PgPool pool(reservoir::pg::Config::from_env());

    {
        // Waits up to acquire_timeout for a connection; first come, first served.
        auto lease = pool.acquire();

        // $1 and $2 are sent as parameters, never spliced into the SQL text.
        auto result = lease->query(
            "SELECT g AS id, 'item ' || g AS name, g * 1.5 AS price, NULLIF(g % 3, 0) AS bucket "
            "FROM generate_series(1, $1) g WHERE g >= $2",
            5, 2);

        std::printf("%zu rows\n", result.rows());
        for (auto row : result) {
            // get<T>() checks the column's type and NULL; optional<T> reads NULL as nullopt.
            const auto id = row.get<std::int64_t>("id");
            const auto name = row.get<std::string>("name");
            const auto price = row.get<double>("price");
            const auto bucket = row.get<std::optional<int>>("bucket");
            std::printf("  id=%lld name=%s price=%.2f bucket=%s\n", static_cast<long long>(id), name.c_str(), price,
                        bucket ? std::to_string(*bucket).c_str() : "NULL");
        }

        // One value: scalar<T>() wants exactly one row.
        const auto version = lease->query("SELECT current_setting('server_version_num')::int").scalar<int>();
        std::printf("server version %d\n", version);
    }  // the lease goes back to the pool here

    const auto s = pool.stats();
    std::printf("pool: total=%zu idle=%zu in_use=%zu acquires=%llu connects=%llu\n", s.total, s.idle, s.in_use,
                static_cast<unsigned long long>(s.acquires), static_cast<unsigned long long>(s.connects));
    pool.shutdown(std::chrono::seconds(5));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "basic_query: %s\n", e.what());
    return 1;
}
