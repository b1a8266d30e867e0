// The latency histogram: bucket bounds, quantiles and merging.

#include <catch2/catch.hpp>

#include <reservoir/core/histogram.hpp>

using namespace std::chrono_literals;
using reservoir::HistogramBuckets;

TEST_CASE("every value falls in a bucket whose bounds hold it within 25%", "[histogram]") {
    for (std::uint64_t v = 0; v < 5'000'000; v = v * 3 / 2 + 1) {
        const std::size_t i = HistogramBuckets::index(v);
        REQUIRE(i < HistogramBuckets::count);
        REQUIRE(HistogramBuckets::upper(i) >= v);
        if (i > 0) REQUIRE(HistogramBuckets::upper(i - 1) < v);
        REQUIRE(static_cast<double>(HistogramBuckets::upper(i)) <= static_cast<double>(v) * 1.25 + 1);
    }
    CHECK(HistogramBuckets::index(~0ull) == HistogramBuckets::count - 1);
}

TEST_CASE("quantiles, mean and max of a known distribution", "[histogram]") {
    reservoir::Histogram h;
    for (int i = 1; i <= 1000; ++i) h.record(std::chrono::microseconds(i));
    const auto s = h.snapshot();
    CHECK(s.count == 1000);
    CHECK(s.max() == 1000us);
    CHECK(s.mean() == 500500ns);
    const auto p50 = s.quantile(0.50), p99 = s.quantile(0.99);
    CHECK(p50 >= 500us);
    CHECK(p50 <= 625us);
    CHECK(p99 >= 990us);
    CHECK(p99 <= 1000us);  // capped by the max seen
    CHECK(reservoir::HistogramSnapshot{}.quantile(0.5) == 0ns);
}

TEST_CASE("snapshots merge", "[histogram]") {
    reservoir::Histogram a, b;
    a.record(1ms);
    b.record(3ms);
    b.record(-5ns);  // clamped to zero
    auto s = a.snapshot();
    s.merge(b.snapshot());
    CHECK(s.count == 3);
    CHECK(s.max() == 3ms);
    CHECK(s.quantile(0.0) == 0ns);
}
