// 200 threads with random hold times through a pool of 20, for a bounded
// time: the max is never exceeded, no lease is lost, and every acquire either
// succeeds or times out with the acquire-timeout error. Also run under TSan.

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "helpers.hpp"

using namespace std::chrono_literals;

TEST_CASE("200 threads through a pool of 20 never exceed max and lose nothing", "[stress]") {
    constexpr int threads = 200;
    constexpr std::size_t max = 20;
    constexpr auto run_for = 1500ms;

    auto server = std::make_shared<reservoir::mock::Server>();
    server->set_connect_latency(1ms);
    reservoir::MockPool pool(reservoir::mock::Driver(server),
                             {.min_size = 5, .max_size = max, .idle_timeout = 50ms, .acquire_timeout = 20ms,
                              .validate_after_idle = 1ms, .housekeeping_interval = 10ms});

    std::atomic<std::uint64_t> ok{0}, timeouts{0}, other_errors{0};
    std::atomic<int> holding{0}, peak_holding{0};
    std::atomic<bool> over_max{false};
    const auto stop_at = std::chrono::steady_clock::now() + run_for;

    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t));
            std::uniform_int_distribution<int> hold_us(0, 2000);
            while (std::chrono::steady_clock::now() < stop_at) {
                try {
                    auto lease = pool.acquire();
                    const int now = holding.fetch_add(1) + 1;
                    int peak = peak_holding.load();
                    while (now > peak && !peak_holding.compare_exchange_weak(peak, now)) {
                    }
                    if (server->live() > max) over_max = true;
                    std::this_thread::sleep_for(std::chrono::microseconds(hold_us(rng)));
                    holding.fetch_sub(1);
                    if (rng() % 50 == 0) lease.discard();  // exercise replacement too
                    ok.fetch_add(1);
                } catch (const reservoir::AcquireTimeout&) {
                    timeouts.fetch_add(1);
                } catch (...) {
                    other_errors.fetch_add(1);
                }
            }
        });
    }
    for (auto& w : workers) w.join();

    CHECK_FALSE(over_max);
    CHECK(server->peak() <= max);
    CHECK(peak_holding.load() <= static_cast<int>(max));
    CHECK(other_errors.load() == 0);
    CHECK(ok.load() > 1000);

    const auto st = pool.stats();
    CHECK(st.in_use == 0);  // no lease lost
    CHECK(st.waiting == 0);
    CHECK(st.acquire_timeouts == timeouts.load());
    CHECK(st.acquires == ok.load());
    REQUIRE(test::eventually([&] { return pool.stats().resetting == 0 && pool.stats().connecting == 0; }));
    CHECK(pool.stats().total == server->live());
    CHECK(pool.shutdown(5s));
    CHECK(server->live() == 0);
}

// Event loops and blocking threads in one queue: 4 loops each keep 25
// async_acquire calls outstanding, beside 50 blocking threads. Every call is
// answered exactly once, whichever thread answers it.
TEST_CASE("async and blocking acquirers together never exceed max and lose no callback", "[stress][async]") {
    constexpr int loops = 4, per_loop = 25, blocking = 50;
    constexpr std::size_t max = 20;
    constexpr auto run_for = 1500ms;
    using Lease = reservoir::MockPool::Lease;

    auto server = std::make_shared<reservoir::mock::Server>();
    server->set_connect_latency(1ms);
    reservoir::MockPool pool(reservoir::mock::Driver(server),
                             {.min_size = 5, .max_size = max, .idle_timeout = 50ms, .acquire_timeout = 20ms,
                              .validate_after_idle = 1ms, .housekeeping_interval = 10ms});

    std::atomic<std::uint64_t> issued{0}, answered{0}, leases{0}, timeouts{0}, other_errors{0};
    std::atomic<bool> over_max{false};
    const auto stop_at = std::chrono::steady_clock::now() + run_for;

    // A loop's inbox: what its callbacks were answered with.
    struct Inbox {
        std::mutex mu;
        std::condition_variable cv;
        std::vector<std::pair<Lease, std::exception_ptr>> items;
    };
    std::vector<Inbox> inboxes(loops);
    const auto issue = [&](Inbox& inbox) {
        issued.fetch_add(1);
        pool.async_acquire([&inbox](Lease lease, std::exception_ptr error) {
            std::lock_guard lk(inbox.mu);
            inbox.items.emplace_back(std::move(lease), std::move(error));
            inbox.cv.notify_one();
        });
    };

    std::vector<std::thread> threads;
    for (int l = 0; l < loops; ++l) {
        threads.emplace_back([&, l] {
            Inbox& inbox = inboxes[static_cast<std::size_t>(l)];
            for (int i = 0; i < per_loop; ++i) issue(inbox);
            std::uint64_t outstanding = per_loop;
            while (outstanding > 0) {
                std::vector<std::pair<Lease, std::exception_ptr>> got;
                {
                    std::unique_lock lk(inbox.mu);
                    inbox.cv.wait_for(lk, 10ms, [&] { return !inbox.items.empty(); });
                    got.swap(inbox.items);
                }
                for (auto& [lease, error] : got) {
                    --outstanding;
                    answered.fetch_add(1);
                    if (lease) {
                        leases.fetch_add(1);
                        if (server->live() > max) over_max = true;
                    } else {
                        try {
                            std::rethrow_exception(error);
                        } catch (const reservoir::AcquireTimeout&) {
                            timeouts.fetch_add(1);
                        } catch (...) {
                            other_errors.fetch_add(1);
                        }
                    }
                    if (lease && leases.load() % 50 == 0) lease.discard();
                    lease.release();  // before the next call, so the loop never holds two per slot
                    if (std::chrono::steady_clock::now() < stop_at) {
                        issue(inbox);
                        ++outstanding;
                    }
                }
            }
        });
    }
    for (int t = 0; t < blocking; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t));
            while (std::chrono::steady_clock::now() < stop_at) {
                try {
                    auto lease = pool.acquire();
                    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1000));
                } catch (const reservoir::AcquireTimeout&) {
                    timeouts.fetch_add(1);
                } catch (...) {
                    other_errors.fetch_add(1);
                }
            }
        });
    }
    for (auto& t : threads) t.join();

    CHECK_FALSE(over_max);
    CHECK(server->peak() <= max);
    CHECK(other_errors.load() == 0);
    CHECK(answered.load() == issued.load());
    CHECK(leases.load() > 1000);
    const auto st = pool.stats();
    CHECK(st.in_use == 0);
    CHECK(st.waiting == 0);
    CHECK(st.acquire_timeouts == timeouts.load());
    CHECK(pool.shutdown(5s));
    CHECK(server->live() == 0);
}

