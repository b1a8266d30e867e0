// A sizing policy without idle_timeout(): rejected, naming SizingPolicy.
#include <reservoir/reservoir.hpp>

struct NoIdleTimeout {
    std::size_t min_size() const { return 1; }
    std::size_t max_size() const { return 2; }
};

reservoir::Pool<reservoir::mock::Driver, NoIdleTimeout>* pool = nullptr;
