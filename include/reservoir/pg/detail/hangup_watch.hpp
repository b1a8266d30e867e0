#pragma once
// Noticing that the server closed an idle connection, without a system call
// on the borrower's path. One process-wide watcher holds one epoll set and
// one thread. Each connection registers its socket once, at connect, for
// hang-up and error only (EPOLLRDHUP, edge-triggered; EPOLLHUP and EPOLLERR
// come anyway), never for readable: ordinary answers do not wake the
// watcher, only a FIN (a terminated backend, a server shutting down), a
// reset or a socket error does. The watcher then sets the connection's
// flag, and the borrow check reads it: one atomic load. Edge-triggered
// because a hang-up lasts: level-triggered, a dead connection waiting in the
// pool for its next borrow would wake the watcher in a loop.
//
// The flag lags the hang-up by the watcher's wake-up, a few microseconds on
// an idle machine, more when the cores are busy: a borrow in that window gets
// the dead connection, and its first statement fails with ConnectionLost (as
// it would for a server that closes between the check and the statement).
//
// Freed connections are never touched: registrations are keyed by a number
// that is never reused, and the watcher looks a number up and sets its flag
// under the mutex under which a closing connection removes it before the
// flag is freed.
//
// The thread starts with the first registration and ends after the last one
// is removed (an eventfd wakes it to see that), so a process without open
// connections has none. After fork() the child has no watcher thread and
// shares the parent's epoll set: the child makes a watcher of its own on its
// first registration, and leaves the parent's registrations alone. A pool is
// not to be shared across fork() (nor are its connections: two processes
// would speak on one socket); a child makes its own.

#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>

namespace reservoir::pg::detail {

// Tests: when set, every registration fails, as when epoll cannot be used,
// and the borrow check falls back to polling the socket.
inline std::atomic<bool> refuse_hangup_watch{false};

// Bumped in a forked child (pthread_atfork): a watcher of an earlier
// generation belongs to the parent.
inline std::atomic<unsigned> fork_generation{0};
inline void note_fork() noexcept { fork_generation.fetch_add(1, std::memory_order_relaxed); }

class HangupWatcher {
public:
    // This process's watcher, made on first use; null if it cannot be (no
    // epoll or eventfd). Never freed: connections closed by static
    // destructors, in any order, may still deregister.
    static HangupWatcher* instance() noexcept {
        static const bool fork_noted = ::pthread_atfork(nullptr, nullptr, note_fork) == 0;
        if (!fork_noted) return nullptr;
        static std::atomic<HangupWatcher*> current{nullptr};
        HangupWatcher* w = current.load(std::memory_order_acquire);
        while (!w || !w->ours()) {
            HangupWatcher* fresh = new (std::nothrow) HangupWatcher();
            if (!fresh || !fresh->ready()) {
                delete fresh;
                return nullptr;
            }
            if (current.compare_exchange_strong(w, fresh, std::memory_order_acq_rel)) {
                // The parent's, in a forked child: its mutex may have been held by a
                // thread that did not follow, so only its descriptors are let go.
                if (w) w->close_descriptors();
                return fresh;
            }
            delete fresh;  // another thread made one first: `w` is it now
        }
        return w;
    }

    // Watches connected socket `fd`: `flag` is set once the peer closes it or
    // it fails. Returns the registration's number, or 0 when it cannot be
    // watched (the caller then polls). `flag` must outlive the registration.
    std::uint64_t add(int fd, std::atomic<bool>& flag) noexcept {
        if (refuse_hangup_watch.load(std::memory_order_relaxed) || fd < 0) return 0;
        try {
            const std::lock_guard lk(mu_);
            if (failed_) return 0;
            const std::uint64_t id = ++last_id_;
            flags_.emplace(id, &flag);
            epoll_event ev{};
            ev.events = EPOLLRDHUP | EPOLLET;  // not EPOLLIN: answers never wake the watcher
            ev.data.u64 = id;
            if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
                erase_locked(id);
                return 0;
            }
            if (!running_ && !start_locked()) {
                ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
                erase_locked(id);
                return 0;
            }
            return id;
        } catch (...) {  // out of memory
            return 0;
        }
    }

    // Ends registration `id`. `open_fd`: its socket, still open, or -1 once
    // closed (closing a socket takes it out of every epoll set; its number
    // may belong to another socket by now, so it must not be named).
    void remove(std::uint64_t id, int open_fd) noexcept {
        if (!ours()) return;  // a forked child's copy: the epoll set is the parent's
        const std::lock_guard lk(mu_);
        if (open_fd >= 0) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, open_fd, nullptr);
        erase_locked(id);
    }

    HangupWatcher(const HangupWatcher&) = delete;
    HangupWatcher& operator=(const HangupWatcher&) = delete;