// Leases returned from many threads at the moment the pool is destroyed:
// returns that close their connection, returns handed to queued async
// waiters, and leases dropped inside callbacks. The state must outlive every
// one of them (ASan and TSan builds run this), and no connection may leak.
TEST_CASE("leases returned from many threads while the pool is destroyed", "[stress][shutdown][lifetime]") {
    constexpr int rounds = 200, holders = 8;
    constexpr auto run_for = 20s;  // a bound, far above the usual time
    using Lease = reservoir::MockPool::Lease;

    // Counts closes; the yield widens the window in which a release is
    // inside its close, outside the pool's lock.
    struct Closes final : reservoir::EventListener {
        std::atomic<std::uint64_t> closed{0};
        void on_event(const reservoir::Event& e) noexcept override {
            if (e.kind != reservoir::EventKind::closed) return;
            closed.fetch_add(1);
            std::this_thread::yield();
        }
    };
    auto server = std::make_shared<reservoir::mock::Server>();
    auto closes = std::make_shared<Closes>();
    std::atomic<std::uint64_t> callbacks{0};
    const auto give_up = std::chrono::steady_clock::now() + run_for;
    int done = 0;
    for (; done < rounds && std::chrono::steady_clock::now() < give_up; ++done) {
        auto pool = std::make_unique<reservoir::MockPool>(
            reservoir::mock::Driver(server), reservoir::PoolOptions{.min_size = 0, .max_size = holders, .listener = closes});
        std::vector<Lease> leases;
        for (int i = 0; i < holders; ++i) leases.push_back(pool->acquire());
        // Queued behind the holders: a return may hand them a connection,
        // which their callback drops again at once.
        for (int i = 0; i < 2; ++i)
            pool->async_acquire(1h, [&callbacks](Lease, std::exception_ptr) { callbacks.fetch_add(1); });

        std::atomic<bool> go{false};
        std::vector<std::thread> returning;
        for (int i = 0; i < holders; ++i) {
            returning.emplace_back([&go, i, lease = std::move(leases[static_cast<std::size_t>(i)])]() mutable {
                while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
                if (i % 2 == 0) lease.discard();  // closes its connection
                else lease.release();             // to a waiter, or closed once the pool is closing
            });
        }
        go.store(true, std::memory_order_release);
        pool.reset();
        for (auto& t : returning) t.join();
        REQUIRE(server->live() == 0);
    }
    CHECK(done == rounds);
    CHECK(callbacks.load() == 2u * static_cast<std::uint64_t>(done));  // each answered once
}

