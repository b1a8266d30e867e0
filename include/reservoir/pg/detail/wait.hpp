#pragma once
// Waiting on a libpq socket with poll() against a steady-clock deadline, so
// that no call blocks its thread past the deadline it was given.

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <string>
#include <string_view>

#include "../../core/clock.hpp"
#include "../../core/stop.hpp"

namespace reservoir::pg::detail {

inline constexpr time_point no_deadline = time_point::max();

inline time_point deadline_after(duration timeout) noexcept {
    return timeout > duration::zero() ? std::chrono::steady_clock::now() + timeout : no_deadline;
}

// poll()'s timeout for a deadline: rounded up (never wake early and spin),
// -1 for no deadline, 0 once it has passed.
inline int poll_timeout_ms(time_point deadline) noexcept {
    if (deadline == no_deadline) return -1;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

// Waits until `fd` is ready for `events` or the deadline passes. Returns the
// ready events (POLLERR/POLLHUP/POLLNVAL included: the caller lets libpq read
// and report the failure), or 0 at the deadline. On a pool's worker it also
// returns 0 once the pool is being destroyed, checked every 20 ms.
// Once the deadline has passed it returns 0 without looking at the socket: a
// loop that waits on every turn then ends at its deadline even when data is
// always waiting (results streaming in, a server reading as fast as we send).
inline short wait_socket(int fd, short events, time_point deadline) noexcept {
    if (fd < 0) return POLLNVAL;
    const bool stoppable = stop_possible();
    for (;;) {
        if (stoppable && stop_requested()) return 0;
        int timeout = poll_timeout_ms(deadline);
        if (timeout == 0) return 0;
        pollfd p{fd, events, 0};
        if (stoppable && (timeout < 0 || timeout > 20)) timeout = 20;
        const int n = ::poll(&p, 1, timeout);
        if (n > 0) return p.revents;
        if (n < 0 && errno != EINTR) return POLLERR;
        // EINTR, a stop-check slice, or the deadline (checked above): look again.
    }
}

// A notice receiver that drops server notices, so that libpq's default one
// does not print them on stderr.
inline void drop_notice(void*, const PGresult*) noexcept {}

inline bool readable_now(int fd) noexcept {
    pollfd p{fd, POLLIN, 0};
    return fd >= 0 && ::poll(&p, 1, 0) > 0;
}

inline std::string ms_text(duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

// libpq's messages span lines ("...\n\tThis probably means..."): one line, no trailing newline.
inline std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    bool space = false;
    for (char ch : text) {
        const bool blank = ch == '\n' || ch == '\t' || ch == '\r' || ch == ' ';
        if (blank && !out.empty()) space = true;
        if (blank) continue;
        if (space) out.push_back(' ');
        space = false;
        out.push_back(ch);
    }
    return out;
}

}  // namespace reservoir::pg::detail
