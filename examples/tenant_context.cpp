// tenant_context: row-level security by tenant. pg::with_tenant(pool, tenant, fn)
// runs fn in a transaction whose first statement sets app.current_tenant
// (transaction-local, sent as a parameter), so the table's RLS policy shows
// fn that tenant's rows only, and the setting ends with the transaction:
// the next borrower of the connection never inherits it.
//
//   DATABASE_URL=postgresql://user@host/db reservoir-example-tenant-context

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include <reservoir/reservoir.hpp>

namespace pg = reservoir::pg;

int main() try {
    reservoir::PgPool pool(pg::Config::from_env());
    const std::string table = "reservoir_example_notes_" + std::to_string(getpid());

    // A table under FORCE ROW LEVEL SECURITY (so even its owner is filtered): a
    // row is visible, and insertable, only for its own tenant; no tenant, no rows.
    pool.acquire()->execute(
        "CREATE TABLE " + table + " (id serial PRIMARY KEY, tenant_id text NOT NULL, body text);"
        "ALTER TABLE " + table + " ENABLE ROW LEVEL SECURITY;"
        "ALTER TABLE " + table + " FORCE ROW LEVEL SECURITY;"
        "CREATE POLICY by_tenant ON " + table +
        " USING (tenant_id = NULLIF(current_setting('app.current_tenant', true), ''))"
        " WITH CHECK (tenant_id = NULLIF(current_setting('app.current_tenant', true), ''))");

    const std::string insert =
        "INSERT INTO " + table + " (tenant_id, body) VALUES (current_setting('app.current_tenant'), $1)";
    const std::string count = "SELECT count(*) FROM " + table;
    pg::with_tenant(pool, "acme", [&](pg::Connection& c) {
        c.query(insert, "acme's first");
        c.query(insert, "acme's second");
    });
    pg::with_tenant(pool, "globex", [&](pg::Connection& c) { c.query(insert, "globex's only"); });

    // An exception inside: the transaction, its insert and its tenant setting are all rolled back.
    try {
        pg::with_tenant(pool, "globex", [&](pg::Connection& c) {
            c.query(insert, "never stored");
            throw std::runtime_error("validation failed");
        });
    } catch (const std::runtime_error& e) {
        std::printf("globex's third insert rolled back: %s\n", e.what());
    }

    const auto count_for = [&](const char* tenant) {
        return pg::with_tenant(pool, tenant, [&](pg::Connection& c) { return c.query(count).scalar<std::int64_t>(); });
    };
    const auto acme = count_for("acme"), globex = count_for("globex");
    std::int64_t nobody = 0;
    std::string leftover;
    {
        auto lease = pool.acquire();  // outside with_tenant: no tenant set, so RLS shows nothing
        nobody = lease->query(count).scalar<std::int64_t>();
        leftover =
            lease->query("SELECT coalesce(current_setting('app.current_tenant', true), '')").scalar<std::string>();
        lease->execute("DROP TABLE " + table);
    }
    std::printf("rows seen: acme %lld, globex %lld, no tenant %lld; tenant setting outside: '%s'\n",
                static_cast<long long>(acme), static_cast<long long>(globex), static_cast<long long>(nobody),
                leftover.c_str());
    pool.shutdown(std::chrono::seconds(5));
    return acme == 2 && globex == 1 && nobody == 0 && leftover.empty() ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "tenant_context: %s\n", e.what());
    return 1;
}
