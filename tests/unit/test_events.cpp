// Events, leak detection and latency histograms.

#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace std::chrono_literals;
using reservoir::EventKind;

namespace {

struct Recorded {
    EventKind kind;
    std::chrono::nanoseconds elapsed;
    std::string message;
    std::string file;
    unsigned line;
};

class Recorder final : public reservoir::EventListener {
public:
    void on_event(const reservoir::Event& e) noexcept override {
        std::lock_guard lk(mu_);
        events_.push_back({e.kind, e.elapsed, std::string(e.message), e.where.file, e.where.line});
    }
    std::vector<Recorded> of(EventKind kind) const {
        std::lock_guard lk(mu_);
        std::vector<Recorded> out;
        for (const auto& e : events_)
            if (e.kind == kind) out.push_back(e);
        return out;
    }

private:
    mutable std::mutex mu_;
    std::vector<Recorded> events_;
};

}  // namespace

TEST_CASE("a lease held too long is reported once, with where it was acquired, and its late return",
          "[events][leak]") {
    test::ManualRig rig;
    auto recorder = std::make_shared<Recorder>();
    auto pool = rig.make({.min_size = 1, .max_size = 2, .listener = recorder, .leak_threshold = 5s});
    pool->maintain();

    const unsigned line = __LINE__ + 1;
    auto lease = pool->acquire();
    rig.clock.advance(4s);
    pool->maintain();
    CHECK(recorder->of(EventKind::leak).empty());

    rig.clock.advance(2s);
    pool->maintain();
    pool->maintain();  // once per lease, however often housekeeping runs
    const auto leaks = recorder->of(EventKind::leak);
    REQUIRE(leaks.size() == 1);
    CHECK(leaks[0].line == line);
    CHECK_THAT(leaks[0].file, Catch::EndsWith("test_events.cpp"));
    CHECK(leaks[0].elapsed >= 6s);
    CHECK(pool->stats().leaks == 1);

    rig.clock.advance(3s);
    lease.release();
    const auto returned = recorder->of(EventKind::leak_returned);
    REQUIRE(returned.size() == 1);
    CHECK(returned[0].elapsed >= 9s);
    CHECK(returned[0].line == line);

    auto again = pool->acquire();  // a new lease is a new clock
    rig.clock.advance(1s);
    pool->maintain();
    CHECK(recorder->of(EventKind::leak).size() == 1);
}

TEST_CASE("connects, failures, closes, timeouts and the breaker are reported", "[events]") {
    test::ManualRig rig;
    auto recorder = std::make_shared<Recorder>();
    auto pool = rig.make({.min_size = 1, .max_size = 1, .retry_initial = 1ms, .retry_max = 1ms,
                          .breaker_threshold = 1, .breaker_cooldown = 10ms, .listener = recorder});
    rig.server->fail_next_connects(1);
    pool->maintain();
    REQUIRE(recorder->of(EventKind::connect_failed).size() == 1);
    CHECK(recorder->of(EventKind::connect_failed)[0].message == "mock: connection refused");
    REQUIRE(recorder->of(EventKind::breaker_opened).size() == 1);
    CHECK(recorder->of(EventKind::breaker_opened)[0].message == "mock: connection refused");

    rig.clock.advance(10ms);
    pool->maintain();
    CHECK(recorder->of(EventKind::connected).size() == 1);
    CHECK(recorder->of(EventKind::breaker_closed).size() == 1);

    pool->acquire().discard();
    REQUIRE(recorder->of(EventKind::closed).size() == 1);
    CHECK(recorder->of(EventKind::closed)[0].message == "discarded");
}

TEST_CASE("an acquire timeout is reported with its wait", "[events]") {
    auto server = std::make_shared<reservoir::mock::Server>();
    auto recorder = std::make_shared<Recorder>();
    reservoir::MockPool pool(reservoir::mock::Driver(server), {.min_size = 1, .max_size = 1, .listener = recorder});
    auto held = pool.acquire();
    CHECK_THROWS_AS(pool.acquire(5ms), reservoir::AcquireTimeout);
    const auto timeouts = recorder->of(EventKind::acquire_timeout);
    REQUIRE(timeouts.size() == 1);
    CHECK(timeouts[0].elapsed >= 5ms);
    CHECK_THAT(timeouts[0].message, Catch::Contains("acquire timed out"));
}

TEST_CASE("stats carry acquire-wait, hold-time and connect-time histograms", "[stats]") {
    test::ManualRig rig;
    auto pool = rig.make({.min_size = 2, .max_size = 2});
    pool->maintain();
    for (int i = 0; i < 10; ++i) {
        auto lease = pool->acquire();
        rig.clock.advance(3ms);
    }
    const auto st = pool->stats();
    CHECK(st.acquire_wait.count == 10);
    CHECK(st.acquire_wait.max() == 0ns);  // all on the lock-free path
    CHECK(st.hold_time.count == 10);
    CHECK(st.hold_time.quantile(0.5) >= 3ms);
    CHECK(st.hold_time.max() == 3ms);
    CHECK(st.connect_time.count == 2);

    auto quiet = rig.make({.min_size = 1, .max_size = 1, .latency_histograms = false});
    quiet->acquire().release();
    CHECK(quiet->stats().hold_time.count == 0);
    CHECK(quiet->stats().acquire_wait.count == 0);
}

TEST_CASE("the stderr listener writes one line per enabled event", "[events]") {
    std::FILE* out = std::tmpfile();
    REQUIRE(out);
    reservoir::StderrListener listener({EventKind::leak, EventKind::slow_query}, out);
    listener.on_event({EventKind::connected, 1ms, "", {}});  // not enabled: dropped
    listener.on_event({EventKind::leak, 2s, "", {"file.cpp", 12, "main"}});
    listener.on_event({EventKind::slow_query, 1500ms, "SELECT pg_sleep($1)", {}});
    std::rewind(out);
    char buffer[512] = {};
    const std::size_t n = std::fread(buffer, 1, sizeof buffer - 1, out);
    std::fclose(out);
    CHECK(std::string(buffer, n) ==
          "reservoir: leak: lease acquired at file.cpp:12 (main) held for 2000.0 ms\n"
          "reservoir: slow_query: 1500.0 ms SELECT pg_sleep($1)\n");
}
