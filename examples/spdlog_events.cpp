// spdlog_events: the pool's events (leaks, acquire timeouts, slow queries,
// failed connects, the circuit breaker) written to spdlog, the logging library
// a service may already use. reservoir itself needs no logging library: a
// listener is one virtual function, called outside the pool's lock.
// Runs on the mock driver: no server needed.
//
//   build/examples/reservoir_example_spdlog_events
//
// It provokes a leak report (a lease held past leak_threshold), its late
// return, and an acquire timeout, and logs them, the leak as
//   [db] [warning] reservoir: lease held 120 ms so far, acquired at <file>:<line> (main)

#include <chrono>
#include <memory>
#include <thread>
#include <utility>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <reservoir/reservoir.hpp>

namespace rs = reservoir;
using namespace std::chrono_literals;

class SpdlogListener final : public rs::EventListener {
public:
    explicit SpdlogListener(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}

    void on_event(const rs::Event& e) noexcept override {
        const double ms = std::chrono::duration<double, std::milli>(e.elapsed).count();
        try {
            switch (e.kind) {
                case rs::EventKind::connected: log_->debug("reservoir: connected in {:.1f} ms", ms); break;
                case rs::EventKind::closed: log_->debug("reservoir: connection closed ({})", e.message); break;
                case rs::EventKind::connect_failed: log_->warn("reservoir: connect failed: {}", e.message); break;
                case rs::EventKind::acquire_timeout: log_->warn("{}", e.message); break;
                case rs::EventKind::leak:
                    log_->warn("reservoir: lease held {:.0f} ms so far, acquired at {}:{} ({})", ms, e.where.file,
                               e.where.line, e.where.function);
                    break;
                case rs::EventKind::leak_returned:
                    log_->info("reservoir: leaked lease returned after {:.0f} ms, acquired at {}:{}", ms,
                               e.where.file, e.where.line);
                    break;
                case rs::EventKind::slow_query: log_->warn("reservoir: slow query ({:.1f} ms): {}", ms, e.message); break;
                case rs::EventKind::breaker_opened: log_->error("reservoir: circuit breaker open: {}", e.message); break;
                case rs::EventKind::breaker_closed: log_->info("reservoir: circuit breaker closed"); break;
            }
        } catch (...) {
            // A listener must not throw; a log line lost is the lesser harm.
        }
    }

private:
    std::shared_ptr<spdlog::logger> log_;
};

int main() {
    auto log = spdlog::stdout_logger_mt("db");
    log->set_level(spdlog::level::info);  // debug would add every connect and close

    rs::MockPool pool(rs::mock::Driver(std::make_shared<rs::mock::Server>()),
                      {.min_size = 1,
                       .max_size = 1,
                       .listener = std::make_shared<SpdlogListener>(log),
                       .leak_threshold = 100ms,
                       .housekeeping_interval = 20ms});  // leak checks run with housekeeping

    {
        auto lease = pool.acquire();  // held too long: reported as a leak, with this line
        std::this_thread::sleep_for(200ms);
        try {
            auto second = pool.acquire(50ms);  // the only connection is out
        } catch (const rs::AcquireTimeout&) {
            // Logged by the listener already, with the pool's state.
        }
    }  // returned late: reported too

    const auto stats = pool.stats();
    log->info("leaks reported: {}, acquire timeouts: {}", stats.leaks, stats.acquire_timeouts);
    return stats.leaks == 1 && stats.acquire_timeouts == 1 ? 0 : 1;
}
