// The wait queue's rules, one at a time: hand-off, barging, the gate, async
// requeue, the timeout pass and cancel. Single-threaded, no clock: each test
// gives the time.

#include <catch2/catch.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <reservoir/core/detail/wait_queue.hpp>
#include <reservoir/core/pool.hpp>

using namespace std::chrono_literals;
using reservoir::duration;
using reservoir::time_point;

namespace {

struct FakeSlot {
    int id = 0;
};

using Queue = reservoir::detail::WaitQueue<FakeSlot>;
using Waiter = reservoir::detail::Waiter<FakeSlot>;
using reservoir::detail::WaitOutcome;

const time_point t0 = time_point(1000h);
const double factor = 2;  // handoff_patience

// The time as the queue asks for it, counting the asks.
struct Now {
    time_point at;
    int* reads;
    time_point operator()() const {
        ++*reads;
        return at;
    }
};

Waiter queued_since(time_point since, time_point deadline = t0 + 1h, bool async = false) {
    Waiter w;
    w.since = since;
    w.deadline = deadline;
    w.async = async;
    return w;
}

// The waiters from head to tail.
std::vector<const Waiter*> order(const Queue& q) {
    std::vector<const Waiter*> out;
    for (const Waiter* w = q.head(); w; w = w->next) out.push_back(w);
    return out;
}

// A list linked by `next`, from `first`.
std::vector<const Waiter*> chain(const Waiter* first) {
    std::vector<const Waiter*> out;
    for (const Waiter* w = first; w; w = w->next) out.push_back(w);
    return out;
}

}  // namespace

TEST_CASE("the hand-off rule: who gets a returned connection", "[wait_queue]") {
    using Release = Queue::Release;
    struct Row {
        const char* rule;
        duration handoff_after;
        duration waited;  // by the head, at the release
        bool async, woken, barged;
        Release expected;
        bool serve_next;
    };
    // clang-format off
    const Row rows[] = {
        {"a waiter queued less than handoff_after is not handed the connection, but woken to claim it", 1ms, 500us,
         false, false, false, Release::wake_head, false},
        {"a waiter queued handoff_after or longer is handed the connection", 1ms, 1ms, false, false, false,
         Release::hand_over, false},
        {"with handoff_after 0 every release is handed over (strict FIFO)", 0ms, 0ms, false, false, false,
         Release::hand_over, false},
        {"an async waiter is handed the connection at once: no thread of its own could claim it", 1ms, 0ms, true,
         false, false, Release::hand_over, false},
        {"a head already woken is not woken again: the connection is left idle for it", 1ms, 500us, false, true,
         false, Release::leave_idle, false},
        {"a barged head is not woken before its hand-off is due: the connection is left idle", 1ms, 500us, false,
         false, true, Release::leave_idle, false},
        {"a barged head whose hand-off is due is handed the connection, and the next head is served", 1ms, 2ms, false,
         false, true, Release::hand_over, true},
        {"a woken head handed the connection leaves the next head to be served", 1ms, 2ms, false, true, false,
         Release::hand_over, true},
    };
    // clang-format on
    for (const Row& row : rows) {
        SECTION(row.rule) {
            Queue q(row.handoff_after, factor);
            Waiter head = queued_since(t0, t0 + 1h, row.async);
            Waiter second = queued_since(t0);
            q.enqueue(head);
            q.enqueue(second);
            if (row.woken) q.wake(head);
            head.barged = row.barged;
            int reads = 0;
            const auto d = q.on_release(Now{t0 + row.waited, &reads});
            CHECK(d.what == row.expected);
            if (row.expected == Release::leave_idle) {
                CHECK(d.waiter == nullptr);
            } else {
                CHECK(d.waiter == &head);
            }
            if (row.expected == Release::hand_over) {
                CHECK(d.serve_next == row.serve_next);
                CHECK(order(q) == std::vector<const Waiter*>{&second});  // unlinked: the caller settles it
                CHECK(q.retrying() == 0);
            } else {
                CHECK(order(q) == std::vector<const Waiter*>{&head, &second});
                CHECK(head.woken == (row.woken || row.expected == Release::wake_head));
                CHECK(q.retrying() == (head.woken ? 1u : 0u));
            }
        }
    }
}

