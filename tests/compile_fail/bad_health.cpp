// A health policy without retry_delay(): rejected, naming HealthPolicy.
#include <reservoir/reservoir.hpp>

struct NoRetryDelay {
    reservoir::BorrowCheck borrow_check(const reservoir::ConnectionInfo&, reservoir::time_point) const {
        return reservoir::BorrowCheck::local;
    }
    reservoir::time_point expiry(reservoir::time_point, std::uint64_t) const { return {}; }
    bool retire(const reservoir::ConnectionInfo&, reservoir::time_point) const { return false; }
    bool keepalive_due(const reservoir::ConnectionInfo&, reservoir::time_point) const { return false; }
};

reservoir::Pool<reservoir::mock::Driver, reservoir::sizing::Dynamic, NoRetryDelay>* pool = nullptr;
