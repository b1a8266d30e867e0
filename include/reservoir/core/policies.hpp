#pragma once
// The policies that ship with the core. Each one that has settings is built
// from PoolOptions; the compile-time ones take none.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "concepts.hpp"
#include "options.hpp"

namespace reservoir {

namespace detail {

// Exponential backoff with full jitter: uniform in [0, min(max, initial * 2^(failures-1))].
// Full jitter spreads a fleet's retries so a recovering server is not stormed.
inline duration full_jitter_backoff(duration initial, duration max, unsigned failures,
                                    std::uint64_t random) noexcept {
    if (failures == 0) return duration::zero();
    const unsigned shift = std::min(failures - 1, 30u);
    const auto cap = std::min<duration::rep>(max.count(), initial.count() << shift);
    return duration(static_cast<duration::rep>(random % static_cast<std::uint64_t>(cap + 1)));
}

// A connection's lifetime, shortened by a random fraction in [0, jitter) so that
// connections opened together do not all expire together.
inline time_point jittered_expiry(time_point now, duration lifetime, double jitter,
                                  std::uint64_t random) noexcept {
    if (lifetime <= duration::zero()) return time_point::max();
    const double unit = static_cast<double>(random >> 11) * 0x1.0p-53;  // [0, 1)
    const auto cut = static_cast<duration::rep>(static_cast<double>(lifetime.count()) * jitter * unit);
    return now + lifetime - duration(cut);
}

}  // namespace detail

namespace sizing {

// Min, max and idle timeout from PoolOptions: the runtime-configured default.
// Pool::resize() changes min and max of a running pool through set_sizes(),
// under the pool's lock, which is also where the pool reads them.
class Dynamic {
public:
    Dynamic() : Dynamic(PoolOptions{}) {}
    explicit Dynamic(const PoolOptions& o)
        : min_(o.min_size), max_(o.max_size), idle_timeout_(o.idle_timeout) {}
    std::size_t min_size() const noexcept { return min_; }
    std::size_t max_size() const noexcept { return max_; }
    duration idle_timeout() const noexcept { return idle_timeout_; }
    // Unchecked: Pool::resize() validates first.
    void set_sizes(std::size_t min, std::size_t max) noexcept {
        min_ = min;
        max_ = max;
    }

private:
    std::size_t min_, max_;
    duration idle_timeout_;
};

// Exactly N connections, opened at start and kept: PoolOptions' sizes are not used.
template <std::size_t N>
struct Fixed {
    static_assert(N > 0, "sizing::Fixed<N> needs N >= 1");
    static constexpr std::size_t min_size() noexcept { return N; }
    static constexpr std::size_t max_size() noexcept { return N; }
    static constexpr duration idle_timeout() noexcept { return duration::max(); }
};

}  // namespace sizing

namespace health {

// Trusts every connection: no ping on borrow, no lifetime, no keepalive. The
// driver's local check still runs. For the fastest path with reliable networks.
struct Trusting {
    BorrowCheck borrow_check(const ConnectionInfo&, time_point) const noexcept { return BorrowCheck::local; }
    time_point expiry(time_point, std::uint64_t) const noexcept { return time_point::max(); }
    bool retire(const ConnectionInfo&, time_point) const noexcept { return false; }
    bool keepalive_due(const ConnectionInfo&, time_point) const noexcept { return false; }
    duration retry_delay(unsigned failures, std::uint64_t random) const noexcept {
        return detail::full_jitter_backoff(50ms, 5s, failures, random);
    }
};

// Ping on borrow after validate_after_idle; keepalive; lifetime with jitter;
// max uses; backoff with full jitter. All from PoolOptions, of which it keeps
// only these settings (not the listener, nor the sizes).
class Default {
public:
    Default() : Default(PoolOptions{}) {}
    explicit Default(const PoolOptions& o)
        : o_{o.validate_after_idle, o.keepalive_interval, o.max_lifetime, o.lifetime_jitter,
             o.max_uses,            o.retry_initial,      o.retry_max} {}

    BorrowCheck borrow_check(const ConnectionInfo& c, time_point now) const noexcept {
        // 0 means always: the borrow's coarse clock may lag the time the check was stamped with.
        const bool due = o_.validate_after_idle == duration::zero() || now - c.last_checked >= o_.validate_after_idle;
        return due ? BorrowCheck::ping : BorrowCheck::local;
    }
    time_point expiry(time_point now, std::uint64_t random) const noexcept {
        return detail::jittered_expiry(now, o_.max_lifetime, o_.lifetime_jitter, random);
    }
    bool retire(const ConnectionInfo& c, time_point now) const noexcept {
        return now >= c.expires || (o_.max_uses != 0 && c.uses >= o_.max_uses);
    }
    bool keepalive_due(const ConnectionInfo& c, time_point now) const noexcept {
        return o_.keepalive_interval.count() > 0 && now - c.last_checked >= o_.keepalive_interval;
    }
    duration retry_delay(unsigned failures, std::uint64_t random) const noexcept {
        return detail::full_jitter_backoff(o_.retry_initial, o_.retry_max, failures, random);
    }

private:
    struct Settings {
        duration validate_after_idle, keepalive_interval, max_lifetime;
        double lifetime_jitter;
        std::uint64_t max_uses;
        duration retry_initial, retry_max;
    } o_;
};

}  // namespace health

namespace context {

// No session state to manage: every returned connection is reused as it is
// (the driver's local check still discards broken ones).
struct None {
    template <class Conn>
    ReleaseAction on_release(Conn&) noexcept { return ReleaseAction::reuse; }
    template <class Conn>
    bool reset(Conn&, time_point) noexcept { return true; }
};

}  // namespace context

}  // namespace reservoir
