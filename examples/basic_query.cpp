// basic_query: the smallest complete use of reservoir against PostgreSQL.
// One pool from the environment, a lease, a parameterized query, typed
// columns, and the pool's figures at the end. The README's quick start is the
// body of main() below, verbatim: change both together.
//
//   DATABASE_URL=postgresql://user@host/db reservoir-example-basic-query

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include <reservoir/reservoir.hpp>

int main() try {
    reservoir::PgPool pool(reservoir::pg::Config::from_env());  // DATABASE_URL or DB_*, pool sizes included
    {
        auto lease = pool.acquire();  // waits up to acquire_timeout; first come, first served
        // $1 is sent as a parameter, never spliced into the SQL text.
        auto result = lease->query(
            "SELECT g AS id, 'item ' || g AS name, NULLIF(g % 3, 0) AS bucket FROM generate_series(1, $1) g", 5);
        for (auto row : result) {  // get<T> checks the column's type; optional<T> reads NULL as nullopt
            const auto id = row.get<std::int64_t>("id");
            const auto name = row.get<std::string>("name");
            const auto bucket = row.get<std::optional<int>>("bucket");
            std::printf("id=%lld name=%s bucket=%d\n", static_cast<long long>(id), name.c_str(), bucket.value_or(0));
        }
    }  // the lease goes back to the pool here, rolled back if need be, its session reset
    std::printf("pool: total=%zu idle=%zu\n", pool.stats().total, pool.stats().idle);
    pool.shutdown(std::chrono::seconds(5));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "basic_query: %s\n", e.what());
    return 1;
}