// Threads acquire while another resizes the pool between 1 and its capacity.
// Idle connections above a lowered max close at once, so at any snapshot no
// more are idle than the max in force; lent ones may stay above it until they
// come back. At the end every lease is back, the pool holds no more than the
// last max, and every connection the server saw opened is either in the pool
// or was closed by it.
TEST_CASE("acquirers never see more idle connections than the max in force while another thread resizes",
          "[stress][resize]") {
    constexpr std::size_t capacity = 8;
    constexpr int threads = 6, cycles = 20000, resizes = 50000;
    constexpr auto run_for = 20s;  // a bound, far above the usual time
    auto server = std::make_shared<reservoir::mock::Server>();
    reservoir::MockPool pool(reservoir::mock::Driver(server),
                             {.min_size = 0, .max_size = capacity, .capacity = capacity, .acquire_timeout = 10s});
    const auto give_up = std::chrono::steady_clock::now() + run_for;
    std::atomic<int> finished{0};
    std::atomic<std::uint64_t> leases{0}, timeouts{0}, over{0}, resized{0};
    std::atomic<std::size_t> out{0}, most_out{0};

    std::vector<std::thread> acquirers;
    for (int t = 0; t < threads; ++t) {
        acquirers.emplace_back([&] {
            for (int i = 0; i < cycles && std::chrono::steady_clock::now() < give_up; ++i) {
                try {
                    auto lease = pool.acquire();
                    const std::size_t now_out = out.fetch_add(1) + 1;
                    std::size_t seen = most_out.load();
                    while (now_out > seen && !most_out.compare_exchange_weak(seen, now_out)) {
                    }
                    leases.fetch_add(1);
                    if (i % 3 == 0) std::this_thread::yield();  // hold it a little, so that shrinks find it lent
                    out.fetch_sub(1);
                } catch (const reservoir::AcquireTimeout&) {
                    timeouts.fetch_add(1);
                }
            }
            finished.fetch_add(1);
        });
    }
    std::thread resizer([&] {  // for as long as the acquirers run
        std::mt19937 random(7);
        for (int i = 0; i < resizes && finished.load() < threads && std::chrono::steady_clock::now() < give_up; ++i) {
            const std::size_t max = 1 + random() % capacity;
            pool.resize(0, max);
            const auto st = pool.stats();
            if (st.idle > st.max || st.max != max) over.fetch_add(1);
            resized.fetch_add(1);
            std::this_thread::yield();
        }
        pool.resize(0, 2);
    });
    resizer.join();
    for (auto& t : acquirers) t.join();

    CHECK(over.load() == 0);
    CHECK(resized.load() > 100);
    CHECK(leases.load() > 1000);
    CHECK(timeouts.load() == 0);
    CHECK(most_out.load() <= static_cast<std::size_t>(threads));
    CHECK(server->peak() <= capacity);
    pool.maintain();  // closes nothing lent: all are back, so the pool is within max
    const auto st = pool.stats();
    CHECK(st.in_use == 0);
    CHECK(st.waiting == 0);
    CHECK(st.max == 2);
    CHECK(st.total <= 2);
    CHECK(server->live() == st.total);  // nothing leaked, nothing closed twice
    CHECK(st.connects == st.closes.total() + st.total);
    CHECK(pool.shutdown(5s));
    CHECK(server->live() == 0);
}

// A stop racing a release to a queued acquirer, blocking and async: whichever
// settles it first wins. The acquirer answers exactly once, a connection
// handed over is kept by it, and none is lost (TSan builds run this).
TEST_CASE("a cancel racing a hand-off ends each acquire once and loses no connection", "[stress][cancel]") {
    constexpr int rounds = 400;
    constexpr auto run_for = 20s;  // a bound, far above the usual time
    using Lease = reservoir::MockPool::Lease;
    auto server = std::make_shared<reservoir::mock::Server>();
    reservoir::MockPool pool(reservoir::mock::Driver(server), {.min_size = 1, .max_size = 1});
    REQUIRE(test::eventually([&] { return pool.stats().idle == 1; }));

    std::uint64_t leased = 0, cancelled = 0;
    const auto give_up = std::chrono::steady_clock::now() + run_for;
    int done = 0;
    for (; done < rounds && std::chrono::steady_clock::now() < give_up; ++done) {
        auto held = pool.acquire();
        std::stop_source stop;
        std::atomic<int> answers{0};
        Lease got;  // written by whoever settles the acquirer, read after the joins
        bool was_cancelled = false;
        const auto answer = [&](Lease lease, std::exception_ptr error) {
            try {
                if (error) std::rethrow_exception(error);
            } catch (const reservoir::AcquireCancelled&) {
                was_cancelled = true;
            } catch (...) {
            }
            got = std::move(lease);
            answers.fetch_add(1);
        };
        std::thread blocking;
        if (done % 2 == 0) {
            pool.async_acquire(1h, answer, stop.get_token());
        } else {
            blocking = std::thread([&] {
                try {
                    answer(pool.acquire(1h, stop.get_token()), nullptr);
                } catch (...) {
                    answer(Lease(), std::current_exception());
                }
            });
            REQUIRE(test::eventually([&] { return pool.stats().waiting == 1; }));
        }
        std::atomic<bool> go{false};
        std::thread stopper([&] {
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            stop.request_stop();
        });
        go.store(true, std::memory_order_release);
        held.release();
        stopper.join();
        if (blocking.joinable()) blocking.join();
        REQUIRE(answers.load() == 1);
        REQUIRE(was_cancelled != static_cast<bool>(got));  // one or the other
        if (got) {
            ++leased;
            CHECK(got->execute("select") == "ok");
            got.release();
        } else {
            ++cancelled;
        }
        REQUIRE(pool.stats().idle == 1);  // back, or never taken: not lost
    }
    CHECK(done == rounds);
    const auto st = pool.stats();
    CHECK(st.acquire_cancels == cancelled);
    CHECK(st.acquires == static_cast<std::uint64_t>(done) + leased);  // the held ones, and those handed over
    CHECK(st.total == 1);
    CHECK(st.waiting == 0);
    CHECK(server->live() == 1);
}
