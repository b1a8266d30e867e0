// Client-side statement deadlines while the socket never goes quiet: results
// that keep arriving, and a send that keeps moving.

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pg_test_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {

// About 300 MB of rows: reading them all takes many times the deadline (0.7 s
// at best on a loopback), and the server sends them as fast as we read, so
// data is waiting at every look at the socket.
constexpr const char* streaming_sql = "SELECT repeat('x', 1000) FROM generate_series(1, 300000)";

// A timed-out statement leaves its connection usable when the server
// confirmed the cancel within the grace, and marked to be closed otherwise:
// the message says which, and the connection agrees with it.
void check_after_timeout(pg::Connection& c, const pg::QueryError& e) {
    CHECK(e.sqlstate() == "57014");
    const std::string message = e.what();
    CHECK_THAT(message, Catch::Contains("timed out after"));
    if (message.find("it was cancelled on the server") != std::string::npos) {
        CHECK_FALSE(c.must_evict());
        CHECK(c.transaction_status() == PQTRANS_IDLE);
        CHECK(c.query("SELECT $1::int + 1", 41).scalar<int>() == 42);
    } else {
        CHECK_THAT(message, Catch::Contains("the connection will be closed"));
        CHECK(c.must_evict());
    }
}

// Stops a backend of our own sandbox (SIGSTOP, by its PID) for a scope, so
// that it reads nothing; it is resumed whatever the test does.
class StoppedBackend {
public:
    explicit StoppedBackend(int pid) : pid_(pid) { REQUIRE(::kill(pid_, SIGSTOP) == 0); }
    ~StoppedBackend() { ::kill(pid_, SIGCONT); }
    StoppedBackend(const StoppedBackend&) = delete;
    StoppedBackend& operator=(const StoppedBackend&) = delete;

private:
    int pid_;
};

}  // namespace

TEST_CASE("a socket wait past its deadline ends even when the socket is ready", "[pg]") {
    // What the result loop and the send loop each wait on at every turn: a
    // socket with data waiting (results streaming in) and room to write (a
    // server reading as fast as we send) must not keep them going.
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    REQUIRE(::write(fds[1], "x", 1) == 1);
    const auto past = Clock::now() - 1ms;
    CHECK(pg::detail::wait_socket(fds[0], POLLIN, past) == 0);
    CHECK(pg::detail::wait_socket(fds[0], POLLIN | POLLOUT, past) == 0);
    CHECK(pg::detail::wait_socket(fds[0], POLLIN, Clock::now() + 10s) == POLLIN);  // before it: ready at once
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("a statement that streams results past its deadline times out instead of returning them", "[pg]") {
    auto c = connect();
    // Several tries: before the deadline was checked on every turn, one in a
    // few timed out anyway, when a look at the socket found it momentarily empty.
    for (int attempt = 0; attempt < 3; ++attempt) {
        INFO("attempt " << attempt);
        if (c.must_evict()) c = connect();
        try {
            const auto rows = c.query_for(100ms, streaming_sql).size();
            FAIL("no timeout: all " << rows << " rows came back");
        } catch (const pg::QueryError& e) {
            check_after_timeout(c, e);
        }
    }
}

TEST_CASE("a reader slower than its server times out at the deadline although data is always waiting", "[pg]") {
    // The server sends 20000 notices at once and this client takes 200 us to
    // take each: every look at the socket past the deadline finds data, until
    // the statement is over some 4 s later. The statement has to time out
    // rather than succeed.
    auto c = connect();
    PQsetNoticeReceiver(
        c.native_handle(), [](void*, const PGresult*) { std::this_thread::sleep_for(200us); }, nullptr);
    try {
        c.query_for(100ms, "DO $$ BEGIN FOR i IN 1..20000 LOOP RAISE NOTICE 'notice %', i; END LOOP; END $$");
        FAIL("no timeout: the statement ran to its end");
    } catch (const pg::QueryError& e) {
        PQsetNoticeReceiver(c.native_handle(), pg::detail::drop_notice, nullptr);
        check_after_timeout(c, e);
    }
}

TEST_CASE("a statement whose send cannot finish times out at the deadline and its connection is closed", "[pg]") {
    // 64 MB of parameter to a backend that reads nothing: the socket buffers
    // fill and the send cannot end. A cancel cannot end it either (the
    // statement never reaches the server whole), so the connection is given up.
    auto c = connect();
    const std::string huge(64u << 20, 'x');
    {
        const StoppedBackend stopped(c.backend_pid());
        try {
            (void)c.query_for(100ms, "SELECT length($1)", huge);
            FAIL("no timeout");
        } catch (const pg::QueryError& e) {
            CHECK(e.sqlstate() == "57014");
            CHECK_THAT(std::string(e.what()),
                       Catch::Contains("timed out after") && Catch::Contains("the connection will be closed"));
        }
    }
    CHECK(c.must_evict());
    CHECK_FALSE(pg::Driver(config()).is_usable(c));
}
