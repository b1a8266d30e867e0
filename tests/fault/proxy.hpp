#pragma once
// A loopback TCP proxy for fault-injection tests: it forwards 127.0.0.1:port()
// to 127.0.0.1:upstream_port and, on demand, delays, stalls, resets or refuses
// traffic, so a test can break the network under a client without touching
// the server. One thread polls every socket; set_mode() returns only once the
// worker has applied the mode, so a test needs no waiting of its own.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace fault {

enum class Mode {
    pass,           // forward both ways
    delay,          // forward, holding each chunk for set_delay()
    blackhole,      // accept, but read and forward nothing on any connection
    blackhole_new,  // existing connections pass; ones accepted now stall until the mode changes
    reset,          // RST every connection, existing and new
    refuse,         // stop listening (ECONNREFUSED); existing connections pass
};

class FaultProxy {
public:
    using Clock = std::chrono::steady_clock;
    // Per direction and connection: a side that stops reading stalls its peer
    // through TCP flow control instead of growing memory.
    static constexpr std::size_t buffer_cap = 256 * 1024;

    explicit FaultProxy(std::uint16_t upstream_port) : upstream_port_(upstream_port) {
        listener_ = open_listener(0);
        if (listener_ < 0) throw std::system_error(errno, std::generic_category(), "FaultProxy: listen");
        port_ = local_port(listener_);
        wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_ < 0) {
            const int err = errno;
            ::close(listener_);
            throw std::system_error(err, std::generic_category(), "FaultProxy: eventfd");
        }
        worker_ = std::thread([this] { run(); });
    }

    ~FaultProxy() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake();
        worker_.join();
        for (auto& c : conns_) close_conn(*c, false);
        if (listener_ >= 0) ::close(listener_);
        ::close(wake_);
    }

    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    std::uint16_t port() const noexcept { return port_; }

    // Blocks until the worker has applied `mode` (sockets reset, listener
    // closed or reopened), so the caller can observe its effect right away.
    void set_mode(Mode mode) {
        std::unique_lock lock(mutex_);
        mode_ = mode;
        const auto generation = ++requested_;
        wake();
        applied_cv_.wait(lock, [&] { return applied_ >= generation || stop_; });
    }
    Mode mode() const {
        std::lock_guard lock(mutex_);
        return mode_;
    }
    void blackhole_new_only() { set_mode(Mode::blackhole_new); }

    // Applies to chunks read from now on in Mode::delay; queued ones keep
    // their time, and order is kept either way.
    void set_delay(Clock::duration delay) {
        std::lock_guard lock(mutex_);
        delay_ = delay;
    }

    std::uint64_t accepted() const noexcept { return accepted_.load(); }
    std::uint64_t open_connections() const noexcept { return open_.load(); }
    std::uint64_t bytes_to_upstream() const noexcept { return to_upstream_.load(); }
    std::uint64_t bytes_to_client() const noexcept { return to_client_.load(); }

