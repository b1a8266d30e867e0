#pragma once
// pg::QueryMetrics: what the driver records about the statements its
// connections run: a latency histogram (reservoir_query_seconds) and slow
// query events. One per driver, shared by its connections. Recording is two
// clock reads and a few relaxed atomic adds: no lock, no allocation, unless
// a statement is slow and a listener is set.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "../core/clock.hpp"
#include "../core/events.hpp"
#include "../core/histogram.hpp"

namespace reservoir::pg {

class QueryMetrics {
public:
    // Slow query events carry at most this much of the statement's text.
    static constexpr std::size_t max_statement_text = 1024;

    // `slow_threshold` zero: no slow query events.
    QueryMetrics(std::chrono::nanoseconds slow_threshold, std::shared_ptr<EventListener> listener) noexcept
        : slow_threshold_(slow_threshold), listener_(std::move(listener)) {}

    // `sql` is the statement's text: $n placeholders, never the parameters.
    void record(std::string_view sql, std::chrono::nanoseconds took) noexcept {
        time_.record(took);
        if (slow_threshold_.count() <= 0 || took < slow_threshold_) return;
        slow_queries_.fetch_add(1, std::memory_order_relaxed);
        if (listener_)
            listener_->on_event({EventKind::slow_query, took, sql.substr(0, std::min(sql.size(), max_statement_text)), {}});
    }

    HistogramSnapshot query_time() const noexcept { return time_.snapshot(); }
    std::uint64_t slow_queries() const noexcept { return slow_queries_.load(std::memory_order_relaxed); }
    std::chrono::nanoseconds slow_threshold() const noexcept { return slow_threshold_; }

private:
    const std::chrono::nanoseconds slow_threshold_;
    const std::shared_ptr<EventListener> listener_;
    Histogram time_;
    std::atomic<std::uint64_t> slow_queries_{0};
};

namespace detail {
// Times one statement, whatever way it ends (result, error, timeout).
class StatementTimer {
public:
    StatementTimer(QueryMetrics* metrics, std::string_view sql) noexcept
        : metrics_(metrics), sql_(sql), start_(metrics ? std::chrono::steady_clock::now() : time_point{}) {}
    StatementTimer(const StatementTimer&) = delete;
    StatementTimer& operator=(const StatementTimer&) = delete;
    ~StatementTimer() {
        if (metrics_) metrics_->record(sql_, std::chrono::steady_clock::now() - start_);
    }

private:
    QueryMetrics* metrics_;
    std::string_view sql_;
    time_point start_;
};
}  // namespace detail

}  // namespace reservoir::pg
