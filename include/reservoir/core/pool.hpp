#pragma once
// reservoir::Pool and reservoir::Lease: the public face of the pool.

#include <chrono>
#include <concepts>
#include <exception>
#include <stop_token>
#include <string>
#include <utility>

#include "source_location.hpp"

#include "concepts.hpp"
#include "detail/pool_state.hpp"
#include "options.hpp"
#include "policies.hpp"
#include "stats.hpp"

namespace reservoir {

template <Driver D, SizingPolicy S, HealthPolicy H, class C, Clock K>
    requires ContextPolicy<C, typename D::connection_type>
class Pool;

// A borrowed connection. Move-only; returns the connection to its pool when
// destroyed. Every member is noexcept: returning a connection never throws.
// Safe to destroy after its Pool is gone (the connection is then closed).
// Not safe to use from two threads at once, like the connection itself.
template <class State>
class Lease {
public:
    using connection_type = typename State::connection_type;

    Lease() noexcept = default;
    Lease(Lease&& other) noexcept
        : state_(std::exchange(other.state_, nullptr)), slot_(std::exchange(other.slot_, nullptr)) {}
    Lease& operator=(Lease&& other) noexcept {
        if (this != &other) {
            release();
            state_ = std::exchange(other.state_, nullptr);
            slot_ = std::exchange(other.slot_, nullptr);
        }
        return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { release(); }

    // Precondition for * and ->: the lease holds a connection (operator bool).
    connection_type& operator*() const noexcept { return *slot_->conn; }
    connection_type* operator->() const noexcept { return &*slot_->conn; }
    explicit operator bool() const noexcept { return slot_ != nullptr; }

    // Returns the connection now; the lease becomes empty.
    void release() noexcept { give_back(false); }

    // Closes the connection instead of returning it, for a caller that knows it
    // is broken; the pool opens a replacement when one is needed.
    void discard() noexcept { give_back(true); }

private:
    template <Driver D, SizingPolicy S, HealthPolicy H, class C, Clock K>
        requires ContextPolicy<C, typename D::connection_type>
    friend class Pool;

    Lease(State* state, typename State::SlotT* slot) noexcept : state_(state), slot_(slot) {}

    void give_back(bool discard) noexcept {
        // Both are set together, or neither; testing both keeps g++'s
        // -Wnonnull from seeing a path with a slot and no state.
        if (slot_ && state_) state_->release(*std::exchange(slot_, nullptr), discard);
        slot_ = nullptr;
        state_ = nullptr;
    }

    State* state_ = nullptr;
    typename State::SlotT* slot_ = nullptr;
};

// A pool of connections made by Driver D, under the four policies. See
// docs/architecture.md for the mechanics and docs/policies.md for the roles.
//
// Thread safety: every member may be called from any thread at once, except
// the destructor. Policies are shared by all threads and must allow that.
template <Driver D, SizingPolicy S = sizing::Dynamic, HealthPolicy H = health::Default,
          class C = context::None, Clock K = SteadyClock>
    requires ContextPolicy<C, typename D::connection_type>
class Pool {
    using State = detail::PoolState<D, S, H, C, K>;

public:
    using driver_type = D;
    using connection_type = typename D::connection_type;
    using Lease = reservoir::Lease<State>;

    // Builds every policy that has settings from `options` (the others take
    // none). Throws ConfigError naming the first invalid option. With
    // background threads on, min_size connections start opening at once.
    explicit Pool(D driver, PoolOptions options = {}, K clock = {})
        : Pool(std::move(driver), options, make<S>(options), make<H>(options), make<C>(options),
               std::move(clock)) {}

    // For policies that carry their own state.
    Pool(D driver, PoolOptions options, S sizing, H health, C context, K clock = {})
        : state_(new State(std::move(driver), std::move(options), std::move(sizing), std::move(health),
                           std::move(context), std::move(clock))) {}

    // Builds the driver from a configuration that also carries pool options
    // (e.g. pg::Config: `PgPool pool(pg::Config::from_env());`).
    template <class Config>
        requires requires(const Config& c) {
            { c.pool } -> std::convertible_to<const PoolOptions&>;
            D(c);
        }
    explicit Pool(const Config& config, K clock = {}) : Pool(D(config), config.pool, std::move(clock)) {}

    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // Shuts down without waiting: waiters fail with PoolClosed, idle
    // connections close, leases still out close when they come back.
    ~Pool() { state_->destroy_handle(); }

