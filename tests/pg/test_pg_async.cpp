// The event-loop API (send, consume, result) against a real server, with poll() as the loop.

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pg_test_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {

// The test's event loop: one poll() over the connections' sockets (writable
// too while a statement is partly unsent), consume() on each that woke, until
// every answer is complete. Fails after 10 s. Returns how many wake-ups found
// a statement still partly unsent.
int await_answers(std::vector<pg::Connection*> pending) {
    int write_wakeups = 0;
    const auto until = Clock::now() + 10s;
    while (!pending.empty()) {
        if (Clock::now() >= until) FAIL("no complete answer within 10 s");
        std::vector<pollfd> fds;
        for (pg::Connection* c : pending) {
            REQUIRE(c->socket() >= 0);
            fds.push_back({c->socket(), static_cast<short>(POLLIN | (c->wants_write() ? POLLOUT : 0)), 0});
        }
        const int n = ::poll(fds.data(), fds.size(), 100);
        if (n < 0 && errno == EINTR) continue;
        REQUIRE(n >= 0);
        std::vector<pg::Connection*> still;
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].revents == 0) {
                still.push_back(pending[i]);
                continue;
            }
            if (pending[i]->wants_write()) ++write_wakeups;
            if (!pending[i]->consume()) still.push_back(pending[i]);
        }
        pending = std::move(still);
    }
    return write_wakeups;
}

}  // namespace

TEST_CASE("async: a parameterized point select returns its row, timed into the metrics", "[pg]") {
    ScratchTable t("id int PRIMARY KEY, name text");
    const auto cfg = config();
    const pg::Driver driver(cfg);
    auto c = driver.connect(Clock::now() + 10s);
    c.execute("INSERT INTO " + t.name() + " SELECT i, 'name ' || i FROM generate_series(1, 100) i");
    const auto timed_before = driver.query_time().count;

    c.send("SELECT id, name FROM " + t.name() + " WHERE id = $1", 42);
    CHECK_FALSE(c.wants_write());
    await_answers({&c});
    const pg::Result r = c.result();
    REQUIRE(r.rows() == 1);
    CHECK(r[0].get<int>(0) == 42);
    CHECK(r[0].get<std::string>(1) == "name 42");
    CHECK(driver.query_time().count == timed_before + 1);
    CHECK(c.query("SELECT $1::int + 1", 1).scalar<int>() == 2);  // the blocking API goes on after it
}

TEST_CASE("async: a failing statement throws its QueryError from result() and the session stays usable", "[pg]") {
    auto c = connect();
    const pg::Driver driver(config());

    SECTION("division by zero") {
        c.send("SELECT 1 / $1::int", 0);
        await_answers({&c});
        try {
            c.result();
            FAIL("no exception");
        } catch (const pg::ConnectionLost&) {
            FAIL("ConnectionLost for a statement error");
        } catch (const pg::QueryError& e) {
            CHECK(e.sqlstate() == "22012");
            CHECK_THAT(std::string(e.what()), Catch::Contains("division by zero") && Catch::Contains("22012"));
        }
    }
    SECTION("syntax error") {
        c.send("SELEC $1::int", 1);
        await_answers({&c});
        try {
            c.result();
            FAIL("no exception");
        } catch (const pg::QueryError& e) {
            CHECK(e.sqlstate() == "42601");
        }
    }
    CHECK_FALSE(c.must_evict());
    CHECK(driver.is_usable(c));
    c.send("SELECT $1::int * 2", 21);
    await_answers({&c});
    CHECK(c.result().scalar<int>() == 42);
}

TEST_CASE("async: two connections with statements in flight at once both complete", "[pg]") {
    auto a = connect();
    auto b = connect();
    a.send("SELECT pg_sleep(0.2), $1::int", 1);
    b.send("SELECT pg_sleep(0.2), $1::int", 2);
    await_answers({&a, &b});
    const pg::Result ra = a.result(), rb = b.result();
    REQUIRE(ra.rows() == 1);
    REQUIRE(rb.rows() == 1);
    CHECK(ra[0].get<int>(1) == 1);
    CHECK(rb[0].get<int>(1) == 2);
}

