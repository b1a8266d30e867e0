#pragma once
// Samples, from its own admin connection every `every` until stopped, how
// many sessions the server counts for us (by whatever query the test gives),
// and keeps the peak. Survives a server restart: a failed sample drops the
// connection and the next one, 50 ms later, reconnects. Shared by the fault
// and fleet suites.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <reservoir/reservoir.hpp>

namespace testsupport {

class SessionSampler {
public:
    using Clock = std::chrono::steady_clock;
    // Runs on the sampler's connection; returns the sessions counted now.
    using Count = std::function<long long(reservoir::pg::Connection&)>;

    SessionSampler(std::string admin_url, Count count, Clock::duration every = std::chrono::milliseconds(5))
        : admin_url_(std::move(admin_url)), count_(std::move(count)), every_(every), thread_([this] { run(); }) {}
    ~SessionSampler() { stop(); }
    SessionSampler(const SessionSampler&) = delete;
    SessionSampler& operator=(const SessionSampler&) = delete;

    void stop() {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    long long peak() const noexcept { return peak_.load(); }
    long long last() const noexcept { return last_.load(); }
    std::uint64_t samples() const noexcept { return samples_.load(); }
    std::uint64_t failures() const noexcept { return failures_.load(); }

private:
    void run() {
        using namespace std::chrono_literals;
        std::optional<reservoir::pg::Connection> admin;
        const auto end_by = Clock::now() + 120s;  // never outlives a hung test by much
        std::unique_lock lk(mu_);
        while (!stop_ && Clock::now() < end_by) {
            lk.unlock();
            auto pause = every_;
            try {
                if (!admin)
                    admin.emplace(reservoir::pg::Driver(reservoir::pg::Config::from_url(admin_url_)).connect(Clock::now() + 5s));
                const long long n = count_(*admin);
                last_.store(n);
                peak_.store(std::max(peak_.load(), n));
                samples_.fetch_add(1);
            } catch (...) {
                failures_.fetch_add(1);
                admin.reset();  // the server may be restarting: try again a little later
                pause = 50ms;
            }
            lk.lock();
            cv_.wait_for(lk, pause, [&] { return stop_; });
        }
    }

    const std::string admin_url_;
    const Count count_;
    const Clock::duration every_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::atomic<long long> peak_{0}, last_{0};
    std::atomic<std::uint64_t> samples_{0}, failures_{0};
    std::thread thread_;  // last: starts once the rest is built
};

}  // namespace testsupport
