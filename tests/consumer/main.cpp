// A program outside the library that uses it as a user would: one PgPool from
// a URL, one query, its result printed. tests/consumer/run.sh builds it five
// ways (installed package, add_subdirectory, FetchContent, the single header, pkg-config).
//
//   consumer [postgresql://user:password@host/db]   (default: DATABASE_URL, DB_*)

#include <chrono>
#include <cstdio>
#include <exception>
#include <string>

#include <reservoir/reservoir.hpp>

int main(int argc, char** argv) try {
    auto config = argc > 1 ? reservoir::pg::Config::from_url(argv[1]) : reservoir::pg::Config::from_env();
    config.pool.min_size = 1;
    config.pool.max_size = 2;
    reservoir::PgPool pool(config);

    int answer = 0;
    std::string database;
    {
        auto lease = pool.acquire();
        auto result = lease->query("SELECT current_database() AS db, $1::int + 1 AS answer", 41);
        database = result.at(0).get<std::string>("db");
        answer = result.at(0).get<int>("answer");
    }
    std::printf("reservoir %s: database %s answered %d\n", RESERVOIR_VERSION_STRING, database.c_str(), answer);
    pool.shutdown(std::chrono::seconds(5));
    return answer == 42 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
}
