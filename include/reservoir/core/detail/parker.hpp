#pragma once
// Where a queued acquirer sleeps: one sleeper, woken by whoever holds the
// pool's lock, with a small non-zero signal saying why.
//
// Why not a mutex and a condition variable: the waker would have to notify
// while holding the mutex (the sleeper may return and vanish the moment it
// sees its signal), so the sleeper would wake straight into a held mutex and
// sleep again: two context switches per hand-off instead of one, and a
// releasing thread that blocks. On Linux the signal is one atomic word and a
// futex. The waker stores the signal, then asks the kernel to wake the word's
// address and touches nothing else, so the sleeper may vanish at once: a wake
// on an address nobody sleeps on does nothing, and a stray one is a spurious
// wake-up, which every futex sleeper tolerates. The sleeper marks the word
// before it sleeps, so a waker skips the system call when nobody sleeps yet.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

#if defined(__linux__)
#include <ctime>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <condition_variable>
#include <mutex>
#endif

namespace reservoir::detail {

class Parker {
public:
    using clock = std::chrono::steady_clock;

    // The signal, 0 when none is pending.
    std::uint32_t signal() const noexcept {
#if !defined(__linux__)
        std::lock_guard g(mu_);
#endif
        return word_.load(std::memory_order_acquire) & ~sleeping;
    }

    void clear() noexcept {
#if !defined(__linux__)
        std::lock_guard g(mu_);
#endif
        word_.store(0, std::memory_order_relaxed);
    }

    // The system call a signal may still owe its sleeper, made by the
    // destructor: after the waker has let go of its lock, so that the woken
    // thread does not run straight into the held lock, and the waker is not
    // preempted in favour of it while holding the lock. It uses only the
    // word's address: see the comment at the top.
    class Wake {
    public:
        Wake() = default;
        Wake(Wake&& o) noexcept : word_(std::exchange(o.word_, nullptr)) {}
        Wake& operator=(Wake&& o) noexcept {
            std::swap(word_, o.word_);
            return *this;
        }
        ~Wake() {
#if defined(__linux__)
            if (word_) ::syscall(SYS_futex, word_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#endif
        }

    private:
        friend class Parker;
        explicit Wake(std::uint32_t* word) noexcept : word_(word) {}
        std::uint32_t* word_ = nullptr;
    };

    // Stores a non-zero signal: the waker's last access to the parker. What
    // is left to do (a system call if the sleeper is in the kernel) is returned.
    [[nodiscard]] Wake post(std::uint32_t signal) noexcept {
#if defined(__linux__)
        if (word_.exchange(signal, std::memory_order_acq_rel) == sleeping) return Wake(futex_word());
#else
        std::lock_guard g(mu_);
        word_.store(signal, std::memory_order_release);
        cv_.notify_one();
#endif
        return Wake();
    }

    // Sleeps until a signal is pending or the deadline passes; returns the
    // signal, 0 at the deadline.
    std::uint32_t sleep_until(clock::time_point deadline) noexcept {
#if defined(__linux__)
        for (;;) {
            std::uint32_t s = word_.load(std::memory_order_acquire);
            if (s != 0) return s;
            if (clock::now() >= deadline) return 0;
            if (!word_.compare_exchange_strong(s, sleeping, std::memory_order_acquire)) return s;
            // steady_clock is CLOCK_MONOTONIC, the clock FUTEX_WAIT_BITSET's absolute timeout uses.
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
            const timespec at{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
            ::syscall(SYS_futex, futex_word(), FUTEX_WAIT_BITSET_PRIVATE, sleeping, &at, nullptr, FUTEX_BITSET_MATCH_ANY);
            s = sleeping;  // woken, timed out or spurious: take the mark back unless a signal replaced it
            if (!word_.compare_exchange_strong(s, 0, std::memory_order_acquire)) return s;
        }
#else
        std::unique_lock l(mu_);
        cv_.wait_until(l, deadline, [&] { return word_.load(std::memory_order_relaxed) != 0; });
        return word_.load(std::memory_order_relaxed);
#endif
    }

private:
    static constexpr std::uint32_t sleeping = 1u << 31;  // the sleeper is (about to be) in the kernel
    std::atomic<std::uint32_t> word_{0};
#if defined(__linux__)
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free);
    std::uint32_t* futex_word() noexcept { return reinterpret_cast<std::uint32_t*>(&word_); }
#else
    mutable std::mutex mu_;
    std::condition_variable cv_;
#endif
};

}  // namespace reservoir::detail
