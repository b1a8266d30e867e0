// A context policy whose on_release may throw: rejected, naming ContextPolicy.
#include <reservoir/reservoir.hpp>

struct ThrowingRelease {
    reservoir::ReleaseAction on_release(reservoir::mock::Connection&) { return reservoir::ReleaseAction::reuse; }
    bool reset(reservoir::mock::Connection&, reservoir::time_point) { return true; }
};

using Bad = reservoir::Pool<reservoir::mock::Driver, reservoir::sizing::Dynamic, reservoir::health::Default,
                            ThrowingRelease>;
Bad* pool = nullptr;
