#pragma once
// Waiting in tests for state that other threads (or the server) reach in
// their own time: shared by the unit, pg and fault suites.

#include <chrono>
#include <thread>

namespace testsupport {

// Polls `condition` every `every` until it holds or `limit` passes; returns
// whether it held.
template <class Condition>
bool eventually(Condition condition, std::chrono::steady_clock::duration limit = std::chrono::seconds(5),
                std::chrono::steady_clock::duration every = std::chrono::milliseconds(1)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(every);
    }
    return true;
}

}  // namespace testsupport
