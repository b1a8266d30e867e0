#pragma once
// The pool's mutex and its lock, annotated for clang's thread-safety analysis
// (-Wthread-safety, on in the clang build): a member marked
// RESERVOIR_GUARDED_BY(mu_) may be touched only with mu_ held, and a function
// marked RESERVOIR_REQUIRES(mu_) only called so. On other compilers the
// macros are empty and the types are a std::mutex and a unique_lock.
//
// A function that lets go of the lock for I/O and takes it back says
// RESERVOIR_REQUIRES(mu_) and calls mu_.unlock() and mu_.lock() itself, so
// the analysis checks that nothing guarded is touched in between. Its
// caller's Lock stays consistent, as the lock is held again on return.

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define RESERVOIR_TSA(x) __attribute__((x))
#else
#define RESERVOIR_TSA(x)
#endif

#define RESERVOIR_CAPABILITY(x) RESERVOIR_TSA(capability(x))
#define RESERVOIR_SCOPED_CAPABILITY RESERVOIR_TSA(scoped_lockable)
#define RESERVOIR_GUARDED_BY(x) RESERVOIR_TSA(guarded_by(x))
#define RESERVOIR_REQUIRES(...) RESERVOIR_TSA(requires_capability(__VA_ARGS__))
#define RESERVOIR_ACQUIRE(...) RESERVOIR_TSA(acquire_capability(__VA_ARGS__))
#define RESERVOIR_RELEASE(...) RESERVOIR_TSA(release_capability(__VA_ARGS__))
#define RESERVOIR_TRY_ACQUIRE(...) RESERVOIR_TSA(try_acquire_capability(__VA_ARGS__))
#define RESERVOIR_EXCLUDES(...) RESERVOIR_TSA(locks_excluded(__VA_ARGS__))
#define RESERVOIR_NO_THREAD_SAFETY_ANALYSIS RESERVOIR_TSA(no_thread_safety_analysis)

namespace reservoir::detail {

class RESERVOIR_CAPABILITY("mutex") Mutex {
public:
    void lock() RESERVOIR_ACQUIRE() { m_.lock(); }
    void unlock() RESERVOIR_RELEASE() { m_.unlock(); }
    bool try_lock() RESERVOIR_TRY_ACQUIRE(true) { return m_.try_lock(); }

private:
    friend class Lock;
    std::mutex m_;
};

// std::unique_lock for a Mutex: held from construction, let go and taken back
// with unlock() and lock(), let go by the destructor if held.
class RESERVOIR_SCOPED_CAPABILITY Lock {
public:
    explicit Lock(Mutex& m) RESERVOIR_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~Lock() RESERVOIR_RELEASE() {
        if (owns_) m_.unlock();
    }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

    void lock() RESERVOIR_ACQUIRE() {
        m_.lock();
        owns_ = true;
    }
    void unlock() RESERVOIR_RELEASE() {
        m_.unlock();
        owns_ = false;
    }
    bool try_lock() RESERVOIR_TRY_ACQUIRE(true) { return owns_ = m_.try_lock(); }
    bool owns_lock() const noexcept { return owns_; }

    // A callee let go of the mutex for good (and says so with RESERVOIR_RELEASE):
    // nothing is left for the destructor to do.
    void released() noexcept { owns_ = false; }

    // Waits on `cv` until notified or `until`; the lock is held before and after.
    void wait_until(std::condition_variable& cv, std::chrono::steady_clock::time_point until) {
        std::unique_lock<std::mutex> native(m_.m_, std::adopt_lock);
        cv.wait_until(native, until);
        native.release();
    }

private:
    Mutex& m_;
    bool owns_ = true;
};

}  // namespace reservoir::detail
