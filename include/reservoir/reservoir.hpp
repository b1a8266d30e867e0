#pragma once
// reservoir: one centralized, policy-based connection pool.
// This header brings in the core, the mock driver, the observability helpers,
// the application glue (app/) and, when <libpq-fe.h> is on the include path,
// the PostgreSQL driver.

#include <type_traits>

#include "version.hpp"

#include "core/clock.hpp"
#include "core/concepts.hpp"
#include "core/error.hpp"
#include "core/events.hpp"
#include "core/histogram.hpp"
#include "core/options.hpp"
#include "core/policies.hpp"
#include "core/pool.hpp"
#include "core/stats.hpp"
#include "core/stop.hpp"
#include "mock/driver.hpp"
#include "observe/observe.hpp"
#include "pg/config.hpp"  // needs no libpq

// Application glue, above every driver: process-wide pools, routing, signals.
#include "app/global.hpp"
#include "app/router.hpp"
#include "app/signals.hpp"

namespace reservoir {

// A pool over the mock driver with the default policies.
using MockPool = Pool<mock::Driver>;

}  // namespace reservoir

#if __has_include(<libpq-fe.h>)
#include "pg/pg.hpp"
#else
// Without libpq the PostgreSQL driver is left out (its configuration stays);
// naming the driver says why it is missing.
namespace reservoir::pg {
template <class T = void>
struct LibpqMissing {
    static_assert(!std::is_same_v<T, T>,
                  "reservoir::pg::Driver needs libpq: install libpq-dev, add /usr/include/postgresql to the "
                  "include path and link -lpq (CMake: find_package(reservoir) does all three)");
};
using Driver = LibpqMissing<>;
}  // namespace reservoir::pg
namespace reservoir {
using PgPool = pg::LibpqMissing<>;
}  // namespace reservoir
#endif
