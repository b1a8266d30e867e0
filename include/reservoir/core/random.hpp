#pragma once
// The pool's source of jitter, shared with the mock driver's simulated
// latency: a plain function over a caller-owned state word, so that each
// owner seeds its own sequence and tests can replay one.

#include <cstdint>

namespace reservoir::detail {

// splitmix64: a tiny, good-enough generator for jitter (not for secrets).
inline std::uint64_t next_random(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

}  // namespace reservoir::detail
