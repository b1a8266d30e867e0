#pragma once
// Tenant context for row-level security: pg::with_tenant(pool, tenant, fn)
// runs fn on one connection inside a transaction whose first statement sets
// app.current_tenant (and app.current_user, app.current_session) with
// set_config(..., true): transaction-local, so COMMIT or ROLLBACK, whichever
// path ends the transaction, also ends the context. Ids travel as parameters,
// never in the SQL text. See docs/tenant-isolation.md.
//
//   auto rows = pg::with_tenant(pool, "acme", [](pg::Connection& c) {
//       return c.query("SELECT id, payload FROM tenant_items");  // RLS: acme's rows only
//   });
//
// Works on a PgPool (default setting names) or a TenantPool, whose
// context::BasicTenant<Settings> names the settings. Either way the pool's
// context policy rolls back a connection returned mid-transaction, so no
// tenant context reaches the next borrower; and the transaction's first
// statement resets, for the transaction, the role, session user and
// search_path an earlier borrower may have left (behind PgBouncer, where no
// reset runs between borrowers), so none can redirect the tenant.

#include <libpq-fe.h>

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "../core/clock.hpp"
#include "../core/concepts.hpp"
#include "../core/error.hpp"
#include "../core/policies.hpp"
#include "../core/pool.hpp"
#include "connection.hpp"
#include "context.hpp"
#include "driver.hpp"
#include "transaction.hpp"

namespace reservoir::pg {

// Who the transaction runs for. `tenant` is required; `user` and `session`
// may be empty (they are then set to '', which RLS policies should treat as
// unset: see the docs on blank vs NULL).
struct TenantContext {
    std::string tenant;
    std::string user;
    std::string session;
};

// The names of the settings with_tenant sets (custom GUCs need a dot).
struct DefaultTenantSettings {
    static constexpr const char* tenant = "app.current_tenant";
    static constexpr const char* user = "app.current_user";
    static constexpr const char* session = "app.current_session";
};

namespace detail {

// Rejects, before any SQL is sent, what cannot be a parameter: libpq sends
// text parameters NUL-terminated, so a NUL byte would silently cut the id.
// The message names the problem, never the value (it may be large or secret).
inline void check_tenant_field(std::string_view what, std::string_view value, bool required) {
    if (required && value.empty()) throw ConfigError("reservoir: the " + std::string(what) + " id is empty");
    if (const auto at = value.find('\0'); at != std::string_view::npos)
        throw ConfigError("reservoir: the " + std::string(what) + " id contains a NUL byte at offset " +
                          std::to_string(at) + " (of " + std::to_string(value.size()) +
                          " bytes); ids are sent as text parameters, which cannot hold NUL");
}

inline void check_tenant_context(const TenantContext& ctx) {
    check_tenant_field("tenant", ctx.tenant, true);
    check_tenant_field("user", ctx.user, false);
    check_tenant_field("session", ctx.session, false);
}

// The statement that opens a tenant's transaction, sent in one message with
// BEGIN (simple protocol: no parameters here). DISCARD SEQUENCES: lastval()
// and currval() would otherwise return another borrower's last insert id
// behind PgBouncer, where no reset runs between borrowers.
inline constexpr const char* tenant_begin_sql = "BEGIN; DISCARD SEQUENCES";

// Sets the context, transaction-locally, whatever session state the
// connection carries (behind PgBouncer, or in ResetMode::trust_sql_text, a
// borrower may have left SET ROLE, a search_path or a temporary table):
// the session user and role go back to their reset values (a leaked
// BYPASSRLS role would see every row), search_path to its reset value with
// pg_temp last (a temporary table could otherwise shadow the tenant table),
// then the tenant settings. Every name is schema-qualified and no operator
// is used, so no search_path can redirect a call. The nested set_config
// returns the reset value, which orders the two search_path steps.
// The session is not marked dirty: all of it is transaction-local.
inline constexpr const char* tenant_context_sql =
    "SELECT pg_catalog.set_config('session_authorization', NULL, true), "
    "pg_catalog.set_config('role', NULL, true), "
    "pg_catalog.set_config('search_path', pg_catalog.ltrim(pg_catalog.concat("
    "pg_catalog.set_config('search_path', NULL, true), ', pg_temp'), ', '), true), "
    "pg_catalog.set_config($1, $2, true), pg_catalog.set_config($3, $4, true), pg_catalog.set_config($5, $6, true)";

struct TenantAccess {
    template <class Settings>
    static void set_context(Connection& conn, const TenantContext& ctx) {
        conn.query_params(detail::deadline_after(conn.query_timeout()), "", tenant_context_sql, Settings::tenant,
                          ctx.tenant, Settings::user, ctx.user, Settings::session, ctx.session);
    }
};

}  // namespace detail

namespace context {

// The ContextPolicy of a TenantPool: context::Reset (rollback, then the
// session reset of its mode) plus the names of the tenant settings.
// Transaction-local settings need no reset of their own: the rollback of an
// unfinished transaction ends them.
template <class Settings = DefaultTenantSettings>
class BasicTenant {
public:
    using settings = Settings;

