#pragma once
// reservoir::Router: read/write routing over two pools of one type, a primary
// and a replica. Writes go to the primary. Reads go to the replica, and fall
// back to the primary when no replica connection can be had: the replica
// pool is absent or closed, its breaker is open, or its acquire failed
// because connecting failed. Each fallback is counted.
//
//   auto& primary = reservoir::global<reservoir::PgPool>::init_named("primary", primary_config);
//   auto& replica = reservoir::global<reservoir::PgPool>::init_named("replica", replica_config);
//   auto router = reservoir::Router<reservoir::PgPool>::from_global();   // or Router(primary, &replica)
//   auto rows = router.acquire_read()->query("SELECT name FROM items WHERE id = $1", 42);
//   router.acquire_write()->query("UPDATE items SET seen = true WHERE id = $1", 42);
//
// The router holds references: both pools must outlive it (global pools do,
// until global<P>::reset()). It routes acquires only; what the statement does
// is the caller's choice, so a write sent through acquire_read() reaches the
// replica and fails there (25006 on a read-only server).
//
// Thread safety: every member may be called from any thread at once.

#include <atomic>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string_view>

#include "../core/clock.hpp"
#include "../core/error.hpp"
#include "../core/source_location.hpp"
#include "../core/stats.hpp"
#include "global.hpp"

namespace reservoir {

// Each side's pool stats, and the router's own counters.
struct RouterStats {
    PoolStats primary;
    std::optional<PoolStats> replica;  // nullopt: the router has no replica pool

    std::uint64_t writes = 0;          // leases from acquire_write()
    std::uint64_t replica_reads = 0;   // reads served by the replica
    std::uint64_t fallback_reads = 0;  // reads served by the primary because the replica could not serve
};

// P is a pool type (reservoir::Pool<...>, e.g. PgPool or MockPool); both
// sides share it, so a lease from either is the same type.
template <class P>
    requires requires(P& p, duration timeout) {
        { p.acquire(timeout) } -> std::same_as<typename P::Lease>;
        { p.stats() } -> std::same_as<PoolStats>;
        p.options().acquire_timeout;
    }
class Router {
public:
    using pool_type = P;
    using Lease = typename P::Lease;

    // `replica` may be null: every read then goes to the primary, counted as a fallback.
    explicit Router(P& primary, P* replica = nullptr) noexcept : primary_(primary), replica_(replica) {}

    // The global pools named `primary` (required: throws Error if missing) and
    // `replica` (optional), as global<P>::init_named made them.
    static Router from_global(std::string_view primary = "primary", std::string_view replica = "replica") {
        return Router(global<P>::get(primary), global<P>::find(replica));
    }

    // Not copyable: the counters are the router's own.
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;

    // A primary connection, within the primary's acquire_timeout (or `timeout`).
    // Never falls back: a write must not land on a replica.
    Lease acquire_write(source_location where = source_location::current()) {
        return acquire_write(primary_.options().acquire_timeout, where);
    }
    Lease acquire_write(duration timeout, source_location where = source_location::current()) {
        Lease lease = primary_.acquire(timeout, where);
        writes_.fetch_add(1, std::memory_order_relaxed);
        return lease;
    }

    // A replica connection, or a primary one when the replica cannot serve.
    // The replica is given `timeout` (default: its acquire_timeout); a
    // fallback is a fresh acquire on the primary with the same timeout, so a
    // read waits at most twice `timeout`. A replica that merely has every
    // connection busy does not fall back: its AcquireTimeout is thrown, since
    // moving overflow reads onto the primary would load the node that takes
    // the writes and hide an undersized replica pool.
    Lease acquire_read(source_location where = source_location::current()) {
        const P& side = replica_ ? *replica_ : primary_;
        return acquire_read(side.options().acquire_timeout, where);
    }
    Lease acquire_read(duration timeout, source_location where = source_location::current()) {
        if (replica_) {
            try {
                Lease lease = replica_->acquire(timeout, where);
                replica_reads_.fetch_add(1, std::memory_order_relaxed);
                return lease;
            } catch (const Error& e) {
                if (!replica_down(e)) throw;
            }
        }
        Lease lease = primary_.acquire(timeout, where);
        fallback_reads_.fetch_add(1, std::memory_order_relaxed);
        return lease;
    }

    // Each pool's stats (one lock each, taken in turn) and the counters.
    RouterStats stats() const {
        RouterStats s;
        s.primary = primary_.stats();
        if (replica_) s.replica = replica_->stats();
        s.writes = writes_.load(std::memory_order_relaxed);
        s.replica_reads = replica_reads_.load(std::memory_order_relaxed);
        s.fallback_reads = fallback_reads_.load(std::memory_order_relaxed);
        return s;
    }

    P& primary() const noexcept { return primary_; }
    P* replica() const noexcept { return replica_; }

private:
    // Whether the replica failed for want of a connection (fall back), rather
    // than for being busy (do not).
    bool replica_down(const Error& e) const {
        switch (e.kind()) {
            case ErrorKind::connect_failed:    // a driver or pool that reports the connect error itself
            case ErrorKind::pool_unavailable:  // breaker open: it stopped dialing after repeated failures
            case ErrorKind::pool_closed:       // shut down: it will not serve again
                return true;
            case ErrorKind::acquire_timeout:
                // The wait ended before the breaker opened: it was for
                // connects, and the latest one failed.
                return !replica_->last_connect_error().empty();
            default: return false;
        }
    }

    P& primary_;
    P* replica_;
    std::atomic<std::uint64_t> writes_{0}, replica_reads_{0}, fallback_reads_{0};
};

}  // namespace reservoir
