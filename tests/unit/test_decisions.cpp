// The engine's pure decisions: connects wanted, the circuit breaker, the
// connect state, housekeeping verdicts, the worker's schedule, the job list,
// the references that keep the state alive, and the texts of errors.
// Single-threaded, no clock: each test gives the time.

#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include <reservoir/core/detail/decisions.hpp>
#include <reservoir/core/detail/lifetime.hpp>
#include <reservoir/core/detail/workers.hpp>

using namespace std::chrono_literals;
using reservoir::BreakerState;
using reservoir::duration;
using reservoir::time_point;
using namespace reservoir::detail;

namespace {

const time_point t0 = time_point(1000h);
constexpr time_point never = time_point::max();

}  // namespace

TEST_CASE("need_connect: when the pool dials", "[decisions]") {
    struct Row {
        const char* rule;
        ConnectInputs in;
        BreakerState breaker;
        duration backoff_left;  // retry_at - now
        bool expected;
    };
    // live, connecting, waiting, retrying, min, max, max_connecting, closing
    // clang-format off
    const Row rows[] = {
        {"a waiter with no connect in flight gets one", {2, 0, 1, 0, 0, 10, 2, false}, BreakerState::closed, 0ms, true},
        {"no waiter and min reached: nothing to dial", {2, 0, 0, 0, 2, 10, 2, false}, BreakerState::closed, 0ms, false},
        {"below min a connect is wanted anyway", {1, 0, 0, 0, 2, 10, 2, false}, BreakerState::closed, 0ms, true},
        {"connects in flight count toward min", {1, 1, 0, 0, 2, 10, 2, false}, BreakerState::closed, 0ms, false},
        {"as many connects in flight as waiters", {2, 2, 2, 0, 0, 10, 3, false}, BreakerState::closed, 0ms, false},
        {"more waiters than connects in flight: one", {2, 1, 2, 0, 0, 10, 3, false}, BreakerState::closed, 0ms, true},
        {"waiters woken to claim an idle connection need no connect", {2, 0, 2, 2, 0, 10, 2, false},
         BreakerState::closed, 0ms, false},
        {"never beyond max_size, connects in flight included", {9, 1, 5, 0, 0, 10, 4, false}, BreakerState::closed, 0ms,
         false},
        {"never more than max_connecting at once", {0, 2, 5, 0, 0, 10, 2, false}, BreakerState::closed, 0ms, false},
        {"not before the backoff after a failure has passed", {0, 0, 1, 0, 0, 10, 2, false}, BreakerState::closed, 1ms,
         false},
        {"once the backoff has passed, at once", {0, 0, 1, 0, 0, 10, 2, false}, BreakerState::closed, 0ms, true},
        {"nothing is dialed while the breaker is open", {0, 0, 1, 0, 1, 10, 2, false}, BreakerState::open, 0ms, false},
        {"half-open, one probe starts at once, whatever the backoff", {0, 0, 1, 0, 0, 10, 2, false},
         BreakerState::half_open, 5s, true},
        {"half-open, only one probe at a time", {0, 1, 3, 0, 0, 10, 2, false}, BreakerState::half_open, 0ms, false},
        {"half-open, a pool below min probes without waiters", {0, 0, 0, 0, 1, 10, 2, false}, BreakerState::half_open,
         0ms, true},
        {"nothing is dialed once the pool is closing", {0, 0, 3, 0, 2, 10, 2, true}, BreakerState::closed, 0ms, false},
        // max read at each decision: resize() or a sizing policy of one's own
        {"at max, a waiter gets no connect", {10, 0, 1, 0, 0, 10, 2, false}, BreakerState::closed, 0ms, false},
        {"after a grow, the same waiter gets one", {10, 0, 1, 0, 0, 12, 2, false}, BreakerState::closed, 0ms, true},
        {"after a grow, one per waiter up to max_connecting", {10, 1, 3, 0, 0, 12, 3, false}, BreakerState::closed,
         0ms, true},
        {"after a grow, never beyond the new max", {11, 1, 3, 0, 0, 12, 3, false}, BreakerState::closed, 0ms, false},
        {"shrinking above max, no connect for waiters", {8, 0, 3, 0, 0, 5, 2, false}, BreakerState::closed, 0ms,
         false},
        {"shrinking above max, none for min either", {6, 1, 0, 0, 5, 5, 2, false}, BreakerState::closed, 0ms, false},
        {"shrunk back to max, still none", {5, 0, 3, 0, 0, 5, 2, false}, BreakerState::closed, 0ms, false},
        {"below a lowered max again, a waiter gets one", {4, 0, 3, 0, 0, 5, 2, false}, BreakerState::closed, 0ms,
         true},
        {"min raised: a connect without waiters", {2, 0, 0, 0, 4, 10, 2, false}, BreakerState::closed, 0ms, true},
    };
    // clang-format on
    for (const Row& row : rows) {
        SECTION(row.rule) { CHECK(need_connect(row.in, row.breaker, t0, t0 + row.backoff_left) == row.expected); }
    }
}