TEST_CASE("a release with nobody waiting leaves the connection idle and reads no clock", "[wait_queue]") {
    Queue q(1ms, factor);
    int reads = 0;
    const auto d = q.on_release(Now{t0, &reads});
    CHECK(d.what == Queue::Release::leave_idle);
    CHECK(reads == 0);
}

TEST_CASE("the hand-off rule reads the clock only for a thread waiter under bounded barging", "[wait_queue]") {
    const auto [handoff, async, expected_reads] =
        GENERATE(table<int, bool, int>({{1, false, 1}, {1, true, 0}, {0, false, 0}}));
    Queue q{std::chrono::milliseconds(handoff), factor};
    Waiter w = queued_since(t0, t0 + 1h, async);
    q.enqueue(w);
    int reads = 0;
    q.on_release(Now{t0, &reads});
    CHECK(reads == expected_reads);
}

TEST_CASE("the gate rule: the head needs a release's help unless it is awake or barged", "[wait_queue]") {
    struct Row {
        const char* rule;
        duration handoff_after;
        bool queued, woken, barged, needs_help;
    };
    // clang-format off
    const Row rows[] = {
        {"an empty queue needs no gate", 1ms, false, false, false, false},
        {"a new head needs the gate", 1ms, true, false, false, true},
        {"a head woken to claim needs no gate", 1ms, true, true, false, false},
        {"a barged head sleeping until its hand-off needs no gate", 1ms, true, false, true, false},
        {"under strict FIFO the head always needs the gate, even woken", 0ms, true, true, false, true},
        {"under strict FIFO the head always needs the gate, even barged", 0ms, true, false, true, true},
    };
    // clang-format on
    for (const Row& row : rows) {
        SECTION(row.rule) {
            Queue q(row.handoff_after, factor);
            Waiter w = queued_since(t0);
            if (row.queued) q.enqueue(w);
            if (row.woken) q.wake(w);
            w.barged = row.barged;
            CHECK(q.head_needs_help() == row.needs_help);
        }
    }
}

TEST_CASE("the queue hands out its waiters first come, first served", "[wait_queue]") {
    Queue q(1ms, factor);
    Waiter a = queued_since(t0), b = queued_since(t0), c = queued_since(t0);
    CHECK(q.enqueue(a));  // the first is the head: the caller serves it
    CHECK_FALSE(q.enqueue(b));
    CHECK_FALSE(q.enqueue(c));
    CHECK(q.waiting() == 3);
    CHECK(q.pop_front() == &a);
    CHECK(q.pop_front() == &b);
    CHECK(q.pop_front() == &c);
    CHECK(q.pop_front() == nullptr);
    CHECK(q.waiting() == 0);
}

