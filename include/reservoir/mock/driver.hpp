#pragma once
// reservoir::mock: an in-memory driver for unit tests and for measuring the
// pool's own overhead. Deterministic (seeded), and every fault is injectable:
// connect, ping and query latency, connect failures, query errors, connections
// that break locally (visible to is_usable) or silently (visible only to a
// round trip, like a server restart), plus counters of everything it was asked.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "../core/clock.hpp"
#include "../core/concepts.hpp"
#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/stop.hpp"

namespace reservoir::mock {

// The shared "server": settings, faults and counters. Thread-safe.
class Server {
public:
    explicit Server(std::uint64_t seed = 1) : random_(seed) {}

    // Faults and latencies (take effect for the next call).
    void set_connect_latency(duration d) { connect_latency_.store(d.count()); }
    void set_query_latency(duration d) { query_latency_.store(d.count()); }
    void set_ping_latency(duration d) { ping_latency_.store(d.count()); }
    void fail_next_connects(std::size_t n) { fail_next_.store(n); }
    void set_connect_failure_rate(double p) {
        std::lock_guard lk(mu_);
        failure_rate_ = p;
    }
    // Every open connection dies silently: only a ping or a query notices.
    void restart() { generation_.fetch_add(1); }
    // Called inside connect(), on the connecting thread (tests use it to prove
    // what runs, and what does not, while a connect is in flight).
    void on_connect(std::function<void()> hook) {
        std::lock_guard lk(mu_);
        on_connect_ = std::move(hook);
    }

    // Counters.
    std::size_t live() const { return live_.load(); }  // connections open now
    std::size_t peak() const { return peak_.load(); }  // most ever open at once
    std::uint64_t connect_attempts() const { return attempts_.load(); }
    std::uint64_t connects() const { return connects_.load(); }
    std::uint64_t pings() const { return pings_.load(); }
    std::uint64_t queries() const { return queries_.load(); }

private:
    friend class Connection;
    template <Clock>
    friend class BasicDriver;

    // Decides whether this connect fails; returns the hook to run.
    bool connect_fails(std::function<void()>& hook) {
        attempts_.fetch_add(1);
        std::lock_guard lk(mu_);
        hook = on_connect_;
        std::size_t n = fail_next_.load();
        while (n > 0 && !fail_next_.compare_exchange_weak(n, n - 1)) {
        }
        if (n > 0) return true;
        if (failure_rate_ <= 0.0) return false;
        const double unit = static_cast<double>(detail::next_random(random_) >> 11) * 0x1.0p-53;
        return unit < failure_rate_;
    }
    void opened() {
        connects_.fetch_add(1);
        const std::size_t now = live_.fetch_add(1) + 1;
        std::size_t peak = peak_.load();
        while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
        }
    }
    void closed() { live_.fetch_sub(1); }

    mutable std::mutex mu_;
    std::uint64_t random_;
    double failure_rate_ = 0.0;
    std::function<void()> on_connect_;
    std::atomic<duration::rep> connect_latency_{0};
    std::atomic<duration::rep> query_latency_{0};
    std::atomic<duration::rep> ping_latency_{0};
    std::atomic<std::size_t> fail_next_{0};
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<std::size_t> live_{0}, peak_{0};
    std::atomic<std::uint64_t> attempts_{0}, connects_{0}, pings_{0}, queries_{0};
};

// Sleeps like a blocking network wait; on a pool's worker it wakes early when
// the pool is being destroyed (stop.hpp). False when it was stopped.
inline bool sleep_or_stop(duration d) {
    const auto end = std::chrono::steady_clock::now() + d;
    if (!stop_possible()) {
        std::this_thread::sleep_until(end);
        return true;
    }
    while (!stop_requested()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= end) return true;
        std::this_thread::sleep_for(std::min<duration>(end - now, std::chrono::milliseconds(5)));
    }
    return false;
}

