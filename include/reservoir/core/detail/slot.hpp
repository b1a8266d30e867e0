#pragma once
// A slot holds at most one connection. The pool has a fixed number of slots
// (its capacity, PoolOptions::capacity, by default max_size), so it can never
// hold more connections than that, connects in flight included; the max in
// force may be anywhere up to it (Pool::resize).
//
// Who may touch a slot is decided by its atomic state word:
//   idle -> lent      claimed by an acquirer (lock-free CAS, or under the lock)
//   lent -> idle      released by its borrower (lock-free CAS, or under the lock)
//   every other move  made under the pool's lock
// Every move is made by the slot table (slot_table.hpp), the only code that
// writes the word. The attention bit makes both lock-free moves fail, so that
// every change goes through the lock. It is set on every idle and lent slot
// while the oldest waiter needs a release's help (the gate, wait_queue.hpp)
// and at shutdown. The owner of a lent or busy slot may use its connection
// without the lock.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "../concepts.hpp"
#include "../events.hpp"
#include "../histogram.hpp"
#include "../source_location.hpp"

namespace reservoir::detail {

enum SlotState : std::uint32_t {
    slot_empty = 0,       // no connection
    slot_connecting = 1,  // a connect is in flight for this slot
    slot_idle = 2,        // ready
    slot_lent = 3,        // held by a lease
    slot_busy = 4,        // the pool is resetting, pinging or closing it
};
inline constexpr std::uint32_t slot_attention = 1u << 8;
inline constexpr std::uint32_t slot_state_mask = slot_attention - 1;

// The moves a slot's state may make. A connection exists from a successful
// connect until a close, which always goes through busy or connecting; lent
// to lent is a hand-off from one borrower straight to the next.
constexpr bool slot_move_allowed(std::uint32_t from, std::uint32_t to) noexcept {
    switch (from) {
        case slot_empty: return to == slot_connecting;
        case slot_connecting: return to == slot_idle || to == slot_lent || to == slot_empty;
        case slot_idle: return to == slot_lent || to == slot_busy;
        case slot_lent: return to == slot_idle || to == slot_lent || to == slot_busy;
        case slot_busy: return to == slot_idle || to == slot_lent || to == slot_empty;
        default: return false;
    }
}

template <class Conn>
struct alignas(64) Slot {
    std::atomic<std::uint32_t> word{slot_empty};
    std::optional<Conn> conn;

    // Set when the connection is opened, before it is published.
    time_point created{};
    time_point expires{};
    std::uint64_t generation = 0;  // the pool's eviction generation at birth
    // Pinged by a worker for a borrower that could not (JobList::recheck): the next
    // borrow needs no ping of its own. Written and read by the slot's owner.
    bool rechecked = false;

    // Written by the owner, read by housekeeping and stats() without owning the
    // slot: hence atomics, with relaxed order (they are hints, not handshakes).
    std::atomic<duration::rep> last_used{0};
    std::atomic<duration::rep> last_checked{0};
    std::atomic<std::uint64_t> uses{0};   // leases served by this connection
    std::atomic<std::uint64_t> lends{0};  // leases served by this slot, ever (stats)

    // The borrower's bookkeeping: written by the owner, read by leak detection.
    std::atomic<duration::rep> lent_at{0};  // coarse clock
    std::atomic<const char*> where_file{""};
    std::atomic<const char*> where_function{""};
    std::atomic<std::uint_least32_t> where_line{0};
    std::atomic<std::uint64_t> leak_reported{0};  // the `lends` number of the lease reported

    Histogram acquire_wait;  // written by the owner only
    Histogram hold_time;

    void mark_used(time_point now) noexcept {
        last_used.store(now.time_since_epoch().count(), std::memory_order_relaxed);
        last_checked.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    }
    void mark_checked(time_point now) noexcept {
        last_checked.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    }

    void record_lent(time_point now) noexcept { lent_at.store(now.time_since_epoch().count(), std::memory_order_relaxed); }
    void record_where(const source_location& where) noexcept {
        where_file.store(where.file_name(), std::memory_order_relaxed);
        where_function.store(where.function_name(), std::memory_order_relaxed);
        where_line.store(where.line(), std::memory_order_relaxed);
    }
    time_point lent_time() const noexcept { return time_point(duration(lent_at.load(std::memory_order_relaxed))); }
    CodeLocation lent_where() const noexcept {
        return {where_file.load(std::memory_order_relaxed), where_line.load(std::memory_order_relaxed),
                where_function.load(std::memory_order_relaxed)};
    }

    std::uint32_t state() const noexcept { return word.load(std::memory_order_acquire) & slot_state_mask; }

    ConnectionInfo info() const noexcept {
        return {created, time_point(duration(last_used.load(std::memory_order_relaxed))),
                time_point(duration(last_checked.load(std::memory_order_relaxed))), expires,
                uses.load(std::memory_order_relaxed)};
    }

    // Owner-only counter bump: a plain load+store, no locked instruction.
    static void bump(std::atomic<std::uint64_t>& counter) noexcept {
        counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
};

// The slot a thread used last, per pool: tried first, so that a thread keeps
// its connection warm and threads rarely touch each other's slots.
struct SlotHint {
    const void* pool = nullptr;
    std::size_t index = 0;
};

inline SlotHint& thread_slot_hint() noexcept {
    static thread_local SlotHint hint;
    return hint;
}

}  // namespace reservoir::detail