private:
    HangupWatcher() noexcept
        : generation_(fork_generation.load(std::memory_order_relaxed)),
          epoll_(::epoll_create1(EPOLL_CLOEXEC)),
          wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = wake_id;
        if (epoll_ >= 0 && wake_ >= 0 && ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev) != 0) close_descriptors();
    }
    ~HangupWatcher() { close_descriptors(); }  // only one never used (a lost race, a failed start)

    bool ready() const noexcept { return epoll_ >= 0 && wake_ >= 0; }
    bool ours() const noexcept { return generation_ == fork_generation.load(std::memory_order_relaxed); }
    void close_descriptors() noexcept {
        if (epoll_ >= 0) ::close(epoll_);
        if (wake_ >= 0) ::close(wake_);
        epoll_ = wake_ = -1;
    }

    // With its last registration gone the thread is woken to end.
    void erase_locked(std::uint64_t id) noexcept {
        flags_.erase(id);
        if (flags_.empty() && running_) {
            const std::uint64_t one = 1;
            [[maybe_unused]] const auto n = ::write(wake_, &one, sizeof one);
        }
    }

    bool start_locked() noexcept {
        // Started with every signal blocked, which it inherits: a signal meant
        // for the application (SIGTERM to a sigwait thread, say) never lands here.
        sigset_t all, old;
        ::sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &old);
        try {
            std::thread([this] { run(); }).detach();
            running_ = true;
        } catch (...) {  // no thread: the caller polls
        }
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        return running_;
    }

    void run() noexcept {
        epoll_event events[64];
        for (;;) {
            const int n = ::epoll_wait(epoll_, events, 64, -1);
            const std::lock_guard lk(mu_);
            if (n < 0 && errno != EINTR) {  // not with a valid set; if it happens, nothing is watched any more:
                failed_ = true;             // every connection is given up, and their successors poll
                for (const auto& [id, flag] : flags_) flag->store(true, std::memory_order_release);
                running_ = false;
                return;
            }
            for (int i = 0; i < n; ++i) {
                const std::uint64_t id = events[i].data.u64;
                if (id == wake_id) {
                    std::uint64_t count;
                    [[maybe_unused]] const auto r = ::read(wake_, &count, sizeof count);
                } else if (const auto it = flags_.find(id); it != flags_.end()) {
                    it->second->store(true, std::memory_order_release);
                }
            }
            // Decided under the mutex: a registration made after this starts another thread.
            if (flags_.empty()) {
                running_ = false;
                return;
            }
        }
    }

    static constexpr std::uint64_t wake_id = 0;  // registrations count from 1

    const unsigned generation_;
    int epoll_, wake_;
    std::mutex mu_;
    std::unordered_map<std::uint64_t, std::atomic<bool>*> flags_;  // registration -> its connection's flag
    std::uint64_t last_id_ = wake_id;
    bool running_ = false;  // a thread serves the set (it ends, under mu_, once flags_ is empty)
    bool failed_ = false;   // epoll_wait failed: no more registrations
};

// One connection's registration, owning the flag the watcher sets. Move-only;
// the flag stays where it is, on the heap.
class HangupWatch {
public:
    HangupWatch() noexcept = default;  // not watching: the caller polls
    // Watches connected socket `fd`, or not at all when it cannot be watched.
    explicit HangupWatch(int fd) noexcept {
        HangupWatcher* watcher = HangupWatcher::instance();
        if (!watcher) return;
        std::unique_ptr<State> state(new (std::nothrow) State{{false}, watcher, 0, fd});
        if (!state || (state->id = watcher->add(fd, state->hung_up)) == 0) return;
        state_ = std::move(state);
    }
    HangupWatch(HangupWatch&&) noexcept = default;
    HangupWatch& operator=(HangupWatch&& other) noexcept {
        if (this != &other) {
            stop(-1);
            state_ = std::move(other.state_);
        }
        return *this;
    }
    ~HangupWatch() { stop(-1); }

    // Whether the watcher covers `fd`: the socket registered, still open. (A
    // connection whose socket was replaced is not covered.)
    bool covers(int fd) const noexcept { return state_ && fd >= 0 && state_->fd == fd; }
    // The peer closed the socket, or it failed: the connection is dead.
    bool hung_up() const noexcept { return state_ && state_->hung_up.load(std::memory_order_acquire); }

    // Ends the watch before the socket closes. `current_fd`: the socket the
    // connection holds now; only the registered one, still open, is named
    // to epoll.
    void stop(int current_fd) noexcept {
        if (!state_) return;
        state_->watcher->remove(state_->id, current_fd == state_->fd ? current_fd : -1);
        state_.reset();
    }

private:
    struct State {
        std::atomic<bool> hung_up;
        HangupWatcher* watcher;
        std::uint64_t id;
        int fd;
    };
    std::unique_ptr<State> state_;
};

}  // namespace reservoir::pg::detail
