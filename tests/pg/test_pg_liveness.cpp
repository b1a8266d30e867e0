// The borrow check of a pg connection: a connection the server closed while
// it sat idle never reaches a borrower, and one it did not close costs the
// borrower no system call (pg/detail/hangup_watch.hpp).

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <poll.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../fault/proxy.hpp"
#include "pg_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using pgtest::Clock;
namespace pg = reservoir::pg;

#if defined(__SANITIZE_THREAD__)
constexpr bool thread_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool thread_sanitizer = true;
#else
constexpr bool thread_sanitizer = false;
#endif
#else
constexpr bool thread_sanitizer = false;
#endif

// Waits without sleeping until `condition` holds or `limit` passes; false if it never did.
template <class Condition>
bool spin_until(Condition condition, Clock::duration limit = 5s) {
    for (const auto until = Clock::now() + limit; !condition(); std::this_thread::yield())
        if (Clock::now() >= until) return false;
    return true;
}

// True when every other thread of this process sleeps in epoll_wait (the
// hang-up watcher's thread, once started). A fork() at such a moment finds no
// thread inside the allocator: g++ 12's AddressSanitizer does not hold its
// allocator's locks across fork(), so a child forked while another thread
// allocates (the watcher starting) can block for ever in its first malloc.
// A thread whose state cannot be read is not waited for.
bool other_threads_in_epoll_wait() {
    const std::string self = std::to_string(::syscall(SYS_gettid));
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        if (task.path().filename() == self) continue;
        std::ifstream in(task.path() / "syscall");
        if (!in) continue;
        long number = -1;  // "running" when not in a system call
        if (!(in >> number) || (number != SYS_epoll_wait && number != SYS_epoll_pwait)) return false;
    }
    return true;
}

// A pool of `size` connections, all open, in which no ping on borrow is due:
// the local check alone stands between a borrower and a dead connection.
pg::Config local_check_only(pg::Config config, std::size_t size) {
    config.pool.min_size = config.pool.max_size = size;
    config.pool.validate_after_idle = std::chrono::hours(1);
    return config;
}

// Borrows every connection of the pool at once (so all are open), and returns
// them. The pointers stay valid while the pool keeps those connections; only
// their flags are read through them while they are idle.
std::vector<const pg::Connection*> open_all(reservoir::PgPool& pool, std::size_t size) {
    std::vector<reservoir::PgPool::Lease> leases;
    std::vector<const pg::Connection*> conns;
    for (std::size_t i = 0; i < size; ++i) {
        leases.push_back(pool.acquire(10s));
        conns.push_back(&*leases.back());
    }
    return conns;
}

std::vector<int> backend_pids(const std::vector<const pg::Connection*>& conns) {
    std::vector<int> pids;
    for (const auto* c : conns) pids.push_back(c->backend_pid());
    return pids;
}

void terminate_all(const std::vector<int>& pids) {
    auto admin = pgtest::connect_admin();
    for (int pid : pids) REQUIRE(admin.query("SELECT pg_terminate_backend($1, 5000)", pid).scalar<bool>());
}

// Restores the watcher's registrations when a test that refused them ends.
struct RefuseHangupWatch {
    RefuseHangupWatch() { pg::detail::refuse_hangup_watch = true; }
    ~RefuseHangupWatch() { pg::detail::refuse_hangup_watch = false; }
    RefuseHangupWatch(const RefuseHangupWatch&) = delete;
    RefuseHangupWatch& operator=(const RefuseHangupWatch&) = delete;
};

// Counts the system calls this thread makes while armed, with Linux's syscall
// user dispatch (5.11+): each one raises SIGSYS, whose handler counts it, makes
// it on the caller's behalf and disarms, so an armed stretch reports whether
// it made any call at all, and the first call's number.
class SyscallTrap {
public:
    SyscallTrap() {
#if defined(__x86_64__) && defined(PR_SET_SYSCALL_USER_DISPATCH)
        struct sigaction action {};
        action.sa_sigaction = on_sigsys;
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        if (::sigaction(SIGSYS, &action, &previous_) != 0) return;
        selector = SYSCALL_DISPATCH_FILTER_ALLOW;
        available_ = ::prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0, 0, &selector) == 0;
        if (!available_) ::sigaction(SIGSYS, &previous_, nullptr);
#endif
    }
    ~SyscallTrap() {
#if defined(__x86_64__) && defined(PR_SET_SYSCALL_USER_DISPATCH)
        if (!available_) return;
        ::prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0);
        ::sigaction(SIGSYS, &previous_, nullptr);