    // Waits up to options().acquire_timeout, first come first served. Throws
    // AcquireTimeout (its message has the wait and the pool's state, and the
    // last connect error if any), PoolClosed, or PoolSaturated.
    Lease acquire(source_location where = source_location::current()) {
        return acquire(options().acquire_timeout, where);
    }
    Lease acquire(duration timeout, source_location where = source_location::current()) {
        return Lease(state_, state_->acquire(timeout, where));
    }
    // Cancellable: once `stop` is stopped (from any thread), a wait in the
    // queue ends with AcquireCancelled, unless a connection or a timeout
    // came first. The token is looked at only when the acquire must wait: with
    // a connection idle it is served even if `stop` was stopped before the call;
    // otherwise a token stopped already fails at once, without queueing.
    Lease acquire(duration timeout, std::stop_token stop, source_location where = source_location::current()) {
        return Lease(state_, state_->acquire(timeout, where, &stop));
    }

    // Never waits for a connection to come free: an empty Lease when none is
    // idle (and a connect is started if the pool may grow). Throws PoolClosed.
    Lease try_acquire(source_location where = source_location::current()) {
        return Lease(state_, state_->try_acquire(where));
    }

    // For event-driven code: never blocks. Calls done(Lease, std::exception_ptr)
    // exactly once, with a connection and a null error, or with an empty lease
    // and the error acquire() would throw. That happens before async_acquire
    // returns when a connection is idle (or the pool cannot serve); otherwise
    // later, on the thread that frees a connection for it, or on a pool worker
    // (timeouts, shutdown). So `done` must be quick and must not throw: hand
    // the lease to your event loop. Queued with the threads in acquire(), first
    // come first served. Timeouts need background_threads (or maintain()).
    template <class F>
        requires std::invocable<F&, Lease, std::exception_ptr>
    void async_acquire(F done, source_location where = source_location::current()) {
        async_acquire(options().acquire_timeout, std::move(done), where);
    }
    template <class F>
        requires std::invocable<F&, Lease, std::exception_ptr>
    void async_acquire(duration timeout, F done, source_location where = source_location::current()) {
        state_->async_acquire(timeout, where, wrap(std::move(done)));
    }
    // Cancellable, as acquire(timeout, stop): a queued request whose `stop` is
    // stopped gets AcquireCancelled, once, on the thread that stopped it (the
    // callback runs inside request_stop()), unless a connection or a timeout
    // came first.
    template <class F>
        requires std::invocable<F&, Lease, std::exception_ptr>
    void async_acquire(duration timeout, F done, std::stop_token stop,
                       source_location where = source_location::current()) {
        state_->async_acquire(timeout, where, wrap(std::move(done)), &stop);
    }

    PoolStats stats() const { return state_->stats(); }
    // The latest connect's error, empty once one succeeds: stats().last_connect_error
    // without the rest of the snapshot (one short lock, no scan of the slots).
    std::string last_connect_error() const { return state_->last_connect_error(); }

    // New acquires fail with PoolClosed and waiters wake with it at once; idle
    // connections close; lent ones close as they come back. Waits up to
    // `timeout` for that; true when every connection is closed. Idempotent.
    bool shutdown(duration timeout) { return state_->shutdown(timeout); }

    // Closes every idle connection now and every lent one when it comes back,
    // e.g. after a failover; the pool refills with new connections.
    void evict_all() { state_->evict_all(); }

    // Runs due maintenance now in the calling thread: resets, connects up to
    // min_size, idle reaping, lifetime and keepalive. Needed only with
    // background_threads = false; harmless otherwise.
    void maintain() { state_->maintain(); }

    // Changes min and max of a running pool (sizing::Dynamic, or a policy with
    // set_sizes(min, max)). Throws ConfigError naming the bad value and its
    // limit (max between 1 and PoolOptions::capacity, min not above max), and
    // then changes nothing. Growing lets waiters' connects start at once, and
    // a raised min opens connections; shrinking closes idle connections at
    // once (highest slots first) and lent ones as they come back, until the
    // pool is within the new max. docs/policies.md, "Sizes at run time".
    void resize(std::size_t min, std::size_t max)
        requires requires(S& s) { s.set_sizes(min, max); }
    {
        state_->resize(min, max);
    }

    const PoolOptions& options() const noexcept { return state_->options(); }
    D& driver() noexcept { return state_->driver(); }

private:
    // The state's callback: a slot becomes a Lease.
    template <class F>
    auto wrap(F done) {
        return [state = state_, done = std::move(done)](typename State::SlotT* slot,
                                                        std::exception_ptr error) mutable noexcept {
            done(slot ? Lease(state, slot) : Lease(), std::move(error));
        };
    }

    template <class P>
    static P make(const PoolOptions& options) {
        if constexpr (std::is_constructible_v<P, const PoolOptions&>)
            return P(options);
        else
            return P{};
    }

    State* state_;
};

}  // namespace reservoir
