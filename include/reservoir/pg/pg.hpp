#pragma once
// reservoir's PostgreSQL driver (libpq): include this one header, link -lpq.
//
//   reservoir::PgPool pool(reservoir::pg::Config::from_env());
//   auto lease = pool.acquire();
//   auto rows = lease->query("SELECT name FROM users WHERE id = $1", id);

#include "../core/pool.hpp"
#include "config.hpp"
#include "connection.hpp"
#include "context.hpp"
#include "driver.hpp"
#include "error.hpp"
#include "field.hpp"
#include "params.hpp"
#include "pipeline.hpp"
#include "result.hpp"
#include "session.hpp"
#include "tenant.hpp"
#include "transaction.hpp"

namespace reservoir {

// A PostgreSQL pool: dynamic sizing, the default health checks, and sessions
// rolled back and reset before reuse.
using PgPool = Pool<pg::Driver, sizing::Dynamic, health::Default, pg::context::Reset>;

}  // namespace reservoir
