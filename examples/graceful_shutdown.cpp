// graceful_shutdown: on SIGTERM or SIGINT, stop taking work, let the leases
// out finish, drain the pool within a deadline, report, exit 0. Runs on the
// mock driver (no server needed).
//
// Signals are handled without a handler: reservoir::SignalShutdown blocks
// them in every thread (it is made before any thread starts, and threads
// inherit the mask), and its own thread takes them with sigwait(). The
// reaction then runs as ordinary code, free to lock, allocate and log, which
// a handler may not.
//
//   build/examples/reservoir_example_graceful_shutdown [--self-signal]   (sends itself SIGTERM after 1 s)

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <reservoir/reservoir.hpp>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const bool self_signal = argc > 1 && std::strcmp(argv[1], "--self-signal") == 0;

    // 1. Take the signals first, so no thread ever runs a default handler.
    //    The reaction: stop taking work (the drain itself follows below).
    std::atomic<bool> stopping{false};
    reservoir::SignalShutdown on_signal([&](int) { stopping = true; });

    auto server = std::make_shared<reservoir::mock::Server>();
    server->set_query_latency(20ms);  // each unit of work holds its lease a while
    reservoir::MockPool pool(reservoir::mock::Driver(server), {.min_size = 2, .max_size = 4});

    // 2. Workers take work until told to stop.
    std::atomic<long> done{0};
    std::vector<std::thread> workers;
    for (int i = 0; i < 8; ++i)
        workers.emplace_back([&] {
            while (!stopping.load()) {
                try {
                    auto lease = pool.acquire(1s);
                    lease->execute("SELECT 1");
                    ++done;
                } catch (const reservoir::PoolClosed&) {
                    return;  // shutdown began while we waited
                }
            }
        });

    // 3. Wait for the first signal.
    if (self_signal)  // kill(), not raise(): a process-directed signal reaches the sigwait thread
        std::thread([] { std::this_thread::sleep_for(1s); kill(getpid(), SIGTERM); }).detach();
    std::printf("working; send SIGTERM or SIGINT (pid %d)\n", static_cast<int>(getpid()));
    std::fflush(stdout);
    const int received = on_signal.wait();

    // 4. Work has stopped; drain the pool within a deadline, report.
    std::printf("%s: stopping after %ld units of work\n", strsignal(received), done.load());
    const auto start = std::chrono::steady_clock::now();
    const bool drained = pool.shutdown(5s);  // waits for the leases out, closes everything
    for (auto& w : workers) w.join();
    const auto s = pool.stats();
    std::printf("pool %s in %lld ms: open=%zu in_use=%zu closed at shutdown=%llu, server sees %zu\n",
                drained ? "drained" : "NOT drained",
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - start).count()),
                s.total, s.in_use, static_cast<unsigned long long>(s.closes.shutdown), server->live());
    return drained && server->live() == 0 ? 0 : 1;
}
