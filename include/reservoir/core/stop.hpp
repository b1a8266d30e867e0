#pragma once
// Stopping a pool's workers. The pool's destructor joins its worker threads,
// so that none of them is still running when the program exits. A worker may
// be inside a driver's connect, ping or reset at that moment: a driver that
// polls stop_requested() while it blocks lets the destructor return at once;
// one that does not delays it until that operation's own deadline.

#include <stop_token>

namespace reservoir {

namespace detail {
inline std::stop_token& worker_stop_token() noexcept {
    thread_local std::stop_token token;  // empty on every thread but a pool's workers
    return token;
}
}  // namespace detail

// True on a pool's worker thread once the pool is being destroyed.
inline bool stop_requested() noexcept { return detail::worker_stop_token().stop_requested(); }

// True on a thread that can be asked to stop (a pool's worker): blocking waits
// there should wake up now and then to check stop_requested().
inline bool stop_possible() noexcept { return detail::worker_stop_token().stop_possible(); }

}  // namespace reservoir
