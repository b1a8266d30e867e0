// A clock without coarse_now(): rejected, naming Clock.
#include <reservoir/reservoir.hpp>

struct NoCoarseNow {
    reservoir::time_point now() const noexcept { return {}; }
};

reservoir::Pool<reservoir::mock::Driver, reservoir::sizing::Dynamic, reservoir::health::Default,
                reservoir::context::None, NoCoarseNow>* pool = nullptr;
