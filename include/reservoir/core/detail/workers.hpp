#pragma once
// The workers' side of the engine, as far as it is separate from the lock:
// the list of jobs (busy slots waiting for a worker) and the decision of what
// a worker does next when it has no job, and until when it sleeps. The worker
// loop itself (pool_state.hpp) runs them under the pool's lock.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

#include "../assert.hpp"
#include "../clock.hpp"

namespace reservoir::detail {

// Slots the pool owns (busy) and a worker must finish with.
template <class SlotT>
class JobList {
public:
    enum Kind { reset, recheck };  // a session reset, or a ping the borrower had no time for
    struct Job {
        SlotT* slot;
        Kind kind;
    };

    // Room for every slot, so that queueing a job never allocates.
    explicit JobList(std::size_t slots) { jobs_.reserve(slots); }

    void push(SlotT& s, Kind kind) noexcept {
        RESERVOIR_ASSERT(jobs_.size() < jobs_.capacity(), "more jobs than slots");
        jobs_.push_back({&s, kind});
    }

    std::optional<Job> pop() noexcept {
        if (jobs_.empty()) return std::nullopt;
        const Job job = jobs_.back();
        jobs_.pop_back();
        return job;
    }

    bool empty() const noexcept { return jobs_.empty(); }

private:
    std::vector<Job> jobs_;
};

// What an idle worker does next, once no async waiter is left to finish and no
// job or connect is due.
struct WorkerPlan {
    enum Step { time_out, housekeep, sleep } step;
    time_point wake;  // sleep: until then, or until notified
};

// `async_due`: the earliest async deadline (max when none); `retry_at`: the
// end of the connect backoff; `cooldown_end`: when an open breaker turns
// half-open (max when it is not open), so that a pool below min probes at once.
inline WorkerPlan plan_worker(time_point now, time_point async_due, time_point next_housekeeping, time_point retry_at,
                              time_point cooldown_end) noexcept {
    if (now >= async_due) return {WorkerPlan::time_out, now};
    if (now >= next_housekeeping) return {WorkerPlan::housekeep, now};
    time_point wake = std::min(next_housekeeping, async_due);
    if (retry_at > now) wake = std::min(wake, retry_at);
    return {WorkerPlan::sleep, std::min(wake, cooldown_end)};
}

}  // namespace reservoir::detail
