// custom_policies: a pool is Pool<Driver, Sizing, Health, Context>, and each
// role is a concept, so stock policies and your own mix freely. Runs on the
// mock driver: no server needed.
//
//   build/examples/reservoir_example_custom_policies

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>

#include <reservoir/reservoir.hpp>

namespace rs = reservoir;

// A HealthPolicy of our own: during business hours (local time) every borrow
// pays a round trip, since a dead connection then costs a customer request;
// off hours the cheap local check is enough. Connections retire after
// max_uses leases or an hour, whichever comes first. Policies are shared by
// every thread, so this one is immutable after construction.
class BusinessHoursHealth {
public:
    BusinessHoursHealth(int open_hour, int close_hour, std::uint64_t max_uses)
        : open_(open_hour), close_(close_hour), max_uses_(max_uses) {}

    rs::BorrowCheck borrow_check(const rs::ConnectionInfo&, rs::time_point) const noexcept {
        return business_hours() ? rs::BorrowCheck::ping : rs::BorrowCheck::local;
    }
    rs::time_point expiry(rs::time_point now, std::uint64_t) const noexcept { return now + std::chrono::hours(1); }
    bool retire(const rs::ConnectionInfo& c, rs::time_point now) const noexcept {
        return c.uses >= max_uses_ || now >= c.expires;
    }
    bool keepalive_due(const rs::ConnectionInfo&, rs::time_point) const noexcept { return false; }
    rs::duration retry_delay(unsigned failures, std::uint64_t) const noexcept {
        return std::chrono::milliseconds(10) * failures;  // linear backoff, no jitter
    }

    bool business_hours() const noexcept {
        const std::time_t t = std::time(nullptr);
        std::tm local{};
        localtime_r(&t, &local);
        return local.tm_hour >= open_ && local.tm_hour < close_;
    }

private:
    int open_, close_;
    std::uint64_t max_uses_;
};
static_assert(rs::HealthPolicy<BusinessHoursHealth>);  // the concept checks the shape

int main() {
    auto server = std::make_shared<rs::mock::Server>();

    // 1. Stock policies only: exactly 4 connections, never pinged.
    using FastPool = rs::Pool<rs::mock::Driver, rs::sizing::Fixed<4>, rs::health::Trusting>;
    FastPool fast{rs::mock::Driver(server)};
    for (int i = 0; i < 100; ++i) fast.acquire()->execute("SELECT 1");
    std::printf("fixed+trusting: total=%zu pings=%llu\n", fast.stats().total,
                static_cast<unsigned long long>(server->pings()));
    fast.shutdown(std::chrono::seconds(1));

    // 2. Our own health policy, with mock::ResetDirty cleaning dirty sessions.
    using CarefulPool = rs::Pool<rs::mock::Driver, rs::sizing::Fixed<2>, BusinessHoursHealth, rs::mock::ResetDirty>;
    // Open around the clock here, so every borrow is pinged: (9, 17) for office hours.
    const BusinessHoursHealth health(0, 24, /*max_uses=*/10);
    CarefulPool careful(rs::mock::Driver(server), {}, {}, health, {});
    const auto pings_before = server->pings();
    for (int i = 0; i < 50; ++i) careful.acquire()->execute(i % 5 ? "SELECT 1" : "set");

    careful.shutdown(std::chrono::seconds(1));
    const auto s = careful.stats();
    std::printf("business hours now: %s; pings on borrow: %llu\n", health.business_hours() ? "yes" : "no",
                static_cast<unsigned long long>(server->pings() - pings_before));
    std::printf("careful: acquires=%llu connects=%llu retired after 10 uses=%llu\n",
                static_cast<unsigned long long>(s.acquires), static_cast<unsigned long long>(s.connects),
                static_cast<unsigned long long>(s.closes.lifetime));
    // 50 leases over connections that each serve 10: 5 retired, and 50 pings.
    return s.closes.lifetime >= 4 && server->pings() - pings_before == 50 ? 0 : 1;
}
