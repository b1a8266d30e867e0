#pragma once
// reservoir::SignalShutdown: turns SIGTERM and SIGINT into an ordinary call,
// typically shutdown(deadline) of the global pools, with no code at all in a
// signal handler. The constructor blocks the signals in the calling thread;
// threads started afterwards inherit the mask, so construct it first thing in
// main(), before any other thread exists. A dedicated thread takes them with
// sigwait() and runs the callback, free to lock, allocate and log.
//
//   int main() {
//       reservoir::SignalShutdown on_signal([](int) { reservoir::global<reservoir::PgPool>::shutdown_all(10s); });
//       auto& pool = reservoir::global<reservoir::PgPool>::init(reservoir::pg::Config::from_env());
//       ... serve until on_signal.triggered(), or block in on_signal.wait() ...
//   }

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "../core/error.hpp"

namespace reservoir {

class SignalShutdown {
public:
    explicit SignalShutdown(std::function<void(int signal)> on_signal,
                            std::initializer_list<int> signals = {SIGTERM, SIGINT})
        : on_signal_(std::move(on_signal)) {
        if (signals.size() == 0) throw Error(ErrorKind::config, "reservoir: SignalShutdown: no signals given");
        sigemptyset(&set_);
        for (int s : signals) sigaddset(&set_, s);
        wake_signal_ = *signals.begin();
        if (const int err = pthread_sigmask(SIG_BLOCK, &set_, nullptr); err != 0)
            throw Error(ErrorKind::config, "reservoir: SignalShutdown: pthread_sigmask failed: error " +
                                               std::to_string(err));
        thread_ = std::thread([this] { run(); });
    }
    SignalShutdown(const SignalShutdown&) = delete;
    SignalShutdown& operator=(const SignalShutdown&) = delete;

    // Without a signal, stops the waiting thread; with one, waits for the
    // callback to finish. The signals stay blocked.
    ~SignalShutdown() {
        closing_.store(true);
        if (!triggered()) pthread_kill(thread_.native_handle(), wake_signal_);
        thread_.join();
    }

    // Blocks until a signal has arrived and the callback has returned; the signal.
    int wait() {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return done_; });
        return received_;
    }

    // Whether a signal has arrived (the callback may still be running).
    bool triggered() const noexcept { return triggered_.load(); }

private:
    void run() {
        int signal = 0;
        while (sigwait(&set_, &signal) != 0) {
        }
        if (!closing_.load()) {
            triggered_.store(true);
            on_signal_(signal);
        }
        std::lock_guard lk(mu_);
        received_ = signal;
        done_ = true;
        cv_.notify_all();
    }

    std::function<void(int)> on_signal_;
    sigset_t set_{};
    int wake_signal_ = 0;
    std::atomic<bool> closing_{false}, triggered_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    int received_ = 0;
    std::thread thread_;
};

}  // namespace reservoir
