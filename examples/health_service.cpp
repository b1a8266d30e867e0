// health_service: an HTTP service exposing its pool to load balancers and to
// Prometheus, with cpp-httplib:
//   GET /health/database  {"healthy":..,"status":..,"reasons":[..],"totalConnections":..,
//                          "idleConnections":..,"activeConnections":..,"waiting":..,"latencyMs":..}
//                          HTTP 200 while serving (healthy or degraded), 503 when unhealthy
//   GET /metrics          the Prometheus text exposition, labelled pool="main"
// On SIGTERM or SIGINT it stops the server, drains the pool (5 s) and exits 0.
//
//   DATABASE_URL=postgresql://... reservoir-example-health-service [--port N]   (0: any free port)

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include <httplib.h>

#include <reservoir/reservoir.hpp>

using namespace std::chrono_literals;

int main(int argc, char** argv) try {
    int port = 8080;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = std::atoi(argv[++i]);
        else return std::fprintf(stderr, "usage: %s [--port N]\n", argv[0]), 2;
    }

    // Block SIGTERM and SIGINT before any thread starts (httplib's workers,
    // the pool's): they inherit the mask, and one thread takes the signals
    // with sigwait(), no handler involved.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    reservoir::PgPool pool(reservoir::pg::Config::from_env());
    reservoir::HealthMonitor monitor;  // one per pool: remembers how long idle has been exhausted

    httplib::Server server;
    server.Get("/health/database", [&](const httplib::Request&, httplib::Response& res) {
        const auto report = reservoir::check_health(pool, monitor, 2s);  // never throws for pool errors
        res.status = report.http_status();
        res.set_content(reservoir::to_json(report), "application/json");
    });
    server.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content(reservoir::to_prometheus(pool, {{"pool", "main"}}),
                        std::string(reservoir::prometheus_content_type));
    });

    if (port == 0) port = server.bind_to_any_port("127.0.0.1");
    else if (!server.bind_to_port("127.0.0.1", port)) port = -1;
    if (port <= 0) return std::fprintf(stderr, "health_service: cannot listen on 127.0.0.1\n"), 1;
    std::printf("listening on %d\n", port);
    std::fflush(stdout);

    // The signal thread: the first signal stops the server. stop() is a no-op
    // until listen has started, so it waits for that (or for listen's end).
    std::atomic<bool> listen_done{false};
    std::thread signal_thread([&] {
        int sig = 0;
        sigwait(&signals, &sig);
        while (!server.is_running() && !listen_done) std::this_thread::sleep_for(5ms);
        server.stop();
    });

    const bool listened = server.listen_after_bind();  // serves until stop()
    listen_done = true;
    pthread_kill(signal_thread.native_handle(), SIGTERM);  // wakes it if listen ended by itself; else ignored
    signal_thread.join();

    const bool drained = pool.shutdown(5s);
    std::fprintf(stderr, "health_service: stopped; pool %s\n", drained ? "drained" : "not drained in 5 s");
    return listened ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "health_service: %s\n", e.what());
    return 1;
}