TEST_CASE("barging: a woken waiter's turn is taken once, and one that loses its claim sleeps until due",
          "[wait_queue]") {
    using Turn = Queue::Turn;
    Queue q(1ms, factor);
    Waiter w = queued_since(t0, t0 + 10ms);
    q.enqueue(w);
    int reads = 0;

    SECTION("a waiter neither woken nor barged has no turn") {
        CHECK(q.take_turn(w, Now{t0 + 5ms, &reads}) == Turn::none);
    }
    SECTION("a woken waiter has a turn, once") {
        REQUIRE(q.wake(w));
        CHECK_FALSE(q.wake(w));  // woken already: nobody to wake
        CHECK(q.retrying() == 1);
        CHECK(q.take_turn(w, Now{t0, &reads}) == Turn::woken);
        CHECK(q.retrying() == 0);
        CHECK(q.take_turn(w, Now{t0, &reads}) == Turn::none);
    }
    SECTION("a woken waiter beaten to the connection is barged: no gate, and it sleeps until its hand-off") {
        q.wake(w);
        const Turn turn = q.take_turn(w, Now{t0, &reads});
        CHECK_FALSE(q.missed(w, turn));  // nothing to serve: it sleeps
        CHECK(w.barged);
        CHECK_FALSE(q.head_needs_help());
        CHECK(q.wake_at(w) == t0 + 1ms);
    }
    SECTION("a barged waiter has no turn before its hand-off is due") {
        w.barged = true;
        CHECK(q.take_turn(w, Now{t0 + 999us, &reads}) == Turn::none);
    }
    SECTION("a barged waiter whose hand-off is due has a turn, and missing it asks for the gate again") {
        w.barged = true;
        const Turn turn = q.take_turn(w, Now{t0 + 1ms, &reads});
        CHECK(turn == Turn::due);
        CHECK(q.missed(w, turn));  // the caller serves the head: it needs help now
        CHECK_FALSE(w.barged);
        CHECK(q.head_needs_help());
        CHECK(q.wake_at(w) == t0 + 10ms);
    }
    SECTION("a barged waiter whose deadline comes before its hand-off wakes at the deadline") {
        Waiter short_wait = queued_since(t0, t0 + 500us);
        q.enqueue(short_wait);
        short_wait.barged = true;
        CHECK(q.wake_at(short_wait) == t0 + 500us);
    }
}

TEST_CASE("patience: how long a waiter may be passed over, from the pool's pace and its place in line",
          "[wait_queue]") {
    Queue q(1ms, factor);
    // The FIFO wait of the waiter at `position` at `per_ms` lends a millisecond, times the factor.
    const auto scaled = [](std::size_t position, double per_ms) {
        return std::chrono::duration_cast<duration>(std::chrono::duration<double, std::milli>(
            static_cast<double>(position) / per_ms * factor));
    };
    // Equal but for the rounding of a double.
    const auto near = [](duration a, duration b) { return a - b < 1us && b - a < 1us; };

    SECTION("with no pace known yet, patience is handoff_after") {
        CHECK(q.patience(1) == 1ms);
        CHECK(q.patience(1000) == 1ms);
        q.sample_pace(t0, 5000);  // a first sample has nothing to measure against
        CHECK(q.patience(1000) == 1ms);
    }
    SECTION("a sample is due once every pace window") {
        CHECK(q.pace_sample_due(t0));
        q.sample_pace(t0, 0);
        CHECK_FALSE(q.pace_sample_due(t0 + Queue::pace_window - 1ns));
        CHECK(q.pace_sample_due(t0 + Queue::pace_window));
    }
    SECTION("patience is the factor times the FIFO wait at the pace, never less than handoff_after") {
        q.sample_pace(t0, 0);
        q.sample_pace(t0 + 2ms, 200);  // 100 lends a millisecond
        CHECK(q.patience(1) == 1ms);   // 10 us of FIFO wait: the floor
        CHECK(near(q.patience(500), scaled(500, 100)));
        CHECK(q.patience(500) > 5ms);  // what a strict FIFO would make it wait
        // A waiter queued at position 500 is due that long after it began to wait.
        std::vector<Waiter> ahead(499, queued_since(t0));
        for (Waiter& w : ahead) q.enqueue(w);
        Waiter last = queued_since(t0 + 3ms);
        q.enqueue(last);
        CHECK(near(last.due - t0, 3ms + scaled(500, 100)));
        CHECK(ahead.front().due == t0 + 1ms);
    }
    SECTION("the pace follows the load a quarter of the way each sample") {
        q.sample_pace(t0, 0);
        q.sample_pace(t0 + 2ms, 200);  // 100 a millisecond
        q.sample_pace(t0 + 4ms, 600);  // 200 a millisecond: 125 kept
        CHECK(near(q.patience(1000), scaled(1000, 125)));
    }
    SECTION("a pace measured over an idle gap is forgotten: patience is handoff_after until the next sample") {
        q.sample_pace(t0, 0);
        q.sample_pace(t0 + 2ms, 200);
        REQUIRE(q.patience(1000) > 1ms);
        q.sample_pace(t0 + 2ms + Queue::pace_stale + 1ms, 210);
        CHECK(q.patience(1000) == 1ms);
        q.sample_pace(t0 + 4ms + Queue::pace_stale + 1ms, 410);  // 100 a millisecond again
        CHECK(near(q.patience(1000), scaled(1000, 100)));
    }
    SECTION("patience is capped however long the line") {
        q.sample_pace(t0, 0);
        q.sample_pace(t0 + 2ms, 2);  // one lend a millisecond
        CHECK(q.patience(1000000) == Queue::max_patience);
    }
    SECTION("strict FIFO (handoff_after 0) samples nothing and has no patience") {
        Queue fifo(0ms, factor);
        CHECK_FALSE(fifo.pace_sample_due(t0 + 1h));
        fifo.sample_pace(t0, 0);
        fifo.sample_pace(t0 + 2ms, 200);
        CHECK(fifo.patience(1000) == 0ms);
    }
}

