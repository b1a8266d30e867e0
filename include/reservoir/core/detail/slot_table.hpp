#pragma once
// The slot table: the pool's slots, and the only code that touches a slot's
// atomic state word. Every move is named here and checked against
// slot_move_allowed (slot.hpp).
//
// Two moves are lock-free and inline, the hot path: claim (idle -> lent) and
// release_fast (lent -> idle), one compare-and-swap each. Every other move is
// made under the pool's lock, which the caller holds (the names say _locked
// where a caller might forget).
//
// The gate: while the oldest waiter needs a release's help, or the pool is
// closing, every idle and lent slot carries the attention bit, so that both
// lock-free moves fail and go through the lock. The table remembers whether
// the gate is up on every slot (`armed_`): a store without the bit lowers it
// for that slot, and raise_gate() then has to set it again on all. Whether
// the gate is wanted is the wait queue's rule (wait_queue.hpp); the table
// only keeps the words consistent with it.
//
// The table is allocated once, at its capacity (PoolOptions::capacity, by
// default the initial max_size), and never moves: leases hold a slot's
// address. The max in force is the pool's to keep (need_connect), anywhere at
// or below the capacity. Scans stop at `reach`, one past the highest slot that
// ever held a connection, so a capacity kept for growth costs memory (~3 kB a
// slot) but no time on the lock-free path until it is used.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "../assert.hpp"
#include "slot.hpp"

namespace reservoir::detail {

// How many slots are in each state.
struct SlotCounts {
    std::size_t empty = 0, connecting = 0, idle = 0, lent = 0, busy = 0;
};

template <class Conn>
class SlotTable {
public:
    using SlotT = Slot<Conn>;

    explicit SlotTable(std::size_t size) : size_(size), slots_(std::make_unique<SlotT[]>(size)) {}

    // The capacity: the table's slots, used or not.
    std::size_t size() const noexcept { return size_; }
    // One past the highest slot that ever held a connection; it only grows.
    std::size_t reach() const noexcept { return reach_.load(std::memory_order_relaxed); }
    SlotT& operator[](std::size_t i) noexcept { return slots_[i]; }
    const SlotT& operator[](std::size_t i) const noexcept { return slots_[i]; }

    // ---- lock-free ------------------------------------------------------------

    // idle -> lent. An idle slot may carry the attention bit (left idle for a
    // woken waiter): whoever claims it first takes it, and the bit stays.
    static bool claim(SlotT& s) noexcept {
        std::uint32_t w = s.word.load(std::memory_order_relaxed);
        return (w & slot_state_mask) == slot_idle &&
               s.word.compare_exchange_strong(w, slot_lent | (w & slot_attention), std::memory_order_acquire,
                                              std::memory_order_relaxed);
    }

    // The calling thread's last slot, then the lowest idle one. Low slots stay
    // busy and high ones age out, which is what idle reaping wants.
    // A slot past a stale `reach` is missed here, never lost: the slow path
    // scans again under the lock, where `reach` is current.
    SlotT* claim_idle_fast() noexcept {
        SlotHint& hint = thread_slot_hint();
        if (hint.pool == this && hint.index < size_ && claim(slots_[hint.index])) return &slots_[hint.index];
        const std::size_t n = reach();
        for (std::size_t i = 0; i < n; ++i) {
            if (claim(slots_[i])) {
                hint = {this, i};
                return &slots_[i];
            }
        }
        return nullptr;
    }

    // lent -> idle, only when the attention bit is down.
    static bool release_fast(SlotT& s) noexcept {
        std::uint32_t expected = slot_lent;
        return s.word.compare_exchange_strong(expected, slot_idle, std::memory_order_release,
                                              std::memory_order_relaxed);
    }

    // ---- under the pool's lock ----------------------------------------------

    // The attention bit for a word stored now, given whether the gate is
    // wanted. A word stored without it lowers the gate for that slot.
    std::uint32_t stamp(bool gate) noexcept {
        if (gate) return slot_attention;
        armed_ = false;
        return 0;
    }

    // idle -> lent, the lowest idle slot, for a thread under the lock.
    SlotT* claim_idle_locked(bool gate) noexcept {
        for (std::size_t i = 0; i < reach(); ++i) {
            std::uint32_t w = slots_[i].word.load(std::memory_order_relaxed);
            if ((w & slot_state_mask) == slot_idle &&
                slots_[i].word.compare_exchange_strong(w, slot_lent | stamp(gate), std::memory_order_acquire)) {
                thread_slot_hint() = {this, i};
                return &slots_[i];
            }
        }
        return nullptr;
    }