TEST_CASE("async: send() while a statement is in flight throws, and the first one's result still comes", "[pg]") {
    auto c = connect();
    c.send("SELECT pg_sleep(0.1), $1::int", 7);
    try {
        c.send("SELECT $1::int", 8);
        FAIL("no exception");
    } catch (const pg::ConnectionLost&) {
        FAIL("ConnectionLost: the session is fine");
    } catch (const pg::QueryError& e) {
        CHECK(e.sqlstate() == "55000");
        CHECK_THAT(std::string(e.what()), Catch::Contains("still in flight"));
    }
    CHECK_THROWS_AS(c.query("SELECT 1"), pg::QueryError);  // the blocking API waits its turn too
    CHECK_FALSE(c.must_evict());
    await_answers({&c});
    CHECK(c.result()[0].get<int>(1) == 7);
    CHECK_FALSE(c.must_evict());
    CHECK(c.query("SELECT $1::int", 9).scalar<int>() == 9);
}

TEST_CASE("async: usable() is false while a statement is in flight and true after result()", "[pg]") {
    auto c = connect();
    REQUIRE(c.usable());
    c.send("SELECT pg_sleep(0.05), $1::int", 3);
    CHECK_FALSE(c.usable());
    CHECK(c.transaction_status() == PQTRANS_ACTIVE);
    await_answers({&c});
    CHECK_FALSE(c.usable());  // read to the end, but its result is not taken yet
    CHECK(c.result()[0].get<int>(1) == 3);
    CHECK(c.usable());
}

TEST_CASE("async: a statement larger than the socket buffer goes out through wants_write() and consume()", "[pg]") {
    auto c = connect();
    // A loopback socket's send buffer grows to megabytes on its own: pin it small, so that 4 MB cannot go at once.
    const int send_buffer = 64 * 1024;
    REQUIRE(::setsockopt(c.socket(), SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer) == 0);
    const std::string big(4u << 20, 'x');
    c.send("SELECT length($1::text)", big);
    REQUIRE(c.wants_write());
    CHECK(await_answers({&c}) > 0);
    CHECK_FALSE(c.wants_write());
    CHECK(c.result().scalar<std::int64_t>() == static_cast<std::int64_t>(big.size()));
    CHECK(c.usable());
}

TEST_CASE("async: a PgPool serves async_acquire in order on one event loop, within its max", "[pg]") {
    auto cfg = config();
    cfg.pool.min_size = 4;
    cfg.pool.max_size = 4;
    cfg.pool.acquire_timeout = 10s;
    reservoir::PgPool pool(cfg);
    REQUIRE(eventually([&] { return pool.stats().idle == 4; }));

    // 40 requests, each doubling its number; a callback sends the statement
    // on the lease it is handed. Callbacks run on this thread (at once, or on
    // a release below) or on a pool worker (one that pinged for it): hence the lock.
    constexpr int requests = 40;
    struct Request {
        reservoir::PgPool::Lease lease;
        std::exception_ptr error;
    };
    std::mutex mu;
    std::vector<Request> got(requests);
    std::vector<int> served;  // in the order handed a connection
    for (int i = 0; i < requests; ++i) {
        pool.async_acquire([&, i](reservoir::PgPool::Lease lease, std::exception_ptr error) {
            if (lease) lease->send("SELECT $1::int * 2", i);
            std::lock_guard lk(mu);
            got[static_cast<std::size_t>(i)] = {std::move(lease), std::move(error)};
            served.push_back(i);
        });
    }
    CHECK(pool.stats().waiting == requests - 4);

    int answered = 0;
    const auto until = Clock::now() + 20s;
    while (answered < requests) {
        REQUIRE(Clock::now() < until);
        std::vector<pg::Connection*> in_flight;
        std::vector<int> who;
        {
            std::lock_guard lk(mu);
            for (int i = 0; i < requests; ++i) {
                auto& r = got[static_cast<std::size_t>(i)];
                REQUIRE_FALSE(r.error);
                if (r.lease) {
                    in_flight.push_back(&*r.lease);
                    who.push_back(i);
                }
            }
        }
        REQUIRE(!in_flight.empty());
        CHECK(in_flight.size() <= 4);
        await_answers(in_flight);
        for (const int i : who) {
            reservoir::PgPool::Lease lease;
            {
                std::lock_guard lk(mu);
                lease = std::move(got[static_cast<std::size_t>(i)].lease);
            }
            CHECK(lease->result().scalar<int>() == 2 * i);
            ++answered;
            // Returned outside the lock: the release may run the next request's callback on this thread.
            lease.release();
        }
    }
    std::vector<int> in_order(requests);
    for (int i = 0; i < requests; ++i) in_order[static_cast<std::size_t>(i)] = i;
    std::lock_guard lk(mu);
    CHECK(served == in_order);
    const auto st = pool.stats();
    CHECK(st.waiting == 0);
    CHECK(st.total == 4);
    CHECK(st.connects == 4);  // every request on the pool's 4 connections
}
