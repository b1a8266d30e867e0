#pragma once
// pg::transaction(conn_or_lease, fn): BEGIN, run fn, COMMIT and return fn's
// value; on an exception ROLLBACK and rethrow it. Inside a transaction that
// is already open it nests with a savepoint instead.
//
//   auto id = pg::transaction(lease, [](pg::Connection& c) {
//       c.query("UPDATE account SET balance = balance - $1 WHERE id = $2", 10, 1);
//       return c.query("INSERT INTO audit(note) VALUES ($1) RETURNING id", "moved 10").scalar<std::int64_t>();
//   });
//
// fn must not end the transaction itself: it commits by returning and rolls
// back by throwing. One that ran COMMIT, ROLLBACK, END or ABORT makes
// transaction() throw QueryError 2D000 instead of reporting success: what fn
// ran before its own COMMIT cannot be undone, and what it ran after was in no
// transaction. So does fn that ended the transaction and began another
// (COMMIT; BEGIN, COMMIT AND CHAIN, ROLLBACK; BEGIN...): that one is rolled
// back, not committed in ours' place. The first shows in the session's status;
// the second by the transaction's start time on the server
// (transaction_timestamp()), read with BEGIN and checked with COMMIT in the
// same round trips: no round trip more, one trivial statement more in each.
// Not detected: a transaction fn began after ending ours that starts at the
// same microsecond by the server's clock (one stepped back).

#include <libpq-fe.h>

#include <concepts>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "connection.hpp"
#include "error.hpp"

namespace reservoir::pg {

namespace detail {

inline Connection& connection_of(Connection& conn) noexcept { return conn; }

template <class Lease>
    requires requires(const Lease& lease) {
        { *lease } -> std::same_as<Connection&>;
    }
Connection& connection_of(const Lease& lease) noexcept {
    return *lease;
}

// fn may take the connection or nothing.
template <class Fn>
decltype(auto) call_with(Fn& fn, Connection& conn) {
    if constexpr (std::is_invocable_v<Fn&, Connection&>)
        return std::invoke(fn, conn);
    else
        return std::invoke(fn);
}

inline constexpr const char* savepoint = "reservoir_transaction";

// When the server started the current transaction, in microseconds since
// 1970 (an integer: exact whatever extract() returns on the server's version):
// one that fn began after ending ours started later.
inline constexpr const char* started_at = "(extract(epoch FROM transaction_timestamp()) * 1000000)::int8";

struct Begun {
    bool nested;          // a savepoint in a transaction that was already open
    std::string started;  // started_at, as the server printed it
};

inline Begun begin(Connection& conn) {
    const bool nested = conn.transaction_status() != PQTRANS_IDLE;
    const std::string open = nested ? std::string("SAVEPOINT ") + savepoint : std::string("BEGIN");
    return {nested, conn.execute(open + "; SELECT " + started_at).scalar<std::string>()};
}

[[noreturn]] inline void ended_by_callback(bool nested, bool began_another) {
    throw QueryError(std::string("reservoir: transaction: the callback ended the ") +
                         (nested ? "enclosing transaction" : "transaction") +
                         " itself (COMMIT, ROLLBACK, END or ABORT in it)" +
                         (began_another ? " and began another, which was rolled back" : "") +
                         ": its work could not be committed or rolled back as one. Return from the callback to "
                         "commit, throw to roll back",
                     std::string(sqlstate::invalid_transaction_termination));
}

inline void commit(Connection& conn, const Begun& tx) {
    const auto status = conn.transaction_status();
    if (status == PQTRANS_IDLE) ended_by_callback(tx.nested, false);
    // A transaction that is still ours divides by 1; another, by 0, which
    // fails this statement and skips the COMMIT after it. The start time is the
    // server's own integer: only digits and a sign are spliced.
    const bool check = status == PQTRANS_INTRANS && !tx.started.empty() &&
                       tx.started.find_first_not_of("0123456789-") == std::string::npos;
    const std::string check_sql =
        check ? std::string("SELECT 1 / (") + started_at + " = " + tx.started + ")::int; " : std::string();
    try {
        if (tx.nested) {
            conn.execute(check_sql + "RELEASE SAVEPOINT " + savepoint);
            return;
        }
        // COMMIT of a failed transaction succeeds and reports ROLLBACK: that is a failure.
        if (conn.execute(check_sql + "COMMIT").command_tag() == "ROLLBACK")
            throw QueryError("reservoir: COMMIT failed: the transaction had failed (a statement in it raised an "
                             "error that was caught) and was rolled back",
                             std::string(sqlstate::in_failed_transaction));
    } catch (const QueryError& e) {
        // Only the check leaves the transaction open and failed: a failed COMMIT ends it.
        if (check && e.sqlstate() == "22012" /* division_by_zero */ && conn.transaction_status() == PQTRANS_INERROR)
            ended_by_callback(tx.nested, true);
        throw;
    }
}

// Without a start time (a transaction not opened by begin()): the status check only.
inline void commit(Connection& conn, bool nested) { commit(conn, Begun{nested, {}}); }

// Best effort: the exception that brought us here is the one to report. A
// connection left in a transaction is rolled back by the pool anyway.
inline void rollback(Connection& conn, bool nested) noexcept {
    const auto status = conn.transaction_status();
    if (status != PQTRANS_INTRANS && status != PQTRANS_INERROR) return;
    try {
        if (nested)
            conn.execute(std::string("ROLLBACK TO SAVEPOINT ") + savepoint + "; RELEASE SAVEPOINT " + savepoint);
        else
            conn.execute("ROLLBACK");
    } catch (...) {
    }
}

}  // namespace detail

// `target` is a Connection or a Lease of one. Throws what BEGIN, fn or COMMIT
// throws; a COMMIT that rolls back (a failed transaction) throws QueryError
// 25P02; fn that ended the transaction itself, QueryError 2D000 (see above).
template <class Target, class Fn>
decltype(auto) transaction(Target&& target, Fn&& fn) {
    Connection& conn = detail::connection_of(target);
    const detail::Begun tx = detail::begin(conn);
    try {
        if constexpr (std::is_void_v<decltype(detail::call_with(fn, conn))>) {
            detail::call_with(fn, conn);
            detail::commit(conn, tx);
        } else {
            decltype(auto) result = detail::call_with(fn, conn);
            detail::commit(conn, tx);
            return result;
        }
    } catch (...) {
        detail::rollback(conn, tx.nested);
        throw;
    }
}

}  // namespace reservoir::pg
