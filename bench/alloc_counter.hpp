#pragma once
// Counts heap allocations made by the calling thread. alloc_counter.cpp
// replaces every global operator new of the benchmark binary to feed it.

#include <cstdint>

namespace reservoir_bench {

// Allocations (every form of operator new) made by this thread so far.
std::uint64_t allocations_on_this_thread() noexcept;

}  // namespace reservoir_bench