TEST_CASE("the breaker opens after threshold consecutive failures, and not before", "[decisions][breaker]") {
    Breaker b(3, 10s);
    CHECK(b.state(t0) == BreakerState::closed);
    CHECK(b.on_failure(t0) == Breaker::Trip::none);
    CHECK(b.on_failure(t0) == Breaker::Trip::none);
    CHECK(b.state(t0) == BreakerState::closed);
    CHECK(b.on_failure(t0 + 1s) == Breaker::Trip::opened);
    CHECK(b.state(t0 + 1s) == BreakerState::open);
    CHECK(b.trips() == 1);
    CHECK(b.consecutive_failures() == 3);
    CHECK(b.retry_in(t0 + 4s) == 7s);
}

TEST_CASE("a success resets the count of consecutive failures", "[decisions][breaker]") {
    Breaker b(3, 10s);
    b.on_failure(t0);
    b.on_failure(t0);
    CHECK_FALSE(b.on_success());  // it was closed: nothing to report
    CHECK(b.on_failure(t0) == Breaker::Trip::none);
    CHECK(b.state(t0) == BreakerState::closed);
}

TEST_CASE("an open breaker turns half-open by the clock alone, at the end of its cooldown", "[decisions][breaker]") {
    Breaker b(1, 10s);
    REQUIRE(b.on_failure(t0) == Breaker::Trip::opened);
    CHECK(b.state(t0 + 10s - 1ns) == BreakerState::open);
    CHECK(b.state(t0 + 10s) == BreakerState::half_open);
    CHECK(b.cooldown_end() == t0 + 10s);
    CHECK(b.retry_in(t0 + 11s) == 0s);
}

TEST_CASE("a failed probe re-opens the breaker for another cooldown, without counting a new trip",
          "[decisions][breaker]") {
    Breaker b(1, 10s);
    b.on_failure(t0);
    REQUIRE(b.state(t0 + 10s) == BreakerState::half_open);
    CHECK(b.on_failure(t0 + 10s) == Breaker::Trip::reopened);
    CHECK(b.state(t0 + 15s) == BreakerState::open);
    CHECK(b.state(t0 + 20s) == BreakerState::half_open);
    CHECK(b.trips() == 1);
}

TEST_CASE("a successful probe closes the breaker and says so", "[decisions][breaker]") {
    Breaker b(1, 10s);
    b.on_failure(t0);
    CHECK(b.on_success());
    CHECK(b.state(t0 + 1s) == BreakerState::closed);
    CHECK(b.consecutive_failures() == 0);
    CHECK(b.on_failure(t0 + 1s) == Breaker::Trip::opened);  // the next run of failures trips it again
    CHECK(b.trips() == 2);
}

TEST_CASE("a breaker with threshold 0 never opens", "[decisions][breaker]") {
    Breaker b(0, 10s);
    for (int i = 0; i < 100; ++i) CHECK(b.on_failure(t0) == Breaker::Trip::none);
    CHECK(b.state(t0) == BreakerState::closed);
    CHECK(b.trips() == 0);
}

namespace {

// A backoff of 100 ms a failure, that records what it was asked.
struct CountingBackoff {
    mutable unsigned failures = 0;
    mutable std::uint64_t random = 0;
    duration retry_delay(unsigned n, std::uint64_t r) const noexcept {
        failures = n;
        random = r;
        return std::chrono::duration_cast<duration>(n * 100ms);
    }
};

}  // namespace

