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
// back by throwing. One that ran COMMIT, ROLLBACK, END or ABORT leaves the
// session outside any transaction, which is checked before COMMIT: then
// QueryError 2D000 is thrown, since what fn ran before its own COMMIT cannot
// be undone and what it ran after was in no transaction. Not detected: fn
// ending the transaction and opening another (COMMIT; BEGIN, or ROLLBACK AND
// CHAIN): the session is in a transaction again, the client cannot tell it is
// not ours without a server round trip in every transaction, and that one is
// committed (or rolled back) in its place.

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

// A session outside any transaction after fn: fn ended ours (or, nested, the
// enclosing one) itself. In failure (PQTRANS_INERROR) it is still ours.
inline void check_still_open(const Connection& conn, bool nested) {
    if (conn.transaction_status() != PQTRANS_IDLE) return;
    throw QueryError(std::string("reservoir: transaction: the callback ended the ") +
                         (nested ? "enclosing transaction" : "transaction") +
                         " itself (COMMIT, ROLLBACK, END or ABORT in it), so its work cannot be committed or rolled "
                         "back as one: what it ran before that was committed or rolled back by it, what it ran "
                         "after was not in a transaction. Return to commit, throw to roll back",
                     std::string(sqlstate::invalid_transaction_termination));
}

inline void commit(Connection& conn, bool nested) {
    check_still_open(conn, nested);
    if (nested) {
        conn.execute(std::string("RELEASE SAVEPOINT ") + savepoint);
        return;
    }
    // COMMIT of a failed transaction succeeds and reports ROLLBACK: that is a failure.
    if (conn.execute("COMMIT").command_tag() == "ROLLBACK")
        throw QueryError("reservoir: COMMIT failed: the transaction had failed (a statement in it raised an "
                         "error that was caught) and was rolled back",
                         std::string(sqlstate::in_failed_transaction));
}

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
    const bool nested = conn.transaction_status() != PQTRANS_IDLE;
    conn.execute(nested ? std::string("SAVEPOINT ") + detail::savepoint : std::string("BEGIN"));
    try {
        if constexpr (std::is_void_v<decltype(detail::call_with(fn, conn))>) {
            detail::call_with(fn, conn);
            detail::commit(conn, nested);
        } else {
            decltype(auto) result = detail::call_with(fn, conn);
            detail::commit(conn, nested);
            return result;
        }
    } catch (...) {
        detail::rollback(conn, nested);
        throw;
    }
}

}  // namespace reservoir::pg
