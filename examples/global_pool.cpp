// global_pool: many clients, one pool. Components that would each have built
// their own pool (five pools of 20 against a server limit of 100) all borrow
// from the process-wide reservoir::global<PgPool> instead, initialized once in
// main(). The server never sees more than max_size connections from us.
//
//   DATABASE_URL=postgresql://user@host/db reservoir-example-global-pool

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <reservoir/reservoir.hpp>

using Db = reservoir::global<reservoir::PgPool>;

// Three "modules", written separately: none owns a pool, none is handed one.
class UserDirectory {
public:
    std::string name_of(int id) {
        auto lease = Db::get().acquire();
        return lease->query("SELECT 'user-' || $1::int", id).scalar<std::string>();
    }
};

class AuditLog {
public:
    void record(const std::string& what) {
        auto lease = Db::get().acquire();
        lease->query("SELECT length($1)", what);  // stands in for an INSERT
    }
};

class Reports {
public:
    std::int64_t daily_total() {
        auto lease = Db::get().acquire();
        return lease->query("SELECT sum(g) FROM generate_series(1, 100) g").scalar<std::int64_t>();
    }
};

int main() try {
    // Once, at startup: from DATABASE_URL, capped at 5 connections.
    auto config = reservoir::pg::Config::from_env();
    config.pool.min_size = 1;
    config.pool.max_size = 5;
    Db::init(config);

    // 30 request threads using all three modules at once.
    std::vector<std::thread> requests;
    std::atomic<int> failures{0};
    for (int i = 0; i < 30; ++i)
        requests.emplace_back([i, &failures] {
            try {
                UserDirectory users;
                AuditLog audit;
                Reports reports;
                const auto name = users.name_of(i);
                audit.record("viewed " + name);
                if (reports.daily_total() != 5050) ++failures;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "request %d: %s\n", i, e.what());
                ++failures;
            }
        });
    for (auto& t : requests) t.join();

    const auto s = Db::get().stats();
    std::printf("90 borrows from 3 modules; connections opened: %llu (max_size %zu); failures: %d\n",
                static_cast<unsigned long long>(s.connects), s.max, failures.load());
    Db::get().shutdown(std::chrono::seconds(5));
    Db::reset();  // at the very end of main: destroys the pool
    return failures == 0 && s.total <= 5 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "global_pool: %s\n", e.what());
    return 1;
}
