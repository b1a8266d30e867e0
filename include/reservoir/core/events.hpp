#pragma once
// Events: what the pool (and the pg driver) report as it happens, to a
// listener the user plugs in. The pool calls the listener outside its lock,
// from whichever thread saw the event; a listener must be thread-safe and
// quick, and must not throw (it is noexcept).

#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

#include <cstdint>

namespace reservoir {

enum class EventKind : unsigned {
    connected,        // a connection opened; `elapsed` = connect time
    connect_failed,   // `message` = the error (password-free)
    closed,           // a connection closed; `message` = why
    acquire_timeout,  // `elapsed` = the wait; `message` = the error text
    leak,             // a lease held longer than leak_threshold; `where`, `elapsed`
    leak_returned,    // that lease came back at last; `where`, `elapsed` = total hold
    slow_query,       // `message` = the statement (no parameters), `elapsed`
    breaker_opened,   // `message` = the last connect error
    breaker_closed,
};

inline constexpr std::string_view to_string(EventKind k) noexcept {
    constexpr std::string_view names[] = {"connected",   "connect_failed", "closed",
                                          "acquire_timeout", "leak",     "leak_returned",
                                          "slow_query",  "breaker_opened", "breaker_closed"};
    return names[static_cast<unsigned>(k)];
}

// Where a lease was acquired (from the source_location of the acquire call).
struct CodeLocation {
    const char* file = "";
    std::uint_least32_t line = 0;
    const char* function = "";
};

struct Event {
    EventKind kind;
    std::chrono::nanoseconds elapsed{};
    std::string_view message{};
    CodeLocation where{};  // leak events
};

class EventListener {
public:
    virtual ~EventListener() = default;
    virtual void on_event(const Event& event) noexcept = 0;
};

// One line per event to stderr (or another stream). Chatty kinds
// (connected, closed) are off unless listed.
class StderrListener final : public EventListener {
public:
    StderrListener()
        : StderrListener({EventKind::connect_failed, EventKind::acquire_timeout, EventKind::leak,
                          EventKind::leak_returned, EventKind::slow_query, EventKind::breaker_opened,
                          EventKind::breaker_closed}) {}
    explicit StderrListener(std::initializer_list<EventKind> kinds, std::FILE* out = stderr) : out_(out) {
        for (EventKind k : kinds) mask_ |= 1u << static_cast<unsigned>(k);
    }

    void on_event(const Event& e) noexcept override {
        if (!(mask_ & (1u << static_cast<unsigned>(e.kind)))) return;
        const auto ms = std::chrono::duration<double, std::milli>(e.elapsed).count();
        std::lock_guard lk(mu_);  // keep lines whole
        if (e.kind == EventKind::leak || e.kind == EventKind::leak_returned)
            std::fprintf(out_, "reservoir: %.*s: lease acquired at %s:%u (%s) held for %.1f ms\n",
                         static_cast<int>(to_string(e.kind).size()), to_string(e.kind).data(), e.where.file,
                         static_cast<unsigned>(e.where.line), e.where.function, ms);
        else
            std::fprintf(out_, "reservoir: %.*s: %.1f ms %.*s\n", static_cast<int>(to_string(e.kind).size()),
                         to_string(e.kind).data(), ms, static_cast<int>(e.message.size()), e.message.data());
    }

private:
    std::FILE* out_;
    unsigned mask_ = 0;
    std::mutex mu_;
};

}  // namespace reservoir
