// RESERVOIR_ASSERT (core/assert.hpp) and the rules it checks in the engine,
// single-threaded: the report goes through a handler that throws instead of
// aborting, and the slot state machine is checked as a table.

#include <string>

#include <catch2/catch.hpp>

#include <reservoir/reservoir.hpp>

namespace {

struct AssertionReport {
    std::string text;
};

void throw_report(const char* file, int line, const char* condition, const char* what) {
    throw AssertionReport{std::string(file) + ":" + std::to_string(line) + ": " + what + " (" + condition + ")"};
}

// Installs throw_report for one test, restores the previous handler after.
struct ThrowingHandler {
    reservoir::detail::AssertionHandler previous = reservoir::detail::assertion_handler().exchange(&throw_report);
    ~ThrowingHandler() { reservoir::detail::assertion_handler().store(previous); }
};

std::string report_of(void (*check)(int&), int& evaluated) {
    try {
        check(evaluated);
    } catch (const AssertionReport& r) {
        return r.text;
    }
    return {};
}

}  // namespace

TEST_CASE("The test build checks assertions", "[assert]") {
    CHECK(RESERVOIR_ASSERTIONS_ON == 1);
}

TEST_CASE("A failed assertion reports file, line, condition and meaning; a kept one says nothing", "[assert]") {
    const ThrowingHandler handler;
    int evaluated = 0;
    const int line = __LINE__ + 1;
    const auto fails = [](int& n) { RESERVOIR_ASSERT_ON(++n == 0, "the count is zero"); };
    std::string expected = __FILE__;  // appended to, not operator+ on a temporary: g++ 12 -O2 warns on that
    expected += ":" + std::to_string(line) + ": the count is zero (++n == 0)";
    CHECK(report_of(fails, evaluated) == expected);
    CHECK(evaluated == 1);

    const auto holds = [](int& n) { RESERVOIR_ASSERT_ON(++n > 0, "the count is positive"); };
    CHECK(report_of(holds, evaluated).empty());
    CHECK(evaluated == 2);
}

TEST_CASE("An assertion that is off does not evaluate its condition", "[assert]") {
    const ThrowingHandler handler;
    int evaluated = 0;
    const auto off = [](int& n) { RESERVOIR_ASSERT_OFF(++n == 0, "never checked"); };
    CHECK(report_of(off, evaluated).empty());
    CHECK(evaluated == 0);
}

TEST_CASE("A slot's state moves only along the allowed edges", "[assert][slot]") {
    using namespace reservoir::detail;
    constexpr std::uint32_t E = slot_empty, C = slot_connecting, I = slot_idle, L = slot_lent, B = slot_busy;
    struct Row {
        std::uint32_t from;
        bool to_empty, to_connecting, to_idle, to_lent, to_busy;
    };
    const Row rows[] = {
        // from        empty  connecting idle   lent   busy
        {E, false, true, false, false, false},  // only a connect starts from nothing
        {C, true, false, true, true, false},   // failed; or opened, idle or straight to a waiter
        {I, false, false, false, true, true},  // claimed; or taken to ping, reap or close
        {L, false, false, true, true, true},   // returned; handed to the next; or reset or closed
        {B, true, false, true, true, false},   // closed; or good again, idle or to a waiter
    };
    for (const Row& r : rows) {
        CAPTURE(r.from);
        CHECK(slot_move_allowed(r.from, E) == r.to_empty);
        CHECK(slot_move_allowed(r.from, C) == r.to_connecting);
        CHECK(slot_move_allowed(r.from, I) == r.to_idle);
        CHECK(slot_move_allowed(r.from, L) == r.to_lent);
        CHECK(slot_move_allowed(r.from, B) == r.to_busy);
    }
    CHECK_FALSE(slot_move_allowed(7, I));  // no such state
    CHECK_FALSE(slot_move_allowed(I, 7));
}