// One mock connection. Move-only; closing it (destruction) is counted.
class Connection {
public:
    Connection(std::shared_ptr<Server> server, std::uint64_t id)
        : server_(std::move(server)), id_(id), generation_(server_->generation_.load()) {
        server_->opened();
    }
    Connection(Connection&& o) noexcept
        : server_(std::move(o.server_)), id_(o.id_), generation_(o.generation_), broken_(o.broken_),
          dirty_(o.dirty_) {}
    Connection& operator=(Connection&&) = delete;
    ~Connection() {
        if (server_) server_->closed();
    }

    std::uint64_t id() const noexcept { return id_; }

    // Runs a "statement": waits the query latency, then fails with a
    // connection-lost error if the connection is dead, or with a query error
    // if sql is "fail". "set" marks the session dirty (for context policies).
    std::string execute(std::string_view sql) {
        server_->queries_.fetch_add(1);
        if (const auto d = duration(server_->query_latency_.load()); d > duration::zero()) sleep_or_stop(d);
        if (!alive()) {
            broken_ = true;
            throw Error(ErrorKind::connection_lost, "mock: connection lost");
        }
        if (sql == "fail") throw Error(ErrorKind::query, "mock: statement failed");
        if (sql == "set") dirty_ = true;
        return "ok";
    }

    // A break the client can see without a round trip (socket closed).
    void break_locally() noexcept { broken_ = true; }
    bool broken() const noexcept { return broken_; }
    bool alive() const noexcept { return !broken_ && generation_ == server_->generation_.load(); }
    bool dirty() const noexcept { return dirty_; }
    void clean() noexcept { dirty_ = false; }

private:
    std::shared_ptr<Server> server_;
    std::uint64_t id_;
    std::uint64_t generation_;
    bool broken_ = false;
    bool dirty_ = false;
};

template <Clock K = SteadyClock>
class BasicDriver {
public:
    using connection_type = Connection;

    explicit BasicDriver(std::shared_ptr<Server> server, K clock = {})
        : server_(std::move(server)), clock_(std::move(clock)) {}

    Connection connect(time_point deadline) {
        std::function<void()> hook;
        const bool fail = server_->connect_fails(hook);
        if (hook) hook();
        const auto latency = duration(server_->connect_latency_.load());
        if (latency > duration::zero()) {
            const duration left = deadline - clock_.now();
            if (!sleep_or_stop(std::min(latency, std::max(left, duration::zero()))))
                throw ConnectError("mock: connect stopped (the pool is being destroyed)");
            if (latency > left) throw ConnectError("mock: connect timed out");
        }
        if (fail) throw ConnectError("mock: connection refused");
        return Connection(server_, next_id_.fetch_add(1) + 1);
    }

    bool is_usable(const Connection& c) const noexcept { return !c.broken(); }

    // Past the deadline it returns false and leaves the connection as it
    // was, ready for another ping: the contract a pool's recheck relies on.
    bool ping(Connection& c, time_point deadline) {
        server_->pings_.fetch_add(1);
        if (const auto latency = duration(server_->ping_latency_.load()); latency > duration::zero()) {
            const duration left = deadline - clock_.now();
            const bool stopped = !sleep_or_stop(std::min(latency, std::max(left, duration::zero())));
            if (stopped || latency > left) return false;
        }
        return c.alive();
    }

    Server& server() const noexcept { return *server_; }

private:
    std::shared_ptr<Server> server_;
    K clock_;
    inline static std::atomic<std::uint64_t> next_id_{0};
};

using Driver = BasicDriver<>;

// A context policy for mock connections: a dirty session is reset in the
// background before reuse (the shape of a real session reset).
struct ResetDirty {
    ReleaseAction on_release(Connection& c) noexcept {
        return c.dirty() ? ReleaseAction::reset : ReleaseAction::reuse;
    }
    bool reset(Connection& c, time_point) {
        c.clean();
        return c.alive();
    }
};

}  // namespace reservoir::mock
