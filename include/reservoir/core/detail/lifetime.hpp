#pragma once
// When the pool's state may be freed. One rule: a reference is held by whoever
// can still touch the state, and the last one to drop its reference frees it,
// in PoolState::unref() and nowhere else. The holders:
//   - the Pool handle, until its destructor ends;
//   - once the Pool is gone, each lease still out (its slot is lent), counted
//     when the Pool goes (orphan), so that a lease costs nothing while the
//     Pool lives;
//   - every release that reaches the pool's lock, for as long as it runs: it
//     may let go of the lock to close a connection or to finish async waiters,
//     and the Pool may be destroyed meanwhile (its slot is then busy, not lent,
//     so orphan does not count it);
//   - a blocked acquirer with a stop token, from the moment it queues until its
//     stop callback is gone (the callback may run in another thread, later);
//   - a cancel, while it finishes the async waiters it settled.
// Workers need none: the Pool's destructor joins them. Every member is called
// under the pool's lock.

#include <cstddef>

#include "../assert.hpp"

namespace reservoir::detail {

class References {
public:
    // Taken under the lock by a holder other than the Pool. Once the Pool is
    // gone only a release comes here, and its lease's reference (its slot is
    // still lent) is the one it holds: none is added.
    void take() noexcept {
        if (!orphaned_) ++refs_;
    }

    // The Pool is going; `leases` are still out, each holding a reference now.
    void orphan(std::size_t leases) noexcept {
        RESERVOIR_ASSERT(!orphaned_, "the Pool handle is destroyed twice");
        refs_ += leases;
        orphaned_ = true;
    }

    // Drops one; true for the last, whose holder frees the state.
    [[nodiscard]] bool drop() noexcept {
        RESERVOIR_ASSERT(refs_ > 0, "the state's reference count drops below zero");
        return --refs_ == 0;
    }

private:
    std::size_t refs_ = 1;  // the Pool's
    bool orphaned_ = false;
};

}  // namespace reservoir::detail