TEST_CASE("a failed connect sets the backoff from the failures so far; a success clears it", "[decisions]") {
    ConnectState c(2, 10s);
    const CountingBackoff backoff;
    c.started();
    CHECK(c.failed(t0, "refused", backoff, 7) == Breaker::Trip::none);
    CHECK(backoff.failures == 1);
    CHECK(backoff.random == 7);
    CHECK(c.retry_at == t0 + 100ms);
    CHECK(c.last_error == "refused");
    CHECK(c.connecting == 0);
    c.started();
    CHECK(c.failed(t0 + 1s, "refused again", backoff, 8) == Breaker::Trip::opened);
    CHECK(backoff.failures == 2);
    CHECK(c.retry_at == t0 + 1s + 200ms);
    CHECK(c.failures == 2);
    c.started();
    CHECK(c.succeeded(5ms, true));  // it closed the breaker
    CHECK(c.retry_at == time_point{});
    CHECK(c.last_error.empty());
    CHECK(c.live == 1);
    CHECK(c.connects == 1);
    CHECK(c.connect_time.snapshot().count == 1);
    c.closed_one();
    CHECK(c.live == 0);
}

namespace {

// A health policy whose answers the test sets.
struct ScriptedHealth {
    bool retire_it = false;
    bool keepalive = false;
    bool retire(const reservoir::ConnectionInfo&, time_point) const noexcept { return retire_it; }
    bool keepalive_due(const reservoir::ConnectionInfo&, time_point) const noexcept { return keepalive; }
};

}  // namespace

TEST_CASE("housekeeping's verdict on one idle connection", "[decisions]") {
    struct Row {
        const char* rule;
        bool retire, keepalive;
        std::size_t live, min, max;  // open (live + connecting) = live here
        duration idle_for;
        std::optional<CloseReason> close;
        bool ping;
    };
    // clang-format off
    const Row rows[] = {
        {"a connection idle less than idle_timeout is kept", false, false, 5, 1, 10, 9s, std::nullopt, false},
        {"idle for idle_timeout above min, it is closed", false, false, 5, 1, 10, 10s, CloseReason::idle_timeout,
         false},
        {"idle for idle_timeout at min, it is kept", false, false, 1, 1, 10, 60s, std::nullopt, false},
        {"one the health policy retires is closed for its lifetime, even at min", true, false, 1, 1, 10, 0s,
         CloseReason::lifetime, false},
        {"retirement wins over idle reaping", true, false, 5, 1, 10, 60s, CloseReason::lifetime, false},
        {"a kept connection due a keepalive is pinged", false, true, 1, 1, 10, 60s, std::nullopt, true},
        {"a connection closed is not pinged as well", false, true, 5, 1, 10, 60s, CloseReason::idle_timeout, false},
        {"above a lowered max, even a fresh one at min is closed at once", false, false, 5, 5, 3, 0s,
         CloseReason::resized, false},
        {"above a lowered max, the size wins over the lifetime", true, true, 5, 1, 4, 0s, CloseReason::resized, false},
        {"at the lowered max, a fresh one is kept", false, false, 3, 3, 3, 0s, std::nullopt, false},
        {"at the lowered max, idle reaping above min still applies", false, false, 3, 1, 3, 10s,
         CloseReason::idle_timeout, false},
    };
    // clang-format on
    for (const Row& row : rows) {
        SECTION(row.rule) {
            const ScriptedHealth health{row.retire, row.keepalive};
            reservoir::ConnectionInfo info{};
            info.last_used = t0;
            const IdleVerdict v =
                idle_verdict(health, info, t0 + row.idle_for, row.live, row.live, row.min, row.max, 10s);
            CHECK(v.close == row.close);
            CHECK(v.keepalive == row.ping);
            CHECK(v.keep() == (!row.close && !row.ping));
        }
    }
}