TEST_CASE("an async waiter whose connection failed its check is requeued at the front", "[wait_queue]") {
    Queue q(1ms, factor);
    Waiter a = queued_since(t0, t0 + 1h, true), b = queued_since(t0);
    q.enqueue(a);
    q.enqueue(b);
    FakeSlot slot;
    int reads = 0;
    const auto d = q.on_release(Now{t0, &reads});
    REQUIRE(d.what == Queue::Release::hand_over);  // async: handed over at once
    REQUIRE(q.settle(a, &slot, WaitOutcome::waiting));
    REQUIRE(q.take_settled() == &a);
    q.requeue_front(a);
    CHECK(a.slot == nullptr);
    CHECK(order(q) == std::vector<const Waiter*>{&a, &b});
    CHECK(q.waiting() == 2);
}

TEST_CASE("the timeout pass settles every waiter due at once, in order, and leaves the others", "[wait_queue]") {
    Queue q(1ms, factor);
    Waiter a = queued_since(t0, t0 + 1ms), b = queued_since(t0, t0 + 5ms), c = queued_since(t0 + 1ms, t0 + 2ms),
           d = queued_since(t0, t0 + 3ms), e = queued_since(t0, t0 + 4ms);
    for (Waiter* w : {&a, &b, &c, &d, &e}) q.enqueue(*w);
    q.wake(c);  // a waiter woken and timed out before it ran
    const auto [first, new_head] = q.time_out_due(t0 + 3ms);
    CHECK(chain(first) == std::vector<const Waiter*>{&a, &c, &d});  // the deadline itself is due
    CHECK(new_head);
    for (Waiter* w : {&a, &c, &d}) {
        w->next = nullptr;
        CHECK_FALSE(q.settle(*w, nullptr, WaitOutcome::timed_out));  // threads: the caller wakes them
    }
    CHECK(order(q) == std::vector<const Waiter*>{&b, &e});
    CHECK(q.waiting() == 2);
    CHECK(q.retrying() == 0);
    CHECK(a.waited == 3ms);
    CHECK(c.waited == 2ms);
    CHECK(c.outcome == WaitOutcome::timed_out);
}

TEST_CASE("a timeout pass that leaves the head in place asks for nothing", "[wait_queue]") {
    Queue q(1ms, factor);
    Waiter a = queued_since(t0, t0 + 5ms), b = queued_since(t0, t0 + 1ms);
    q.enqueue(a);
    q.enqueue(b);
    const auto due = q.time_out_due(t0 + 1ms);
    CHECK(chain(due.first) == std::vector<const Waiter*>{&b});
    CHECK_FALSE(due.new_head);
    const auto again = q.time_out_due(t0 + 1ms);  // none due now
    CHECK(again.first == nullptr);
    CHECK_FALSE(again.new_head);
}