private:
    struct Chunk {
        Clock::time_point ready;
        std::string bytes;
    };
    // One direction of a connection: bytes read from one socket, not yet written to the other.
    struct Pipe {
        std::deque<Chunk> chunks;
        std::size_t offset = 0;    // into chunks.front()
        std::size_t buffered = 0;  // bytes not yet written
        bool eof = false;          // the source sent FIN
        bool shut = false;         // and we passed it on
        bool can_read() const { return !eof && buffered < buffer_cap; }
        bool ready(Clock::time_point now) const { return !chunks.empty() && chunks.front().ready <= now; }
    };
    struct Conn {
        int client = -1;
        int upstream = -1;
        bool connecting = true;  // the non-blocking connect upstream is unconfirmed
        bool held = false;       // accepted under blackhole_new
        bool dead = false;
        Pipe up;    // client -> upstream
        Pipe down;  // upstream -> client
    };

    static int open_listener(std::uint16_t port) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        const int one = 1;  // to re-listen on our port while accepted sockets still hold it
        sockaddr_in addr = loopback(port);
        if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 128) != 0) {
            const int err = errno;
            ::close(fd);
            errno = err;
            return -1;
        }
        return fd;
    }
    static sockaddr_in loopback(std::uint16_t port) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return addr;
    }
    static std::uint16_t local_port(int fd) {
        sockaddr_in addr{};
        socklen_t len = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        return ntohs(addr.sin_port);
    }
    // SO_LINGER {1, 0}: close() sends RST instead of FIN.
    static void abort_fd(int fd) {
        const linger hard{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        ::close(fd);
    }
    void close_conn(Conn& c, bool rst) {
        for (int fd : {c.client, c.upstream}) {
            if (fd < 0) continue;
            if (rst)
                abort_fd(fd);
            else
                ::close(fd);
        }
        c.client = c.upstream = -1;
        c.dead = true;
    }
    void wake() {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
    }

    // Reads what the pipe has room for; false when the socket failed.
    bool pull(int fd, Pipe& p, Clock::time_point ready) {
        while (p.can_read()) {
            const ssize_t n = ::recv(fd, scratch_.data(), std::min(scratch_.size(), buffer_cap - p.buffered), 0);
            if (n < 0) return errno == EAGAIN || errno == EINTR;
            if (n == 0) {
                p.eof = true;
                break;
            }
            p.buffered += static_cast<std::size_t>(n);
            p.chunks.push_back({ready, std::string(scratch_.data(), static_cast<std::size_t>(n))});
        }
        return true;
    }
    // Writes the chunks that are due, then passes on a FIN; false when the socket failed.
    static bool push(int fd, Pipe& p, Clock::time_point now, std::atomic<std::uint64_t>& counter) {
        while (p.ready(now)) {
            const std::string& b = p.chunks.front().bytes;
            const ssize_t n = ::send(fd, b.data() + p.offset, b.size() - p.offset, MSG_NOSIGNAL);
            if (n < 0) return errno == EAGAIN || errno == EINTR;
            counter += static_cast<std::uint64_t>(n);
            p.buffered -= static_cast<std::size_t>(n);
            p.offset += static_cast<std::size_t>(n);
            if (p.offset == b.size()) {
                p.chunks.pop_front();
                p.offset = 0;
            }
        }
        if (p.eof && p.chunks.empty() && !p.shut) {
            ::shutdown(fd, SHUT_WR);
            p.shut = true;
        }
        return true;
    }

    void service(Conn& c, short client_events, short upstream_events, Clock::time_point now,
                 Clock::time_point ready) {
        constexpr short readable = POLLIN | POLLHUP;  // a hangup reads as EOF or an error
        if (c.connecting && upstream_events) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(c.upstream, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) return close_conn(c, true);  // upstream refused: the client sees a reset
            c.connecting = false;
            upstream_events = 0;
        }
        // An RST on either side resets the other.
        bool ok = !((client_events | upstream_events) & POLLERR);
        if (ok && client_events & readable) ok = pull(c.client, c.up, ready);
        if (ok && upstream_events & readable) ok = pull(c.upstream, c.down, ready);
        if (ok && !c.connecting) ok = push(c.upstream, c.up, now, to_upstream_);
        if (ok) ok = push(c.client, c.down, now, to_client_);
        if (!ok) return close_conn(c, true);
        if (c.up.shut && c.down.shut) close_conn(c, false);
    }

    void accept_all(Mode mode) {
        for (;;) {
            const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;  // EAGAIN, or a client that gave up: nothing to keep
            ++accepted_;
            if (mode == Mode::reset) {
                abort_fd(fd);
                continue;
            }
            auto c = std::make_unique<Conn>();
            c->client = fd;
            c->held = mode == Mode::blackhole_new;
            c->upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            const int one = 1;  // forward each chunk as it comes: Nagle would add delays of its own
            for (int s : {c->client, c->upstream}) ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            const sockaddr_in addr = loopback(upstream_port_);
            if (c->upstream < 0 ||
                (::connect(c->upstream, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
                 errno != EINPROGRESS)) {
                close_conn(*c, true);
                continue;
            }
            conns_.push_back(std::move(c));
        }
    }

    // The worker's side of set_mode().
    void apply(Mode to) {
        if (to == Mode::reset) {
            for (auto& c : conns_) close_conn(*c, true);
            conns_.clear();
            open_ = 0;
        }
        if (to != Mode::blackhole_new)
            for (auto& c : conns_) c->held = false;
        if (to == Mode::refuse && listener_ >= 0) {
            ::close(listener_);
            listener_ = -1;
        }
    }

    void run() {
        Mode mode = Mode::pass;
        std::vector<pollfd> fds;
        for (;;) {
            Clock::duration delay{};
            {
                std::lock_guard lock(mutex_);
                if (stop_) break;
                if (mode_ != mode) apply(mode_);
                mode = mode_;
                delay = delay_;
                // Retried each round should something else have taken the port meanwhile.
                if (mode != Mode::refuse && listener_ < 0) listener_ = open_listener(port_);
                applied_ = requested_;
            }
            applied_cv_.notify_all();

            // Frozen connections and sockets with nothing to do are not polled
            // at all: a pending error or hangup would otherwise wake us in a loop.
            const auto now = Clock::now();
            auto next = Clock::time_point::max();
            fds.assign({{wake_, POLLIN, 0}, {listener_, POLLIN, 0}});
            for (auto& c : conns_) {
                const bool frozen = mode == Mode::blackhole || (mode == Mode::blackhole_new && c->held);
                short ce = 0, ue = 0;
                if (!frozen) {
                    ce = static_cast<short>((c->up.can_read() ? POLLIN : 0) | (c->down.ready(now) ? POLLOUT : 0));
                    ue = c->connecting ? short{POLLOUT}
                                       : static_cast<short>((c->down.can_read() ? POLLIN : 0) |
                                                            (c->up.ready(now) ? POLLOUT : 0));
                    for (const Pipe* p : {&c->up, &c->down})
                        if (!p->chunks.empty() && !p->ready(now)) next = std::min(next, p->chunks.front().ready);
                }
                fds.push_back({ce ? c->client : -1, ce, 0});
                fds.push_back({ue ? c->upstream : -1, ue, 0});
            }
            int timeout = listener_ < 0 && mode != Mode::refuse ? 10 : -1;
            if (next != Clock::time_point::max()) {
                const auto due = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
                const int ms = static_cast<int>(std::min<decltype(due)>(due, 60'000));
                timeout = timeout < 0 ? ms : std::min(timeout, ms);
            }
            if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) break;

            if (fds[0].revents) {
                std::uint64_t count;
                [[maybe_unused]] auto n = ::read(wake_, &count, sizeof count);
            }
            const auto after = Clock::now();
            const auto ready = after + (mode == Mode::delay ? delay : Clock::duration{});
            for (std::size_t i = 0; i < conns_.size(); ++i)
                if (fds[2 + 2 * i].fd >= 0 || fds[3 + 2 * i].fd >= 0)
                    service(*conns_[i], fds[2 + 2 * i].revents, fds[3 + 2 * i].revents, after, ready);
            std::erase_if(conns_, [](const auto& c) { return c->dead; });
            if (fds[1].revents && listener_ >= 0) accept_all(mode);
            open_ = conns_.size();
        }
        {
            std::lock_guard lock(mutex_);
            stop_ = true;  // also after a failed poll(): set_mode() must not wait for a worker that is gone
        }
        applied_cv_.notify_all();
    }

    const std::uint16_t upstream_port_;
    std::uint16_t port_ = 0;
    int listener_ = -1;  // after construction, the worker's alone (-1 while refusing)
    int wake_ = -1;
    std::vector<std::unique_ptr<Conn>> conns_;  // the worker's alone
    std::vector<char> scratch_ = std::vector<char>(64 * 1024);

    mutable std::mutex mutex_;
    std::condition_variable applied_cv_;
    Mode mode_ = Mode::pass;
    Clock::duration delay_{};
    std::uint64_t requested_ = 0, applied_ = 0;
    bool stop_ = false;

    std::atomic<std::uint64_t> accepted_{0}, open_{0}, to_upstream_{0}, to_client_{0};
    std::thread worker_;
};

}  // namespace fault
