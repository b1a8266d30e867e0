#pragma once
// reservoir: one centralized, policy-based connection pool.
// This header brings in the core, the mock driver and, when <libpq-fe.h> is
// available, the PostgreSQL driver.

#include "core/clock.hpp"
#include "core/concepts.hpp"
#include "core/error.hpp"
#include "core/events.hpp"
#include "core/global.hpp"
#include "core/histogram.hpp"
#include "core/options.hpp"
#include "core/policies.hpp"
#include "core/pool.hpp"
#include "core/stats.hpp"
#include "mock/driver.hpp"

#define RESERVOIR_VERSION_MAJOR 0
#define RESERVOIR_VERSION_MINOR 1
#define RESERVOIR_VERSION_PATCH 0

namespace reservoir {

// A pool over the mock driver with the default policies.
using MockPool = Pool<mock::Driver>;

}  // namespace reservoir