TEST_CASE("an idle worker times out async waiters first, then housekeeps, else sleeps to the next deadline",
          "[decisions][workers]") {
    struct Row {
        const char* rule;
        duration async_due, housekeeping, retry_at, cooldown_end;  // from now; max() for none
        WorkerPlan::Step step;
        duration wake;  // from now, when it sleeps
    };
    static constexpr duration none = duration::max() / 2;
    // clang-format off
    const Row rows[] = {
        {"an async deadline passed: time out", 0ms, 0ms, none, none, WorkerPlan::time_out, 0ms},
        {"housekeeping due: housekeep", 5ms, 0ms, none, none, WorkerPlan::housekeep, 0ms},
        {"nothing due: sleep until housekeeping", none, 100ms, none, none, WorkerPlan::sleep, 100ms},
        {"an async deadline before housekeeping wakes it", 30ms, 100ms, none, none, WorkerPlan::sleep, 30ms},
        {"the end of a backoff wakes it to connect", none, 100ms, 20ms, none, WorkerPlan::sleep, 20ms},
        {"a backoff already over does not", none, 100ms, -5ms, none, WorkerPlan::sleep, 100ms},
        {"the end of an open breaker's cooldown wakes it to probe", none, 100ms, 50ms, 10ms, WorkerPlan::sleep, 10ms},
    };
    // clang-format on
    for (const Row& row : rows) {
        SECTION(row.rule) {
            const auto at = [](duration d) { return d == none ? never : t0 + d; };
            const WorkerPlan plan =
                plan_worker(t0, at(row.async_due), at(row.housekeeping), at(row.retry_at), at(row.cooldown_end));
            CHECK(plan.step == row.step);
            if (row.step == WorkerPlan::sleep) CHECK(plan.wake == t0 + row.wake);
        }
    }
}

TEST_CASE("the job list hands out the latest job first and never allocates past its slots", "[decisions][workers]") {
    int a = 0, b = 0;
    JobList<int> jobs(2);
    CHECK_FALSE(jobs.pop());
    jobs.push(a, JobList<int>::reset);
    jobs.push(b, JobList<int>::recheck);
    const auto first = jobs.pop();
    REQUIRE(first);
    CHECK(first->slot == &b);
    CHECK(first->kind == JobList<int>::recheck);
    CHECK(jobs.pop()->slot == &a);
    CHECK(jobs.empty());
}

TEST_CASE("the state is freed by the last reference: the Pool's, a release's, or a lease's once orphaned",
          "[decisions][lifetime]") {
    SECTION("the Pool alone") {
        References refs;
        CHECK(refs.drop());
    }
    SECTION("a release while the Pool lives holds its own") {
        References refs;
        refs.take();
        CHECK_FALSE(refs.drop());  // the release ends
        CHECK(refs.drop());        // the Pool ends
    }
    SECTION("once orphaned, a release holds its lease's reference, taken when the Pool went") {
        References refs;
        refs.orphan(2);            // two leases out
        CHECK_FALSE(refs.drop());  // the Pool's
        refs.take();               // no new reference: the lease's
        CHECK_FALSE(refs.drop());
        refs.take();
        CHECK(refs.drop());  // the last lease frees it
    }
}

TEST_CASE("error texts carry the wait, the pool's state and the last connect error", "[decisions][messages]") {
    const PoolPicture picture{3, 1, 2, 4, 1, 10, "connection refused"};
    const std::string pool = describe(picture);
    CHECK(pool ==
          "pool: total=3 idle=1 in_use=2 waiting=4 connecting=1 max=10; last connect error: connection refused");
    CHECK(describe({0, 0, 0, 0, 0, 5, ""}) == "pool: total=0 idle=0 in_use=0 waiting=0 connecting=0 max=5");
    CHECK(timeout_text(1500ms, pool) == "reservoir: acquire timed out after 1500 ms (" + pool + ")");
    CHECK(saturated_text(8, 8, pool) ==
          "reservoir: pool saturated: 8 acquirers already waiting (max_waiters = 8); " + pool);
    CHECK(unavailable_text(5, 2500ms, pool) ==
          "reservoir: pool unavailable: circuit breaker open after 5 consecutive connect failures; next attempt in "
          "2500 ms (" +
              pool + ")");
    CHECK(std::string(closed_text) == "reservoir: pool is closed (shutdown has begun)");
}

TEST_CASE("close reasons are named and counted one by one", "[decisions]") {
    const CloseReason reasons[] = {CloseReason::idle_timeout, CloseReason::lifetime,     CloseReason::broken,
                                   CloseReason::discarded,    CloseReason::reset_failed, CloseReason::evicted,
                                   CloseReason::shutdown,     CloseReason::resized};
    reservoir::CloseCounts counts;
    for (const CloseReason why : reasons) count_close(counts, why);
    CHECK(counts.total() == 8);
    CHECK(counts.evicted == 2);  // a shrink is counted with evict_all's closes
    CHECK(to_string(CloseReason::resized) == "resized");
    CHECK(counts.reset_failed == 1);
    CHECK(to_string(CloseReason::reset_failed) == "reset_failed");
    CHECK(to_string(CloseReason::shutdown) == "shutdown");
}
