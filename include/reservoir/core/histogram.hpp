#pragma once
// A latency histogram with log-linear buckets: four per power of two of
// nanoseconds, so every bucket is within 19% of the values it holds, from
// 1 ns to 2^40 ns (18 minutes). Fixed size, no allocation, lock-free.

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace reservoir {

// Log-linear bucket layout: 2^SubBits buckets per power of two of
// nanoseconds, values from 0 to 2^MaxBits ns; larger ones go in the last bucket.
template <unsigned SubBits, unsigned MaxBits>
struct LogLinearBuckets {
    static constexpr unsigned sub_bits = SubBits;
    static constexpr unsigned max_bits = MaxBits;
    static constexpr std::size_t count = std::size_t{max_bits + 1} << sub_bits;

    static std::size_t index(std::uint64_t ns) noexcept {
        if (ns < (1u << sub_bits)) return static_cast<std::size_t>(ns);
        const unsigned width = static_cast<unsigned>(std::bit_width(ns));  // >= sub_bits + 1
        if (width > max_bits) return count - 1;
        const unsigned shift = width - 1 - sub_bits;
        const std::uint64_t mantissa = (ns >> shift) & ((1u << sub_bits) - 1);
        return (std::size_t{width - sub_bits} << sub_bits) + static_cast<std::size_t>(mantissa);
    }

    // The largest value (ns) that falls in bucket i: its upper bound.
    static std::uint64_t upper(std::size_t i) noexcept {
        if (i < (1u << sub_bits)) return i;
        const unsigned width = static_cast<unsigned>(i >> sub_bits) + sub_bits;
        const unsigned shift = width - 1 - sub_bits;
        const std::uint64_t mantissa = (i & ((1u << sub_bits) - 1)) | (1u << sub_bits);
        return ((mantissa + 1) << shift) - 1;
    }
};

// The pool's histograms: 4 buckets per power of two, up to 2^40 ns.
using HistogramBuckets = LogLinearBuckets<2, 40>;

// A plain copy of a histogram, for reading and merging.
struct HistogramSnapshot {
    std::array<std::uint64_t, HistogramBuckets::count> buckets{};
    std::uint64_t count = 0;
    std::uint64_t sum_ns = 0;
    std::uint64_t max_ns = 0;

    void merge(const HistogramSnapshot& o) noexcept {
        for (std::size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
        count += o.count;
        sum_ns += o.sum_ns;
        if (o.max_ns > max_ns) max_ns = o.max_ns;
    }

    // The value at quantile q in [0, 1], as its bucket's upper bound (never
    // above the largest value seen).
    std::chrono::nanoseconds quantile(double q) const noexcept {
        if (count == 0) return {};
        auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count));
        if (rank >= count) rank = count - 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets.size(); ++i) {
            seen += buckets[i];
            if (seen > rank) {
                const std::uint64_t v = HistogramBuckets::upper(i);
                return std::chrono::nanoseconds(v < max_ns ? v : max_ns);
            }
        }
        return std::chrono::nanoseconds(max_ns);
    }
    std::chrono::nanoseconds max() const noexcept { return std::chrono::nanoseconds(max_ns); }
    std::chrono::nanoseconds mean() const noexcept {
        return std::chrono::nanoseconds(count ? sum_ns / count : 0);
    }
};

// Thread-safe recording with relaxed atomics. Writers on one histogram share
// its cache lines, so hot paths keep one per thread or per slot and merge.
class Histogram {
public:
    void record(std::chrono::nanoseconds d) noexcept {
        const std::uint64_t ns = d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
        buckets_[HistogramBuckets::index(ns)].fetch_add(1, std::memory_order_relaxed);
        count_.fetch_add(1, std::memory_order_relaxed);
        sum_.fetch_add(ns, std::memory_order_relaxed);
        std::uint64_t seen = max_.load(std::memory_order_relaxed);
        while (ns > seen && !max_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
        }
    }

    // The same, for a histogram only one thread writes at a time (a slot's
    // owner): plain loads and stores, no locked instructions.
    void record_single_writer(std::chrono::nanoseconds d) noexcept {
        const std::uint64_t ns = d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
        bump(buckets_[HistogramBuckets::index(ns)], 1);
        bump(count_, 1);
        bump(sum_, ns);
        if (ns > max_.load(std::memory_order_relaxed)) max_.store(ns, std::memory_order_relaxed);
    }

    HistogramSnapshot snapshot() const noexcept {
        HistogramSnapshot s;
        for (std::size_t i = 0; i < s.buckets.size(); ++i) s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
        s.count = count_.load(std::memory_order_relaxed);
        s.sum_ns = sum_.load(std::memory_order_relaxed);
        s.max_ns = max_.load(std::memory_order_relaxed);
        return s;
    }

private:
    static void bump(std::atomic<std::uint64_t>& a, std::uint64_t by) noexcept {
        a.store(a.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
    }

    std::array<std::atomic<std::uint64_t>, HistogramBuckets::count> buckets_{};
    std::atomic<std::uint64_t> count_{0}, sum_{0}, max_{0};
};

}  // namespace reservoir