    BasicTenant() noexcept = default;
    explicit BasicTenant(ResetMode mode) noexcept : reset_(mode) {}

    ReleaseAction on_release(Connection& conn) noexcept { return reset_.on_release(conn); }
    bool reset(Connection& conn, time_point deadline) noexcept { return reset_.reset(conn, deadline); }
    ResetMode mode(const Connection& conn) const noexcept { return reset_.mode(conn); }

private:
    Reset reset_;
};

using Tenant = BasicTenant<>;

}  // namespace context

namespace detail {

// The setting names of a pool's context policy: its own for a BasicTenant,
// the defaults for Reset. Any other policy (context::None) might hand out a
// connection still inside another tenant's transaction: it does not compile.
template <class Context>
struct tenant_settings_of {
    static_assert(sizeof(Context) == 0,
                  "pg::with_tenant and pg::acquire_for_tenant need a pool whose ContextPolicy rolls back a "
                  "connection returned mid-transaction: pg::context::Reset (PgPool) or pg::context::BasicTenant "
                  "(TenantPool)");
};
template <>
struct tenant_settings_of<context::Reset> {
    using type = DefaultTenantSettings;
};
template <class Settings>
struct tenant_settings_of<context::BasicTenant<Settings>> {
    using type = Settings;
};

template <class Pool>
struct pool_context;
template <class D, class S, class H, class C, class K>
struct pool_context<reservoir::Pool<D, S, H, C, K>> {
    using type = C;
};

template <class Pool>
using tenant_settings_t = typename tenant_settings_of<typename pool_context<Pool>::type>::type;

}  // namespace detail

// A lease inside a transaction bound to one tenant. commit() commits and
// returns the connection; destroyed without commit() (an exception, an early
// return), the connection goes back mid-transaction and the pool's context
// policy rolls it back before anyone else gets it.
template <class PoolLease, class Settings>
class TenantLease {
public:
    // Opens the tenant's transaction on `lease` (idle, as the pool hands it out).
    TenantLease(PoolLease lease, const TenantContext& ctx) : lease_(std::move(lease)) {
        detail::check_tenant_context(ctx);
        lease_->execute(detail::tenant_begin_sql);
        detail::TenantAccess::set_context<Settings>(*lease_, ctx);
    }
    TenantLease(TenantLease&&) noexcept = default;
    TenantLease& operator=(TenantLease&&) noexcept = default;

    Connection& operator*() const noexcept { return *lease_; }
    Connection* operator->() const noexcept { return &*lease_; }
    explicit operator bool() const noexcept { return static_cast<bool>(lease_); }

    // Throws what COMMIT throws (QueryError 25P02 when the transaction had
    // failed and COMMIT rolled it back). The lease is empty afterwards either
    // way: nothing runs on it outside the tenant's transaction.
    void commit() {
        PoolLease lease = std::move(lease_);
        detail::commit(*lease, false);
    }

private:
    PoolLease lease_;
};

// Checks the ids first (ConfigError: nothing acquired, nothing sent), then
// acquires and opens the tenant's transaction. Throws what acquire(), BEGIN
// or set_config throw.
template <class Pool>
auto acquire_for_tenant(Pool& pool, const TenantContext& ctx) {
    detail::check_tenant_context(ctx);
    return TenantLease<typename Pool::Lease, detail::tenant_settings_t<Pool>>(pool.acquire(), ctx);
}

// Runs fn (taking pg::Connection& or nothing) in the tenant's transaction:
// commits and returns fn's value, or, when fn or COMMIT throws, leaves the
// rollback to the pool and rethrows.
template <class Pool, class Fn>
decltype(auto) with_tenant(Pool& pool, const TenantContext& ctx, Fn&& fn) {
    auto lease = acquire_for_tenant(pool, ctx);
    if constexpr (std::is_void_v<decltype(detail::call_with(fn, *lease))>) {
        detail::call_with(fn, *lease);
        lease.commit();
    } else {
        decltype(auto) result = detail::call_with(fn, *lease);
        lease.commit();
        return result;
    }
}

template <class Pool, class Fn>
decltype(auto) with_tenant(Pool& pool, std::string_view tenant, Fn&& fn) {
    return with_tenant(pool, TenantContext{std::string(tenant), {}, {}}, std::forward<Fn>(fn));
}

}  // namespace reservoir::pg

namespace reservoir {

// A PostgreSQL pool for row-level security by tenant: PgPool's policies with
// context::Tenant, whose setting names pg::with_tenant uses.
using TenantPool = Pool<pg::Driver, sizing::Dynamic, health::Default, pg::context::Tenant>;

}  // namespace reservoir
