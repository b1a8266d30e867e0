#pragma once
// RESERVOIR_ASSERT(cond, "what"): an invariant of the engine, checked.
//
// On when RESERVOIR_ASSERTIONS is defined, or when NDEBUG is not (like
// assert(), so that an application's Debug build checks the pool it uses);
// the test builds define RESERVOIR_ASSERTIONS so that their RelWithDebInfo
// and Release builds check too. Off, `cond` is not evaluated (it must still
// compile) and nothing is left in the code: the lock-free paths pay nothing.
// A failure reports file, line, the condition and what it means on stderr,
// then aborts: the pool's state can no longer be trusted.

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace reservoir::detail {

// Called with the report instead of printing it and aborting (tests): it may
// throw to leave the failing check; if it returns, the process aborts.
using AssertionHandler = void (*)(const char* file, int line, const char* condition, const char* what);

inline std::atomic<AssertionHandler>& assertion_handler() noexcept {
    static std::atomic<AssertionHandler> handler{nullptr};
    return handler;
}

inline void assertion_failed(const char* file, int line, const char* condition, const char* what) {
    if (const AssertionHandler h = assertion_handler().load()) h(file, line, condition, what);
    std::fprintf(stderr, "%s:%d: reservoir: assertion failed: %s (%s)\n", file, line, what, condition);
    std::abort();
}

}  // namespace reservoir::detail

// Both forms are always defined so that each can be tested in any build;
// RESERVOIR_ASSERT is the one the build selects.
#define RESERVOIR_ASSERT_ON(cond, what) \
    ((cond) ? static_cast<void>(0) : ::reservoir::detail::assertion_failed(__FILE__, __LINE__, #cond, what))
#define RESERVOIR_ASSERT_OFF(cond, what) static_cast<void>(sizeof(!(cond)))

#if defined(RESERVOIR_ASSERTIONS) || !defined(NDEBUG)
#define RESERVOIR_ASSERTIONS_ON 1
#define RESERVOIR_ASSERT(cond, what) RESERVOIR_ASSERT_ON(cond, what)
#else
#define RESERVOIR_ASSERTIONS_ON 0
#define RESERVOIR_ASSERT(cond, what) RESERVOIR_ASSERT_OFF(cond, what)
#endif
