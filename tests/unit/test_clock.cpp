// How each clock bounds the pool's sleeps (Clock::wake_time, core/clock.hpp),
// checked as a pure function of (now, deadline): no pool, no threads.

#include <chrono>

#include <catch2/catch.hpp>

#include <reservoir/reservoir.hpp>

using namespace std::chrono_literals;
using reservoir::duration;
using reservoir::time_point;

namespace {

// A user's clock on its own time base that says nothing about sleeping.
struct PlainClock {
    time_point now() const noexcept { return time_point(1000h); }
    time_point coarse_now() const noexcept { return now(); }
};

// A user's clock that sleeps its own way.
struct OwnWakeClock {
    time_point now() const noexcept { return time_point(1000h); }
    time_point coarse_now() const noexcept { return now(); }
    time_point wake_time(time_point, time_point deadline) const noexcept { return deadline + 7s; }
};

static_assert(reservoir::Clock<PlainClock> && reservoir::Clock<OwnWakeClock>);

// The wake time lies within [steady now before, steady now after + bound].
template <class C>
void check_polls(const C& clock, duration ahead, duration bound) {
    const time_point now = clock.now();
    const auto before = std::chrono::steady_clock::now();
    const time_point wake = reservoir::wake_time(clock, now, now + ahead);
    const auto after = std::chrono::steady_clock::now();
    CHECK(wake >= before + bound);
    CHECK(wake <= after + bound);
}

}  // namespace

TEST_CASE("SteadyClock sleeps to the deadline itself, capped at an hour", "[clock]") {
    const reservoir::SteadyClock clock;
    const time_point now = clock.now();
    struct Row {
        time_point deadline;
        time_point wake;
    };
    const Row rows[] = {
        {now + 5ms, now + 5ms},
        {now + 59min, now + 59min},
        {now + 1h, now + 1h},
        {now + 2h, now + 1h},
        {time_point::max(), now + 1h},  // "never": no overflow
        {now - 1s, now - 1s},           // past: wakes at once
    };
    for (const Row& r : rows) {
        CAPTURE((r.deadline - now).count());
        CHECK(reservoir::wake_time(clock, now, r.deadline) == r.wake);
    }
}

TEST_CASE("ManualClock and a clock without wake_time poll every millisecond of real time", "[clock]") {
    struct Row {
        duration ahead;
        duration bound;  // how far past the real now the wait may last
    };
    const Row rows[] = {{1h, 1ms}, {duration::max() / 2, 1ms}, {1ms, 1ms}, {300us, 300us}, {0ms, 0ms}};
    for (const Row& r : rows) {
        CAPTURE(r.ahead.count());
        check_polls(reservoir::ManualClock{}, r.ahead, r.bound);
        check_polls(PlainClock{}, r.ahead, r.bound);
    }
}

TEST_CASE("A clock's own wake_time is the one the pool uses", "[clock]") {
    const OwnWakeClock clock;
    const time_point now = clock.now();
    CHECK(reservoir::wake_time(clock, now, now + 1s) == now + 8s);
}
