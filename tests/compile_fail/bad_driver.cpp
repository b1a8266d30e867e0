// A driver without ping(): rejected, and the message names the Driver concept.
#include <reservoir/reservoir.hpp>

struct Conn {};
struct NoPing {
    using connection_type = Conn;
    Conn connect(reservoir::time_point) { return {}; }
    bool is_usable(const Conn&) const noexcept { return true; }
};

reservoir::Pool<NoPing>* pool = nullptr;