#endif
    }
    SyscallTrap(const SyscallTrap&) = delete;
    SyscallTrap& operator=(const SyscallTrap&) = delete;

    bool available() const noexcept { return available_; }

    // Runs `f` armed; true if it made a system call.
    template <class F>
    bool calls(F&& f) {
#if defined(__x86_64__) && defined(PR_SET_SYSCALL_USER_DISPATCH)
        const int before = trapped.load();
        selector = SYSCALL_DISPATCH_FILTER_BLOCK;
        f();
        selector = SYSCALL_DISPATCH_FILTER_ALLOW;
        return trapped.load() != before;
#else
        f();
        return false;
#endif
    }
    static long first_call() noexcept { return first.load(); }

private:
#if defined(__x86_64__) && defined(PR_SET_SYSCALL_USER_DISPATCH)
    static void on_sigsys(int, siginfo_t* info, void* context) {
        selector = SYSCALL_DISPATCH_FILTER_ALLOW;  // before anything that may make a call
        const int saved = errno;
        trapped.fetch_add(1);
        long none = -1;
        first.compare_exchange_strong(none, info->si_syscall);
        greg_t* r = static_cast<ucontext_t*>(context)->uc_mcontext.gregs;
        const long result = ::syscall(info->si_syscall, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8],
                                      r[REG_R9]);
        r[REG_RAX] = result == -1 ? -errno : result;  // the kernel's convention, which the caller expects
        errno = saved;
    }
    struct sigaction previous_ {};
#endif
    static inline volatile char selector = 0;
    static inline std::atomic<int> trapped{0};
    static inline std::atomic<long> first{-1};
    bool available_ = false;
};

}  // namespace

TEST_CASE("liveness: idle connections terminated on the server never reach a borrower", "[pg][liveness]") {
    constexpr std::size_t size = 4;
    reservoir::PgPool pool(local_check_only(pgtest::config(), size));
    const auto conns = open_all(pool, size);
    for (const auto* c : conns) REQUIRE(c->hangup_watched());
    const auto killed = backend_pids(conns);

    terminate_all(killed);
    const auto terminated = Clock::now();
    // The watcher flags each one: the time from the terminate's return is the
    // window in which a borrower could still be lent it.
    REQUIRE(spin_until([&] { return std::all_of(conns.begin(), conns.end(), [](auto* c) { return c->hung_up(); }); }));
    std::printf("[liveness] %zu terminated backends flagged within %lld us of the terminate's return\n", size,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - terminated)
                                           .count()));

    // Every borrow gets a live connection: the dead ones are closed, not lent.
    std::vector<reservoir::PgPool::Lease> leases;
    for (std::size_t i = 0; i < size; ++i) {
        leases.push_back(pool.acquire(10s));
        const int pid = leases.back()->query("SELECT pg_backend_pid()").scalar<int>();
        CHECK(std::find(killed.begin(), killed.end(), pid) == killed.end());
    }
    CHECK(pool.stats().closes.broken == size);
}

TEST_CASE("liveness: connections whose server went away are flagged and never lent", "[pg][liveness]") {
    // The server as the connections see it is a proxy: it goes away with a FIN
    // (a server shutting down) or a reset (a host that rebooted).
    const bool reset = GENERATE(false, true);
    CAPTURE(reset);
    auto config = pgtest::config();
    auto proxy = std::make_unique<fault::FaultProxy>(
        static_cast<std::uint16_t>(std::stoi(pg::Config::from_url(pgtest::database_url()).port)));
    config.host = "127.0.0.1";
    config.port = std::to_string(proxy->port());
    config.pool.breaker_threshold = 0;  // the reconnects fail; the acquire below is to fail at its deadline
    constexpr std::size_t size = 3;
    reservoir::PgPool pool(local_check_only(config, size));
    const auto conns = open_all(pool, size);
    for (const auto* c : conns) REQUIRE(c->hangup_watched());

    if (reset)
        proxy->set_mode(fault::Mode::reset);
    else
        proxy.reset();  // closes both ends of every connection
    REQUIRE(spin_until([&] { return std::all_of(conns.begin(), conns.end(), [](auto* c) { return c->hung_up(); }); }));
    for (const auto* c : conns) CHECK_FALSE(c->usable());

    // Nothing to lend: the three are closed, and no new connection can be opened.
    CHECK_THROWS_AS(pool.acquire(300ms), reservoir::AcquireTimeout);
    CHECK(pool.stats().closes.broken == size);
}

