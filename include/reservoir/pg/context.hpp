#pragma once
// pg::context::Reset: the ContextPolicy of PgPool. A connection never reaches
// the next borrower in a transaction, busy, broken, or (in the default modes)
// with any session state its last borrower left, whatever SQL it ran: the
// session is reset after every lease, not when the SQL looked like it
// changed something (see session.hpp and docs/tenant-isolation.md).
//
//   on_release (borrower's thread)             reset (pool's worker, under reset_timeout)
//   per-lease client settings end here (query timeout, unread notifications)
//   broken, or must_evict()  -> discard
//   nothing sent since the last reset -> reuse (that reset still stands)
//   statement still running  -> reset          cancel it and drain its results, then as below
//   in a transaction         -> reset          ROLLBACK, then the mode's session reset
//   discard_all, light       -> reuse, the mode's session reset sent first
//   trust_sql_text, dirty    -> reset          DISCARD ALL
//   otherwise                -> reuse
// A reset that fails or runs out of time closes the connection.
//
// The reset of a connection returned idle is sent by on_release without
// waiting for its answer (one non-blocking write on the returning borrower's
// thread), in libpq's pipeline mode, and the connection is lent again at
// once: the server runs the reset before anything the next borrower sends,
// and that borrower's first statement goes out behind it in the same
// pipeline and reads the reset's answer before its own (Connection). No
// worker, lock or extra round trip is on anyone's path; an idle connection's
// reset was answered long before its next borrow.

#include <libpq-fe.h>

#include <iterator>
#include <optional>
#include <utility>

#include "../core/clock.hpp"
#include "../core/concepts.hpp"
#include "connection.hpp"
#include "session.hpp"

namespace reservoir::pg::context {

class Reset {
public:
    // Each connection's own mode: ResetMode::none behind PgBouncer
    // (Config::pooler), else discard_all.
    Reset() noexcept = default;
    // One mode for every connection, whatever the config says.
    explicit Reset(ResetMode mode) noexcept : mode_(mode) {}

    ReleaseAction on_release(Connection& conn) noexcept {
        end_lease(conn);
        const PGconn* c = std::as_const(conn).native_handle();  // no wait for a reset in flight
        if (!c || conn.must_evict() || PQstatus(c) != CONNECTION_OK) return ReleaseAction::discard;
        // The last reset's answer unread: nothing was sent since it (a
        // statement or native_handle() would have read it first), so the
        // session is as that reset left it. Its answer waits for the next
        // borrower's first statement: a lease that ran nothing costs nothing.
        if (conn.reset_sent()) return ReleaseAction::reuse;
        switch (PQtransactionStatus(c)) {
            case PQTRANS_IDLE:
                if (!needs_session_reset(conn)) return ReleaseAction::reuse;
                if (mode(conn) == ResetMode::trust_sql_text) return ReleaseAction::reset;
                if (!send_reset(conn)) return ReleaseAction::discard;
                return ReleaseAction::reuse;
            case PQTRANS_ACTIVE:  // a statement running or results unread
            case PQTRANS_INTRANS:
            case PQTRANS_INERROR: return ReleaseAction::reset;
            default: return ReleaseAction::discard;
        }
    }

    bool reset(Connection& conn, time_point deadline) noexcept {
        try {
            if (conn.reset_sent() && !conn.finish_reset(deadline)) return false;
            if (PQpipelineStatus(conn.native_handle()) != PQ_PIPELINE_OFF) return false;  // used raw: unknown
            if (!conn.cancel_and_drain(deadline)) return false;
            if (conn.transaction_status() != PQTRANS_IDLE) run(conn, deadline, "ROLLBACK");
            if (needs_session_reset(conn) && !(send_reset(conn) && conn.finish_reset(deadline))) return false;
            end_lease(conn);  // notifications that came in before UNLISTEN
            return conn.usable();
        } catch (...) {
            return false;
        }
    }

    ResetMode mode(const Connection& conn) const noexcept { return mode_.value_or(conn.session_reset()); }

private:
    // Sends the session reset of the connection's mode (it is then clean for
    // whatever is sent after it).
    bool send_reset(Connection& conn) const noexcept {
        conn.session_.clear();
        if (mode(conn) == ResetMode::light)
            return conn.send_reset(detail::light_reset_statements, std::size(detail::light_reset_statements));
        return conn.send_reset(detail::discard_all_statements, std::size(detail::discard_all_statements));
    }

    bool needs_session_reset(const Connection& conn) const noexcept {
        switch (mode(conn)) {
            case ResetMode::discard_all:
            case ResetMode::light: return true;  // whatever ran: its effects cannot be told from its text
            case ResetMode::trust_sql_text: return conn.session_dirty();
            case ResetMode::none: break;
        }
        return false;
    }

    // What a lease set on the client side ends with it: the query timeout,
    // and notifications libpq queued (they were for the borrower's LISTEN).
    static void end_lease(Connection& conn) noexcept {
        conn.set_query_timeout(duration::zero());
        if (PGconn* c = std::as_const(conn).native_handle())
            while (PGnotify* n = PQnotifies(c)) PQfreemem(n);
    }

    static void run(Connection& conn, time_point deadline, const char* sql) {
        conn.run(deadline, Connection::OnTimeout::abandon, sql, [&](PGconn* c) { return PQsendQuery(c, sql); });
    }

    std::optional<ResetMode> mode_;
};

}  // namespace reservoir::pg::context
