#pragma once
// The four roles a Pool is built from, each a concept so that a type that
// does not fit is rejected with the role's name in the compiler's message.
// docs/policies.md explains how to write each one.

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "clock.hpp"

namespace reservoir {

// What the pool knows about one pooled connection; handed to health policies.
struct ConnectionInfo {
    time_point created;    // when it was opened
    time_point last_used;  // when it was last returned (or opened)
    time_point last_checked;  // when it was last known good: returned, opened or pinged
    time_point expires;    // its lifetime deadline, sampled at birth; max() = never
    std::uint64_t uses = 0;  // leases it has served
};

// Driver: opens one kind of connection and checks it. Holds no pooling logic.
//   connect(deadline)   opens a connection or throws (ConnectError), never past deadline
//   is_usable(conn)     cheap local check, no I/O (socket state, transaction state)
//   ping(conn, deadline) a round trip; false (or a throw) means the connection is dead, or
//                       that a short deadline came first: then a worker pings it once more
//                       before the pool decides (so a ping must be able to follow one that
//                       timed out)
template <class D>
concept Driver = requires { typename D::connection_type; } &&
                 std::move_constructible<typename D::connection_type> &&
                 requires(D& d, typename D::connection_type& c, time_point deadline) {
                     { d.connect(deadline) } -> std::same_as<typename D::connection_type>;
                     { d.is_usable(std::as_const(c)) } noexcept -> std::same_as<bool>;
                     { d.ping(c, deadline) } -> std::same_as<bool>;
                 };

// SizingPolicy: how many connections to keep and for how long they may idle.
// min_size() and max_size() are read at each decision and at housekeeping, not
// once, under the pool's lock: a policy may change them while the pool runs
// (docs/policies.md, "Sizes at run time"). Max is clamped to PoolOptions::capacity.
template <class S>
concept SizingPolicy = requires(const S& s) {
    { s.min_size() } -> std::convertible_to<std::size_t>;
    { s.max_size() } -> std::convertible_to<std::size_t>;
    { s.idle_timeout() } -> std::convertible_to<duration>;
};

enum class BorrowCheck {
    local,  // only the driver's local is_usable() check
    ping,   // also a round trip before the connection is handed out
};

// HealthPolicy: what to check and when to retire. Pure decisions of state and
// time; the pool does the I/O. `random` is a fresh 64-bit random number.
template <class H>
concept HealthPolicy = requires(const H& h, const ConnectionInfo& info, time_point now,
                                std::uint64_t random, unsigned failures) {
    { h.borrow_check(info, now) } -> std::same_as<BorrowCheck>;
    { h.expiry(now, random) } -> std::same_as<time_point>;      // lifetime deadline of a new connection
    { h.retire(info, now) } -> std::same_as<bool>;              // on return: close instead of reuse
    { h.keepalive_due(info, now) } -> std::same_as<bool>;       // ping this idle connection now
    { h.retry_delay(failures, random) } -> std::same_as<duration>;  // wait after N failed connects
};

enum class ReleaseAction {
    reuse,    // clean: straight back to the pool
    reset,    // may carry state: clean it (off the borrower's path) before reuse
    discard,  // close it
};

// ContextPolicy: keeps one borrower's session state from reaching the next.
//   on_release(conn)     decides, without blocking, what a returned connection needs
//   reset(conn, deadline) cleans it; false means close it instead
template <class C, class Conn>
concept ContextPolicy = requires(C& c, Conn& conn, time_point deadline) {
    { c.on_release(conn) } noexcept -> std::same_as<ReleaseAction>;
    { c.reset(conn, deadline) } -> std::same_as<bool>;
};

}  // namespace reservoir