TEST_CASE("cancel takes a still-queued waiter out, wherever it stands, and not a settled one", "[wait_queue]") {
    Queue q(1ms, factor);
    Waiter a = queued_since(t0), b = queued_since(t0), c = queued_since(t0), d = queued_since(t0);
    for (Waiter* w : {&a, &b, &c}) q.enqueue(*w);

    SECTION("the head: the next one heads the queue") {
        CHECK(q.cancel(a));
        CHECK(order(q) == std::vector<const Waiter*>{&b, &c});
        CHECK(q.head_needs_help());  // a new head: the caller serves it
    }
    SECTION("the middle: its neighbours are linked") {
        CHECK(q.cancel(b));
        CHECK(order(q) == std::vector<const Waiter*>{&a, &c});
        CHECK(c.prev == &a);
    }
    SECTION("the tail: a later waiter queues behind the one before it") {
        CHECK(q.cancel(c));
        q.enqueue(d);
        CHECK(order(q) == std::vector<const Waiter*>{&a, &b, &d});
    }
    SECTION("a woken one: its wake-up no longer counts") {
        q.wake(a);
        CHECK(q.cancel(a));
        CHECK(q.retrying() == 0);
    }
    SECTION("a woken head, then served: the next one needs a release's help, and is woken by it") {
        q.wake(a);
        CHECK_FALSE(q.head_needs_help());  // the gate is down while the head is awake
        CHECK(q.cancel(a));
        CHECK(q.head_needs_help());
        int reads = 0;
        const auto decision = q.on_release(Now{t0, &reads});
        CHECK(decision.what == Queue::Release::wake_head);
        CHECK(decision.waiter == &b);
    }
    SECTION("one not in the queue: not yet queued, or a thread that claimed a connection itself") {
        CHECK_FALSE(q.cancel(d));
        q.unlink(a);  // claimed: unlinked, not settled
        CHECK_FALSE(q.cancel(a));
        CHECK(order(q) == std::vector<const Waiter*>{&b, &c});
    }
    SECTION("one already handed a connection: its result stands") {
        FakeSlot slot;
        int reads = 0;
        const auto decision = q.on_release(Now{t0 + 1ms, &reads});
        REQUIRE(decision.waiter == &a);
        q.settle(a, &slot, WaitOutcome::waiting);
        CHECK_FALSE(q.cancel(a));
        CHECK(a.slot == &slot);
        CHECK(order(q) == std::vector<const Waiter*>{&b, &c});
    }
    SECTION("one already timed out: its result stands") {
        for (Waiter* w = q.time_out_due(t0 + 2h).first; w;)
            q.settle(*std::exchange(w, w->next), nullptr, WaitOutcome::timed_out);
        CHECK_FALSE(q.cancel(b));
        CHECK(q.waiting() == 0);
    }
    CHECK(q.waiting() == order(q).size());
}

TEST_CASE("settled async waiters are finished in the order they were settled, and threads are woken instead",
          "[wait_queue]") {
    Queue q(1ms, factor);
    Waiter a = queued_since(t0, t0 + 1h, true), thread = queued_since(t0), b = queued_since(t0, t0 + 1h, true);
    for (Waiter* w : {&a, &thread, &b}) q.enqueue(*w);
    CHECK(q.settle(*q.pop_front(), nullptr, WaitOutcome::closed));
    CHECK_FALSE(q.settle(*q.pop_front(), nullptr, WaitOutcome::closed));
    CHECK(q.settle(*q.pop_front(), nullptr, WaitOutcome::closed));
    Waiter* list = q.take_settled();
    REQUIRE(list == &a);
    CHECK(list->next == &b);
    CHECK(b.next == nullptr);
    CHECK(q.take_settled() == nullptr);
}