TEST_CASE("liveness: without epoll the borrow check polls the socket and still sees a closed one", "[pg][liveness]") {
    const RefuseHangupWatch refuse;
    constexpr std::size_t size = 3;
    reservoir::PgPool pool(local_check_only(pgtest::config(), size));
    const auto conns = open_all(pool, size);
    for (const auto* c : conns) REQUIRE_FALSE(c->hangup_watched());
    const auto killed = backend_pids(conns);

    terminate_all(killed);
    // Until the FIN has arrived there is nothing to see; wait for it on the socket, not on the pool.
    for (const auto* c : conns) {
        pollfd p{c->socket(), POLLRDHUP, 0};
        REQUIRE(::poll(&p, 1, 5000) == 1);
        CHECK_FALSE(c->hung_up());  // nobody watches it
    }

    std::vector<reservoir::PgPool::Lease> leases;
    for (std::size_t i = 0; i < size; ++i) {
        leases.push_back(pool.acquire(10s));
        const int pid = leases.back()->query("SELECT pg_backend_pid()").scalar<int>();
        CHECK(std::find(killed.begin(), killed.end(), pid) == killed.end());
        CHECK_FALSE(leases.back()->hangup_watched());
    }
    CHECK(pool.stats().closes.broken == size);
}

TEST_CASE("liveness: watches end while the watcher handles their hang-ups", "[pg][liveness][stress]") {
    // Sockets hang up and their watches end at once, from several threads, so
    // that the watcher sets flags while their owners free them, and starts
    // and stops its thread as registrations come and go. ASan and TSan builds
    // see any touch of a freed flag.
    namespace detail = pg::detail;
    const auto until = Clock::now() + 2s;
    std::atomic<int> registered{0}, flagged{0}, waited{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 3000 && Clock::now() < until; ++i) {
                int sv[2];
                if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
                auto watch = std::make_optional<detail::HangupWatch>(sv[0]);
                if (watch->covers(sv[0])) registered.fetch_add(1);
                ::close(sv[1]);  // the peer hangs up: the watcher wakes for it
                if ((i + t) % 4 == 0) {  // sometimes the flag is awaited, mostly the watch ends at once
                    waited.fetch_add(1);
                    if (spin_until([&] { return watch->hung_up(); })) flagged.fetch_add(1);
                }
                watch->stop(sv[0]);
                watch.reset();
                ::close(sv[0]);
            }
        });
    for (auto& t : threads) t.join();
    std::printf("[liveness] %d sockets watched and hung up, %d of them awaited\n", registered.load(), waited.load());
    CHECK(registered.load() > 0);
    CHECK(flagged.load() == waited.load());

    // The same with real connections: backends terminated while their connections close.
    auto admin = pgtest::connect_admin();
    const auto config = pgtest::config();
    for (int round = 0; round < 3; ++round) {
        std::vector<pg::Connection> conns;
        std::string pids;
        for (int i = 0; i < 8; ++i) {
            conns.push_back(pgtest::connect(config));
            pids += (pids.empty() ? "" : ",") + std::to_string(conns.back().backend_pid());
        }
        admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(ARRAY[" + pids + "]) AS pid");
        std::vector<pg::Connection> half(std::make_move_iterator(conns.begin() + 4),
                                         std::make_move_iterator(conns.end()));
        std::thread closer([&] { half.clear(); });
        conns.clear();
        closer.join();
    }
}

