// pg::transaction: commit, rollback, failed commit, nesting.

#include <cstdint>
#include <stdexcept>
#include <string>

#include "pg_test_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {
std::int64_t count_rows(pg::Connection& c, const ScratchTable& t) {
    return c.query("SELECT count(*) FROM " + t.name()).scalar<std::int64_t>();
}
}  // namespace

TEST_CASE("transaction commits when fn returns, and returns its value", "[pg]") {
    ScratchTable t("id int PRIMARY KEY");
    auto c = connect();
    const auto id = pg::transaction(c, [&](pg::Connection& tx) {
        CHECK(tx.transaction_status() == PQTRANS_INTRANS);
        return tx.query("INSERT INTO " + t.name() + " VALUES ($1) RETURNING id", 5).scalar<std::int64_t>();
    });
    CHECK(id == 5);
    CHECK(c.transaction_status() == PQTRANS_IDLE);
    auto other = connect();
    CHECK(count_rows(other, t) == 1);  // committed: visible to another session
}

TEST_CASE("transaction rolls back and rethrows when fn throws", "[pg]") {
    ScratchTable t("id int PRIMARY KEY");
    auto c = connect();
    CHECK_THROWS_WITH(pg::transaction(c,
                                      [&](pg::Connection& tx) {
                                          tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 1);
                                          throw std::runtime_error("changed my mind");
                                      }),
                      "changed my mind");
    CHECK(c.transaction_status() == PQTRANS_IDLE);
    CHECK(count_rows(c, t) == 0);

    // A failing statement inside: its QueryError comes out, and nothing is kept.
    CHECK_THROWS_AS(pg::transaction(c,
                                    [&](pg::Connection& tx) {
                                        tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 2);
                                        tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 2);
                                    }),
                    pg::QueryError);
    CHECK(c.transaction_status() == PQTRANS_IDLE);
    CHECK(count_rows(c, t) == 0);
}

TEST_CASE("a COMMIT that cannot commit throws", "[pg]") {
    ScratchTable t("id int PRIMARY KEY");
    auto c = connect();

    SECTION("the transaction failed and fn swallowed the error") {
        try {
            pg::transaction(c, [&](pg::Connection& tx) {
                tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 1);
                try {
                    tx.query("SELECT 1/0");
                } catch (const pg::QueryError&) {
                }
            });
            FAIL("no exception");
        } catch (const pg::QueryError& e) {
            CHECK(e.sqlstate() == "25P02");
            CHECK_THAT(std::string(e.what()), Catch::Contains("COMMIT failed"));
        }
    }
    SECTION("a deferred constraint fails at COMMIT") {
        c.execute("ALTER TABLE " + t.name() +
                  " DROP CONSTRAINT " + t.name() + "_pkey, ADD UNIQUE (id) DEFERRABLE INITIALLY DEFERRED");
        try {
            pg::transaction(c, [&](pg::Connection& tx) {
                tx.query("INSERT INTO " + t.name() + " VALUES ($1), ($1)", 3);
            });
            FAIL("no exception");
        } catch (const pg::QueryError& e) {
            CHECK(e.sqlstate() == "23505");
        }
    }
    CHECK(c.transaction_status() == PQTRANS_IDLE);
    CHECK(count_rows(c, t) == 0);
}

TEST_CASE("a nested transaction is a savepoint", "[pg]") {
    ScratchTable t("id int PRIMARY KEY");
    auto c = connect();
    pg::transaction(c, [&](pg::Connection& tx) {
        tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 1);
        CHECK_THROWS_AS(pg::transaction(tx,
                                        [&] {
                                            tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 2);
                                            tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 1);  // duplicate
                                        }),
                        pg::QueryError);
        CHECK(tx.transaction_status() == PQTRANS_INTRANS);  // the outer one goes on
        pg::transaction(tx, [&] { tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 3); });
    });
    auto r = c.query("SELECT string_agg(id::text, ',' ORDER BY id) FROM " + t.name());
    CHECK(r.scalar<std::string>() == "1,3");
}

TEST_CASE("transaction takes a pool lease", "[pg]") {
    ScratchTable t("id int PRIMARY KEY");
    auto cfg = config();
    cfg.pool.min_size = 0;
    cfg.pool.max_size = 1;
    reservoir::PgPool pool(cfg);
    auto lease = pool.acquire();
    pg::transaction(lease, [&](pg::Connection& tx) { tx.query("INSERT INTO " + t.name() + " VALUES (1)"); });
    CHECK(count_rows(*lease, t) == 1);
}

TEST_CASE("a callback that ends the transaction itself makes transaction throw instead of reporting success", "[pg]") {
    ScratchTable t("id int PRIMARY KEY");
    auto c = connect();
    const auto ended_itself = [](const pg::QueryError& e, const char* what) {
        CHECK(e.kind() == reservoir::ErrorKind::query);
        CHECK(e.sqlstate() == "2D000");
        CHECK_THAT(std::string(e.what()), Catch::Contains(std::string("the callback ended the ") + what + " itself"));
    };

    SECTION("ROLLBACK: its work is gone, and the caller is told") {
        try {
            pg::transaction(c, [&](pg::Connection& tx) {
                tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 1);
                tx.execute("ROLLBACK");
            });
            FAIL("no exception");
        } catch (const pg::QueryError& e) {
            ended_itself(e, "transaction");
        }
        CHECK(count_rows(c, t) == 0);
    }
    SECTION("COMMIT: what it ran before stays committed, and the caller is told") {
        try {
            pg::transaction(c, [&](pg::Connection& tx) {
                tx.query("INSERT INTO " + t.name() + " VALUES ($1)", 1);
                tx.execute("COMMIT");
            });
            FAIL("no exception");
        } catch (const pg::QueryError& e) {
            ended_itself(e, "transaction");
        }
        CHECK(count_rows(c, t) == 1);
    }
    SECTION("nested: the callback ended the enclosing transaction") {
        try {
            pg::transaction(c, [&](pg::Connection& outer) {
                outer.query("INSERT INTO " + t.name() + " VALUES ($1)", 1);
                pg::transaction(outer, [&](pg::Connection& inner) { inner.execute("ROLLBACK"); });
            });
            FAIL("no exception");
        } catch (const pg::QueryError& e) {
            ended_itself(e, "enclosing transaction");
        }
        CHECK(count_rows(c, t) == 0);
    }
    CHECK(c.transaction_status() == PQTRANS_IDLE);
    CHECK_FALSE(c.must_evict());
    CHECK(c.query("SELECT 1").scalar<int>() == 1);
}