TEST_CASE("an async waiter settled again after its check failed ends the settled list", "[wait_queue]") {
    // Finished from a list (a -> b), a fails its check and is settled again
    // (the pool closed meanwhile): its stale link to b must not make b finish twice.
    Queue q(1ms, factor);
    Waiter a = queued_since(t0, t0 + 1h, true), b = queued_since(t0, t0 + 1h, true);
    q.enqueue(a);
    q.enqueue(b);
    q.settle(*q.pop_front(), nullptr, WaitOutcome::timed_out);
    q.settle(*q.pop_front(), nullptr, WaitOutcome::timed_out);
    REQUIRE(q.take_settled() == &a);
    REQUIRE(a.next == &b);
    q.settle(a, nullptr, WaitOutcome::closed);
    Waiter* list = q.take_settled();
    CHECK(list == &a);
    CHECK(a.next == nullptr);
}

TEST_CASE("the earliest async deadline ignores blocked threads, which keep their own", "[wait_queue]") {
    Queue q(1ms, factor);
    CHECK(q.earliest_async_deadline() == time_point::max());
    Waiter thread = queued_since(t0, t0 + 1ms), late = queued_since(t0, t0 + 9ms, true),
           early = queued_since(t0, t0 + 4ms, true);
    for (Waiter* w : {&thread, &late, &early}) q.enqueue(*w);
    CHECK(q.earliest_async_deadline() == t0 + 4ms);
}

// The same rule seen through a pool: a connection handed to the first of two
// async waiters fails its check, and the pool shuts down while it is closed
// (a listener does it, on the close's event), so the waiter is settled again
// instead of requeued. Both waiters must be called back exactly once.
namespace {

struct FlakyConnection {
    int id = 0;
};

// The first connection opened fails the local check.
struct FirstBrokenDriver {
    using connection_type = FlakyConnection;
    int opened = 0;
    FlakyConnection connect(time_point) { return FlakyConnection{++opened}; }
    bool is_usable(const FlakyConnection& c) const noexcept { return c.id != 1; }
    bool ping(FlakyConnection&, time_point) { return true; }
};

using FlakyPool = reservoir::Pool<FirstBrokenDriver, reservoir::sizing::Dynamic, reservoir::health::Trusting,
                                  reservoir::context::None, reservoir::ManualClock>;

struct ShutdownOnFirstClose final : reservoir::EventListener {
    FlakyPool* pool = nullptr;
    void on_event(const reservoir::Event& e) noexcept override {
        if (e.kind == reservoir::EventKind::closed && pool) std::exchange(pool, nullptr)->shutdown(0ms);
    }
};

}  // namespace

TEST_CASE("an async waiter whose connection fails its check as the pool shuts down is called back once",
          "[wait_queue][async]") {
    const auto listener = std::make_shared<ShutdownOnFirstClose>();
    reservoir::PoolOptions options;
    options.min_size = 0;
    options.max_size = 2;
    options.background_threads = false;
    options.listener = listener;
    const reservoir::ManualClock clock;
    FlakyPool pool(FirstBrokenDriver{}, options, clock);
    listener->pool = &pool;

    int first_calls = 0, second_calls = 0;
    std::exception_ptr first_error;
    FlakyPool::Lease second_lease;
    pool.async_acquire(10s, [&](FlakyPool::Lease, std::exception_ptr e) {
        ++first_calls;
        first_error = std::move(e);
    });
    pool.async_acquire(10s, [&](FlakyPool::Lease lease, std::exception_ptr) {
        ++second_calls;
        second_lease = std::move(lease);
    });
    pool.maintain();  // opens both connections, hands one to each waiter, then finishes both in one batch

    CHECK(first_calls == 1);
    CHECK(second_calls == 1);
    CHECK_THROWS_AS(std::rethrow_exception(first_error), reservoir::PoolClosed);
}
