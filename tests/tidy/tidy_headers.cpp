// The translation unit clang-tidy checks the headers through (tests/tidy/run.sh).
// Templates are only analysed where they are instantiated: this instantiates the
// stock pools in full and uses the public API once, so that every header's code
// is seen. It is compiled and analysed, never run.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <reservoir/reservoir.hpp>

template class reservoir::Pool<reservoir::mock::Driver>;
template class reservoir::Pool<reservoir::mock::Driver, reservoir::sizing::Fixed<4>, reservoir::health::Trusting,
                               reservoir::mock::ResetDirty>;
template class reservoir::mock::BasicDriver<reservoir::ManualClock>;
template class reservoir::BasicHealthMonitor<>;

template class reservoir::Pool<reservoir::pg::Driver, reservoir::sizing::Dynamic, reservoir::health::Default,
                               reservoir::pg::context::Reset>;
template class reservoir::Pool<reservoir::pg::Driver, reservoir::sizing::Dynamic, reservoir::health::Default,
                               reservoir::pg::context::Tenant>;

// Their leases and the engine underneath, member by member.
template class reservoir::Lease<reservoir::MockPool::State>;
template class reservoir::Lease<reservoir::PgPool::State>;
template class reservoir::detail::PoolState<reservoir::mock::Driver, reservoir::sizing::Dynamic,
                                            reservoir::health::Default, reservoir::context::None,
                                            reservoir::SteadyClock>;
template class reservoir::global<reservoir::MockPool>;

namespace {

std::string use_mock_pool() {
    reservoir::PoolOptions options;
    options.min_size = 1;
    options.max_size = 2;
    reservoir::MockPool pool(reservoir::mock::Driver(std::make_shared<reservoir::mock::Server>()), options);
    {
        auto lease = pool.acquire();
        auto other = pool.try_acquire();
        other.discard();
    }
    reservoir::HealthMonitor monitor;
    const auto report = reservoir::check_health(pool, monitor, std::chrono::seconds(1));
    std::string out = reservoir::to_json(report) + reservoir::to_json(pool) + reservoir::to_prometheus(pool);
    pool.shutdown(std::chrono::seconds(1));
    return out;
}

std::int64_t use_pg_pool() {
    using Db = reservoir::global<reservoir::PgPool>;
    auto& pool = Db::init(reservoir::pg::Config::from_env());
    const auto total = reservoir::pg::transaction(pool.acquire(), [](reservoir::pg::Connection& c) {
        std::int64_t sum = 0;
        for (auto row : c.query("SELECT g, 'x' || g FROM generate_series(1, $1) g", 3))
            sum += row.get<std::int64_t>(0) + static_cast<std::int64_t>(row.get<std::string>(1).size());
        return sum;
    });
    reservoir::TenantPool tenants(reservoir::pg::Config::from_url("postgresql://localhost/db"));
    reservoir::pg::with_tenant(tenants, "acme", [](reservoir::pg::Connection& c) { c.query("SELECT 1"); });
    auto lease = reservoir::pg::acquire_for_tenant(tenants, {"acme", "user", "session"});
    lease.commit();
    Db::reset();
    return total;
}

}  // namespace

// Referenced, so that neither function is dropped as unused.
int main() {
    try {
        return use_mock_pool().empty() || use_pg_pool() < 0 ? 1 : 0;
    } catch (...) {
        return 1;
    }
}
