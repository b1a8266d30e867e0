#pragma once
// Clocks. The pool reads time through a Clock object so that tests can drive
// idle timeouts, lifetimes, backoff and the breaker without sleeping.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <ctime>
#include <memory>

namespace reservoir {

using time_point = std::chrono::steady_clock::time_point;
using duration = std::chrono::steady_clock::duration;

// A Clock gives the precise time (deadlines, waits) and a cheap coarse time
// (timestamps on the acquire/release path, where a few ms of error is fine).
//
// The pool sleeps on std::chrono::steady_clock (condition variables, the
// parker). A clock may say how to sleep until one of its own deadlines with
//   wake_time(now, deadline)  the steady_clock time to wake at and look again
// A clock without it is polled: every wait wakes within 1 ms (poll_wake_time),
// which is right whatever its time base, but costs wakeups.
template <class C>
concept Clock = std::copy_constructible<C> && requires(const C& c) {
    { c.now() } -> std::same_as<time_point>;
    { c.coarse_now() } -> std::same_as<time_point>;
};

// Wakes within 1 ms, on real time: for a clock whose time moves otherwise.
inline time_point poll_wake_time(time_point now, time_point deadline) noexcept {
    return std::chrono::steady_clock::now() + std::min<duration>(deadline - now, std::chrono::milliseconds(1));
}

// The steady_clock time at which a wait for `deadline` on clock `c` (read as
// `now`) wakes to look again: the clock's own wake_time(), else polling.
template <Clock C>
time_point wake_time(const C& c, time_point now, time_point deadline) noexcept {
    if constexpr (requires { { c.wake_time(now, deadline) } noexcept -> std::same_as<time_point>; })
        return c.wake_time(now, deadline);
    else
        return poll_wake_time(now, deadline);
}

struct SteadyClock {
    time_point now() const noexcept { return std::chrono::steady_clock::now(); }

    // Its time is steady_clock's: sleep to the deadline itself, capped at an
    // hour so that a far deadline (time_point::max()) cannot overflow a wait.
    time_point wake_time(time_point now, time_point deadline) const noexcept {
        return std::min(deadline, now + std::chrono::hours(1));
    }

    // CLOCK_MONOTONIC_COARSE costs ~3 ns against ~28 ns for steady_clock on a
    // kvm-clock VM; it is the same time base, at jiffy resolution.
    time_point coarse_now() const noexcept {
#if defined(CLOCK_MONOTONIC_COARSE)
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
#else
        return now();
#endif
    }
};

// A clock that moves only when told. Copies share one time, so a test keeps a
// copy and advances the pool's clock.
class ManualClock {
public:
    ManualClock() : now_(std::make_shared<std::atomic<duration::rep>>(start_.count())) {}

    time_point now() const noexcept { return time_point(duration(now_->load())); }
    time_point coarse_now() const noexcept { return now(); }
    void advance(duration d) noexcept { now_->fetch_add(d.count()); }
    // Its time moves only on advance(), which wakes no one: waits poll.
    time_point wake_time(time_point now, time_point deadline) const noexcept { return poll_wake_time(now, deadline); }

private:
    // Far from zero so that "now - idle_timeout" never underflows in tests.
    static constexpr duration start_ = std::chrono::hours(1000);
    std::shared_ptr<std::atomic<duration::rep>> now_;
};

}  // namespace reservoir