TEST_CASE("liveness: borrowing from a warm pool makes no system call", "[pg][liveness]") {
    if (thread_sanitizer) {
        WARN("skipped under ThreadSanitizer: its signal interception kills the process on the SIGSYS that "
             "counts a system call");
        return;
    }
    constexpr std::size_t size = 4;
    constexpr int cycles = 2000;
    const auto count_cycles_with_calls = [&](reservoir::PgPool& pool) {
        open_all(pool, size);
        { auto warm = pool.acquire(); }  // the thread's slot hint, and a fresh last_used
        SyscallTrap trap;
        if (!trap.available()) return -1;
        // The pool reads the clock on every cycle: that must be the vDSO's, not a system call.
        REQUIRE_FALSE(trap.calls([] { (void)Clock::now(); }));
        int with_calls = 0;
        for (int i = 0; i < cycles; ++i) with_calls += trap.calls([&] { auto lease = pool.acquire(); }) ? 1 : 0;
        INFO("the first system call: number " << SyscallTrap::first_call());
        return with_calls;
    };

    reservoir::PgPool pool(local_check_only(pgtest::config(), size));
    const int with_calls = count_cycles_with_calls(pool);
    if (with_calls < 0) {
        WARN("this kernel has no syscall user dispatch (Linux 5.11+, x86-64), which counts the system calls");
        return;
    }
    CHECK(with_calls == 0);

    // The counter counts: where the socket is not watched, every borrow polls it.
    const RefuseHangupWatch refuse;
    reservoir::PgPool polling(local_check_only(pgtest::config(), size));
    CHECK(count_cycles_with_calls(polling) == cycles);
}

TEST_CASE("liveness: a forked child watches its own connections and leaves the parent's alone", "[pg][liveness]") {
    if (thread_sanitizer) {
        WARN("skipped under ThreadSanitizer, which does not support threads started after a multi-threaded fork");
        return;
    }
    auto parent = pgtest::connect();  // the watcher's thread runs, with this registration
    REQUIRE(parent.hangup_watched());
    const auto config = pgtest::config();
    const auto admin_config = pg::Config::from_url(pgtest::admin_url());

    REQUIRE(spin_until(other_threads_in_epoll_wait));
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // No Catch2 here: the exit status says what failed. _exit(), so that the
        // copy of `parent`, whose socket the child shares, is never closed here.
        int status = 0;
        try {
            auto own = pgtest::connect(config);
            auto admin = pgtest::connect(admin_config);
            if (!own.hangup_watched()) {
                status = 2;
            } else {
                admin.query("SELECT pg_terminate_backend($1, 5000)", own.backend_pid());
                status = spin_until([&] { return own.hung_up(); }) ? 0 : 3;
            }
        } catch (...) {
            status = 4;
        }
        ::_exit(status);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 2: not watched, 3: never flagged, 4: an exception

    // The parent's registration is as it was, and still watched.
    CHECK(parent.query("SELECT 1").scalar<int>() == 1);
    CHECK_FALSE(parent.hung_up());
    pgtest::terminate_backend(parent.backend_pid());
    CHECK(spin_until([&] { return parent.hung_up(); }));
}

TEST_CASE("liveness: ordinary traffic never flags a connection, and its socket stays the one watched", "[pg][liveness]") {
    auto c = pgtest::connect();
    const auto still_fine = [&] { return c.hangup_watched() && !c.hung_up() && c.usable(); };
    REQUIRE(still_fine());

    CHECK(c.query("SELECT $1::int + 1", 41).scalar<int>() == 42);
    CHECK(still_fine());
    CHECK_THROWS_AS(c.query("SELECT 1/0"), pg::QueryError);
    CHECK(still_fine());

    // Bytes that arrive while it is idle (a notification) are no hang-up:
    // they wait in the socket for the next statement, which reads them.
    const std::string channel = pgtest::unique_name("liveness");
    c.execute("LISTEN " + channel);
    auto other = pgtest::connect();
    other.execute("NOTIFY " + channel);
    pollfd p{c.socket(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    CHECK(still_fine());
    CHECK(c.query("SELECT 1").scalar<int>() == 1);
    CHECK(still_fine());
}