    // Any move of a slot the pool owns (busy, connecting, or about to be).
    void set_state_locked(SlotT& s, std::uint32_t state, bool gate) noexcept {
        RESERVOIR_ASSERT(slot_move_allowed(s.state(), state), "a slot makes a move its state does not allow");
        s.word.store(state | stamp(gate), std::memory_order_release);
    }

    // -> lent, to a waiter handed the connection. The bit stays up: a head
    // that needed help left nothing idle, and the next one needs the gate.
    void hand_over_locked(SlotT& s) noexcept {
        RESERVOIR_ASSERT(slot_move_allowed(s.state(), slot_lent), "a slot handed over from a state that cannot be");
        s.word.store(slot_lent | slot_attention, std::memory_order_release);
    }

    // The word as it is now, for a later take_if_unchanged.
    static std::uint32_t peek(const SlotT& s) noexcept { return s.word.load(std::memory_order_acquire); }
    static bool is(std::uint32_t word, std::uint32_t state) noexcept { return (word & slot_state_mask) == state; }

    // idle -> busy, only if the word is still `seen` (an idle slot that was
    // not lent out meanwhile); the attention bit is kept.
    static bool take_if_unchanged(SlotT& s, std::uint32_t seen) noexcept {
        RESERVOIR_ASSERT(is(seen, slot_idle), "a slot taken for the pool was not idle");
        return s.word.compare_exchange_strong(seen, slot_busy | (seen & slot_attention), std::memory_order_acquire);
    }

    // idle -> busy, if idle now.
    static bool take_idle(SlotT& s) noexcept {
        const std::uint32_t w = peek(s);
        return is(w, slot_idle) && take_if_unchanged(s, w);
    }

    // Sends a lent slot's release through the lock (evict_all).
    static void flag(SlotT& s) noexcept { s.word.fetch_or(slot_attention, std::memory_order_acq_rel); }

    // Sets the bit on every slot, whatever its state (shutdown).
    void flag_all() noexcept {
        for (std::size_t i = 0; i < reach(); ++i) flag(slots_[i]);
    }

    // Raises the gate on every slot; true if one was idle (also one that went
    // idle just before its bit was set).
    bool raise_gate() noexcept {
        bool idle = false;
        for (std::size_t i = 0; i < reach(); ++i) {
            const std::uint32_t w = armed_ ? slots_[i].word.load(std::memory_order_acquire)
                                           : slots_[i].word.fetch_or(slot_attention, std::memory_order_acq_rel);
            idle = idle || is(w, slot_idle);
        }
        armed_ = true;
        return idle;
    }

    // Leases served by every slot, ever: the pool's pace, read by the hand-off rule.
    std::uint64_t lends() const noexcept {
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < reach(); ++i) n += slots_[i].lends.load(std::memory_order_relaxed);
        return n;
    }

    SlotCounts counts() const noexcept {
        SlotCounts c;
        for (std::size_t i = 0; i < reach(); ++i) {
            switch (slots_[i].state()) {
                case slot_empty: ++c.empty; break;
                case slot_connecting: ++c.connecting; break;
                case slot_idle: ++c.idle; break;
                case slot_lent: ++c.lent; break;
                case slot_busy: ++c.busy; break;
                default: break;
            }
        }
        return c;
    }

    // The lowest empty slot, for a connect: connections stay low, and `reach`
    // grows only when every slot below it is taken.
    SlotT* find_empty() noexcept {
        for (std::size_t i = 0; i < size_; ++i) {
            if (slots_[i].state() != slot_empty) continue;
            if (i >= reach()) reach_.store(i + 1, std::memory_order_relaxed);
            return &slots_[i];
        }
        return nullptr;
    }

    bool drained() const noexcept {
        for (std::size_t i = 0; i < reach(); ++i)
            if (slots_[i].state() != slot_empty) return false;
        return true;
    }

private:
    std::size_t size_;
    std::unique_ptr<SlotT[]> slots_;
    std::atomic<std::size_t> reach_{0};  // written under the lock; read without it by claim_idle_fast
    bool armed_ = false;  // every idle and lent slot carries the attention bit (the gate is up)
};

}  // namespace reservoir::detail
