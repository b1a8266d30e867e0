#pragma once
// pg::Connection: one libpq connection, move-only, owning its PGconn. Every
// statement honours a client-side deadline: the socket is non-blocking and
// waited on with poll(). At the deadline the statement is cancelled on the
// server (by a sender that never blocks the caller: detail/cancel.hpp) and its
// result drained; a QueryError with SQLSTATE 57014 is thrown at the latest a
// short grace (cancel_grace) after the deadline. The connection stays usable
// when the server confirmed the cancel and the statement ended within the
// grace, and is to be closed otherwise (a blackholed network, say). The
// event-loop API (send, consume, result) has no deadline: its loop owns time.
//
// Not thread-safe: one thread at a time, like the Lease that lends it.

#include <fcntl.h>
#include <libpq-fe.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "../core/clock.hpp"
#include "config.hpp"
#include "detail/cancel.hpp"
#include "detail/hangup_watch.hpp"
#include "detail/wait.hpp"
#include "error.hpp"
#include "metrics.hpp"
#include "params.hpp"
#include "result.hpp"
#include "session.hpp"

namespace reservoir::pg {

class Driver;
class Pipeline;
namespace context {
class Reset;
}

// SQL text for libpq, which wants it NUL-terminated: const char* and
// std::string are used in place, a std::string_view is copied.
class SqlText {
public:
    SqlText(const char* sql) noexcept : sql_(sql) {}                // NOLINT: implicit by design
    SqlText(const std::string& sql) noexcept : sql_(sql.c_str()) {}  // NOLINT
    SqlText(std::string_view sql) : copy_(sql), sql_(copy_.c_str()) {}  // NOLINT
    SqlText(const SqlText&) = delete;
    SqlText& operator=(const SqlText&) = delete;

    const char* c_str() const noexcept { return sql_; }

private:
    std::string copy_;
    const char* sql_;
};

namespace detail {
struct TenantAccess;  // tenant.hpp

struct ConnDeleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

// A connection's PGconn and the hang-up watch on its socket, registered on
// adoption. The watch ends first, while libpq still holds the socket it names.
class OwnedConn {
public:
    explicit OwnedConn(PGconn* c) noexcept : conn_(c) {
        if (c && PQstatus(c) == CONNECTION_OK) watch_ = HangupWatch(PQsocket(c));
    }
    OwnedConn(OwnedConn&&) noexcept = default;
    OwnedConn& operator=(OwnedConn&& other) noexcept {
        if (this != &other) {
            close();
            conn_ = std::move(other.conn_);
            watch_ = std::move(other.watch_);
        }
        return *this;
    }
    OwnedConn(const OwnedConn&) = delete;
    OwnedConn& operator=(const OwnedConn&) = delete;
    ~OwnedConn() { close(); }

    PGconn* get() const noexcept { return conn_.get(); }
    explicit operator bool() const noexcept { return static_cast<bool>(conn_); }
    const HangupWatch& watch() const noexcept { return watch_; }

private:
    // The server counts a session (pg_stat_activity, max_connections) until
    // its backend has exited, which it does after it reads the Terminate that
    // PQfinish sends, and it closes the socket last. So a replacement opened
    // as soon as PQfinish returns could make the server see one connection
    // more than the pool's max. A copy of the socket kept past PQfinish shows
    // the server's end of the session: closing waits for it, up to
    // backend_exit_wait (a server out of reach is not waited for longer).
    void close() noexcept {
        const int fd = conn_ ? PQsocket(conn_.get()) : -1;
        watch_.stop(fd);
        const int peer = fd >= 0 && PQstatus(conn_.get()) == CONNECTION_OK ? ::fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
        conn_.reset();
        if (peer < 0) return;
        await_end_of_stream(peer, std::chrono::steady_clock::now() + backend_exit_wait);
        ::close(peer);
    }

    static constexpr auto backend_exit_wait = std::chrono::milliseconds(50);

    // Reads and drops what arrives until the peer closes (or fails), or the deadline.
    static void await_end_of_stream(int fd, time_point deadline) noexcept {
        char buf[512];
        while (wait_socket(fd, POLLIN, deadline) != 0) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return;
        }
    }

    ConnPtr conn_;
    HangupWatch watch_;
};
}  // namespace detail

// Shared by a driver's connections: which of them were opened before their
// server turned read-only, to be closed at their next borrow or return rather
// than each fail a write first. A write refused with 25006 (read-only) says
// either that the server is read-only now (a primary demoted by a failover,
// or fenced with default_transaction_read_only) or that the session made
// itself read-only (SET default_transaction_read_only, BEGIN READ ONLY, a
// function or DO block that set either), and only the first is a reason to
// retire every connection. The refused session cannot tell which from its
// own state, so the decision does not rest on reading its SQL:
//   - a server that reports in_hot_standby (which only the server sets) is
//     read-only: the epoch advances at once;
//   - otherwise the refusal is a suspicion, and the next session the driver
//     opens is the referee, a fresh session with nothing of the suspect's own
//     doing: it advances the epoch if libpq placed it on another server (it
//     skipped the suspect's, as target_session_attrs=read-write does with a
//     read-only server) or if that server reports it read-only to a new
//     session too; if it finds the server writable the suspicion is dropped.
class ServerEpoch {
public:
    std::uint64_t current() const noexcept { return epoch_.load(std::memory_order_acquire); }

    // A session opened in epoch `opened_in` on `c` had a write refused as read-only.
    void refused_write(PGconn* c, std::uint64_t opened_in) noexcept {
        if (reports(c, "in_hot_standby")) return advance_from(opened_in);
        try {
            std::lock_guard lock(mu_);
            if (opened_in != current()) return;  // retired already
            suspect_server_ = server_of(c);
            suspect_epoch_ = opened_in;
            suspected_ = true;
        } catch (...) {  // no memory for the server's name: the refused session alone is retired
        }
    }

    // Called with each session the driver opens, before it takes its epoch.
    void referee(PGconn* fresh) noexcept {
        try {
            std::lock_guard lock(mu_);  // a connect's cost beside it is nothing
            if (!std::exchange(suspected_, false)) return;
            if (server_of(fresh) != suspect_server_ || reports(fresh, "in_hot_standby") ||
                reports(fresh, "default_transaction_read_only"))
                advance_from(suspect_epoch_);
        } catch (...) {  // as above
        }
    }

private:
    // Once per epoch: the siblings refused too find it already advanced.
    void advance_from(std::uint64_t seen) noexcept { epoch_.compare_exchange_strong(seen, seen + 1); }
    static bool reports(PGconn* c, const char* parameter) noexcept {
        const char* value = PQparameterStatus(c, parameter);
        return value && std::string_view(value) == "on";
    }
    static std::string server_of(PGconn* c) {
        const char* host = PQhost(c);
        const char* port = PQport(c);
        return std::string(host ? host : "") + ":" + (port ? port : "");
    }

    std::atomic<std::uint64_t> epoch_{0};
    std::mutex mu_;
    bool suspected_ = false;           // guarded by mu_, as are the two below
    std::uint64_t suspect_epoch_ = 0;
    std::string suspect_server_;       // "host:port"
};

class Connection {
public:
    // Adopts an open connection (as pg::Driver makes them). It is switched to
    // non-blocking mode, server notices are dropped (no stderr output), and
    // its socket is watched for the server's hang-up (see usable()).
    // Statements are timed into `metrics` when given; `epoch`, when given, is
    // the driver's (see ServerEpoch).
    explicit Connection(PGconn* adopted, ResetMode session_reset = ResetMode::discard_all,
                        std::shared_ptr<QueryMetrics> metrics = nullptr,
                        std::shared_ptr<ServerEpoch> epoch = nullptr) noexcept
        : conn_(adopted),
          metrics_(std::move(metrics)),
          epoch_(std::move(epoch)),
          session_reset_(session_reset) {
        if (!conn_) return;
        if (epoch_) {
            epoch_->referee(conn_.get());
            opened_in_ = epoch_->current();
        }
        PQsetNoticeReceiver(conn_.get(), detail::drop_notice, nullptr);
        if (PQsetnonblocking(conn_.get(), 1) != 0) evict_ = true;
    }
    Connection(Connection&&) noexcept = default;
    Connection& operator=(Connection&&) noexcept = default;

    // One statement with parameters $1..$n (see params.hpp for the types),
    // under the connection's query timeout.
    template <class... Args>
    Result query(const SqlText& sql, const Args&... args) {
        return query_until(detail::deadline_after(query_timeout_), sql, args...);
    }
    template <class... Args>
    Result query_for(duration timeout, const SqlText& sql, const Args&... args) {
        return query_until(std::chrono::steady_clock::now() + timeout, sql, args...);
    }
    template <class... Args>
    Result query_until(time_point deadline, const SqlText& sql, const Args&... args) {
        return query_params(deadline, sql.c_str(), sql.c_str(), args...);
    }

    // A script of one or more statements without parameters (the simple query
    // protocol, like psql); returns the last statement's result.
    Result execute(const SqlText& script) { return execute_until(detail::deadline_after(query_timeout_), script); }
    Result execute_until(time_point deadline, const SqlText& script) {
        const detail::StatementTimer timer(metrics_.get(), script.c_str());
        return run(deadline, OnTimeout::cancel, script.c_str(),
                   [&](PGconn* c) { return PQsendQuery(c, script.c_str()); });
    }

    // For event loops: starts a statement with parameters $1..$n (like query())
    // and returns without waiting for its answer. Watch socket() for readable,
    // and for writable too while wants_write(); call consume() at each wake-up
    // until it returns true, then take result(). At most one statement in
    // flight: send() throws like query() when it cannot send (a broken
    // session: ConnectionLost; a statement of send() whose result() is not
    // taken yet: QueryError 55000). No deadline: a caller that gives up on a
    // statement discards its lease (Lease::discard()), which closes the connection.
    template <class... Args>
    void send(const SqlText& sql, const Args&... args) {
        const Params params(args...);
        const time_point now = std::chrono::steady_clock::now();
        PGconn* c = start(
            sql.c_str(), [&](PGconn* conn) { return send_params(conn, sql.c_str(), params); }, true);
        in_flight_ = true;
        sent_at_ = now;
        // Only slow query events read the text; the capacity is kept, so no allocation once warm.
        if (metrics_) sent_sql_.assign(std::string_view(sql.c_str()).substr(0, QueryMetrics::max_statement_text));
        unsent_ = PQflush(c) > 0;  // a failed write is reported with the result
    }

    // The socket to watch (PQsocket), -1 when closed.
    int socket() const noexcept { return conn_ ? PQsocket(conn_.get()) : -1; }
    // Part of the statement is still unsent: watch for writable too.
    bool wants_write() const noexcept { return unsent_; }

    // Call when socket() is readable (or writable while wants_write()): sends
    // what is left, reads what has arrived, never blocks. True once the answer
    // is complete and result() will not block (or nothing is in flight).
    bool consume() noexcept {
        PGconn* c = conn_.get();
        if (!c || !in_flight_ || answer_.complete) return true;
        if (unsent_) unsent_ = PQflush(c) > 0;
        // Read even while sending: the server may wait for us to read before it reads.
        // A failed read leaves the connection bad, which read_results() takes as the end.
        PQconsumeInput(c);
        answer_.complete = read_results(c, answer_);
        if (answer_.complete) unsent_ = false;
        return answer_.complete;
    }

    // The statement's result, once consume() returned true: returns or throws
    // what query() would for the same answer, and times it (from send()) into
    // the metrics. Before that it throws QueryError 55000.
    Result result() {
        PGconn* c = conn_.get();
        if (!c || !in_flight_ || !answer_.complete)
            throw QueryError("reservoir: result() without a complete answer: call it once consume() returned true",
                             "55000");
        in_flight_ = false;
        if (metrics_) metrics_->record(sent_sql_, std::chrono::steady_clock::now() - sent_at_);
        return finish(c, std::exchange(answer_, {}));
    }

    // The deadline of query() and execute(); zero (the default) means none.
    void set_query_timeout(duration timeout) noexcept { query_timeout_ = timeout; }
    duration query_timeout() const noexcept { return query_timeout_; }

    // How long past its deadline a timed-out statement may take to confirm
    // its cancel and end, before its connection is given up instead: 5% of
    // its timeout, so that it fails well within deadline + 10%, kept within
    // 50 ms..1 s. The floor: a cancel costs a second TCP connection, a fork
    // by the postmaster and a signal (12-25 ms on a loopback of a lightly
    // loaded two-core machine, up to 100 ms under heavy load); with less,
    // healthy connections would be closed and reopened, which costs more than
    // the wait. So a timeout under 500 ms gets more than 10%. The ceiling: a
    // server that has not confirmed a cancel within a second is of no use to
    // the caller.
    static constexpr duration cancel_grace_min = std::chrono::milliseconds(50);
    static constexpr duration cancel_grace_max = std::chrono::seconds(1);
    static constexpr duration cancel_grace(duration timeout) noexcept {
        return std::clamp<duration>(timeout / 20, cancel_grace_min, cancel_grace_max);
    }

    // True once the session must not be reused although it may still answer:
    // the connection broke, a timed-out statement could not be drained, or
    // the server reported 25006 (a write refused as read-only) or 25P03
    // (idle-in-transaction timeout), or its server turned read-only since it
    // was opened (ServerEpoch).
    bool must_evict() const noexcept { return evict_ || (epoch_ && epoch_->current() != opened_in_); }

    // Cheap local check, no round trip: open, idle (no transaction, nothing
    // running, no result of send() left to take), not to be evicted, and the
    // server has not closed the socket. No system call: the process's
    // hang-up watcher (detail/hangup_watch.hpp) flags a socket the server
    // closed (a terminated backend, a server shutting down) or that failed,
    // as soon as its thread wakes (docs/operations.md has the window).
    // Where the socket is not watched (epoll unavailable), it is polled
    // instead, and readable bytes are read: an idle session expects none, and
    // a server that terminates a backend sends an error and closes, which
    // this sees. A session that answered within the last millisecond is then
    // taken as open without looking: under load a connection passes from one
    // borrower to the next in microseconds, and the look costs a system call
    // per borrow to narrow a window that the next statement's send reopens.
    bool usable() const noexcept {
        PGconn* c = conn_.get();
        // A session reset in flight leaves the session active until its answer is read.
        if (!c || in_flight_ || must_evict() || PQstatus(c) != CONNECTION_OK ||
            (!reset_sent_ && PQtransactionStatus(c) != PQTRANS_IDLE))
            return false;
        if (conn_.watch().covers(PQsocket(c))) return !conn_.watch().hung_up();
        if (std::chrono::steady_clock::now() - answered_at_ < recent_answer) return true;
        for (int reads = 0; reads < 4 && detail::readable_now(PQsocket(c)); ++reads)
            if (!PQconsumeInput(c)) return false;
        return PQstatus(c) == CONNECTION_OK;
    }

    // Whether the watcher covers this connection's socket, so that usable()
    // makes no system call; false where epoll could not be used (usable()
    // then polls the socket) and once the connection is closed.
    bool hangup_watched() const noexcept { return conn_ && conn_.watch().covers(PQsocket(conn_.get())); }
    // The watcher saw the server close the socket, or the socket fail:
    // usable() is false from then on.
    bool hung_up() const noexcept { return conn_.watch().hung_up(); }

    // A round trip (an empty query) under the deadline; false on any failure.
    // One that runs out of time stays in flight, and the next ping waits for
    // its answer instead of sending another: the pool pings again a connection
    // whose borrower had no time left for the check (see Driver in concepts.hpp).
    bool ping(time_point deadline) noexcept {
        try {
            PGconn* c = ping_in_flight_ ? conn_.get() : ready_connection();
            if (!c) return false;
            if (!ping_in_flight_) {
                if (!PQsendQuery(c, "")) return false;
                ping_in_flight_ = true;
            }
            if (!flush(c, deadline)) return false;
            bool ok = true;
            for (;;) {
                if (!await_result(c, deadline)) return false;  // still in flight
                detail::ResultPtr r(PQgetResult(c));
                if (!r) break;
                ok = ok && PQresultStatus(r.get()) == PGRES_EMPTY_QUERY;
            }
            ping_in_flight_ = false;
            answered_at_ = std::chrono::steady_clock::now();
            return ok && PQstatus(c) == CONNECTION_OK;
        } catch (...) {
            return false;
        }
    }

    // Whether the session may carry state from its borrower (SET, PREPARE,
    // LISTEN, temporary tables, advisory locks...): see session.hpp.
    bool session_dirty() const noexcept { return session_.dirty(); }
    ResetMode session_reset() const noexcept { return session_reset_; }
    // The borrower's view: the pool's session reset still in flight is not a statement of its own.
    PGTransactionStatusType transaction_status() const noexcept {
        if (reset_sent_) return PQTRANS_IDLE;
        return conn_ ? PQtransactionStatus(conn_.get()) : PQTRANS_UNKNOWN;
    }
    int backend_pid() const noexcept { return conn_ ? PQbackendPID(conn_.get()) : 0; }
    // For libpq calls of your own. The non-const one first reads the answer
    // of a session reset still in flight (up to reset_answer_wait), so that
    // libpq is idle and out of pipeline mode; a reset that failed marks the
    // connection to be closed, and the next statement through it throws.
    // Never PQfinish or PQreset it: the connection owns it, and watches the
    // socket it opened with (a new socket with the same number would go unwatched).
    PGconn* native_handle() noexcept {
        if (reset_sent_) finish_reset(std::chrono::steady_clock::now() + reset_answer_wait);
        return conn_.get();
    }
    PGconn* native_handle() const noexcept { return conn_.get(); }

private:
    friend class context::Reset;
    friend class Pipeline;
    friend struct detail::TenantAccess;

    // `scanned` is the text the session tracker scans for session state: the
    // SQL itself, or "" for a statement known to leave none (the transaction-
    // local set_config of pg::with_tenant). Command tags are checked either way.
    template <class... Args>
    Result query_params(time_point deadline, std::string_view scanned, const char* sql, const Args&... args) {
        const Params params(args...);
        const detail::StatementTimer timer(metrics_.get(), sql);
        return run(
            deadline, OnTimeout::cancel, scanned, [&](PGconn* c) { return send_params(c, sql, params); }, true);
    }

    // The session reset of a returned connection (context.hpp), sent in
    // libpq's pipeline mode, with a sync of its own, without waiting for its
    // answer. The server runs it before anything sent after it, so no
    // statement of the next borrower can see the session before it. That
    // borrower's first statement with parameters (query(), send()) goes
    // behind it in the same pipeline, with no wait; anything else first reads
    // the reset's answer (finish_reset). A reset that fails withholds the
    // result of the statement behind it (ConnectionLost) and closes the connection.
    bool send_reset(const char* const* statements, std::size_t count) noexcept {
        PGconn* c = conn_.get();
        if (!c || in_flight_ || PQtransactionStatus(c) != PQTRANS_IDLE || !PQenterPipelineMode(c)) return false;
        reset_sent_ = true;  // set before sending: a failure leaves it to be closed
        for (std::size_t i = 0; i < count; ++i)
            if (!PQsendQueryParams(c, statements[i], 0, nullptr, nullptr, nullptr, nullptr, 0)) return false;
        return PQpipelineSync(c) && PQflush(c) >= 0;  // what is left is flushed with the next send
    }
    bool reset_sent() const noexcept { return reset_sent_; }

    // Reads the reset's answer as far as it has arrived, never blocking: 1
    // once it is all in and good, 0 not yet, -1 failed (to be closed).
    int read_reset(PGconn* c) noexcept {
        for (bool after_null = false; !PQisBusy(c);) {
            detail::ResultPtr r(PQgetResult(c));
            if (!r) {
                if (after_null || PQstatus(c) != CONNECTION_OK) return fail_reset();
                after_null = true;  // the end of one statement's results
                continue;
            }
            after_null = false;
            const ExecStatusType status = PQresultStatus(r.get());
            if (status == PGRES_PIPELINE_SYNC) {
                reset_sent_ = false;
                while (PGnotify* n = PQnotifies(c)) PQfreemem(n);  // for the last borrower's LISTEN
                if (!statement_behind_reset_ && !PQexitPipelineMode(c)) return fail_reset();
                return 1;
            }
            if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return fail_reset();
        }
        return PQstatus(c) == CONNECTION_OK ? 0 : fail_reset();
    }
    int fail_reset() noexcept {
        evict_ = true;
        reset_failed_ = true;
        return -1;
    }

    // Reads the reset's answer, waiting up to the deadline; false if it failed.
    bool finish_reset(time_point deadline) noexcept {
        PGconn* c = conn_.get();
        for (bool sent = c && flush(c, deadline);;) {
            const int state = sent ? read_reset(c) : fail_reset();
            if (state != 0) return state > 0;
            sent = await_result(c, deadline);
        }
    }

    static int send_params(PGconn* c, const char* sql, const Params& params) noexcept {
        return PQsendQueryParams(c, sql, params.size(), params.types(), params.values(), params.lengths(),
                                 params.formats(), 0);
    }

    enum class OnTimeout {
        cancel,   // cancel on the server and drain, keeping the connection
        abandon,  // leave it to be closed (session resets, whose caller closes it)
    };
    template <class Send>
    Result run(time_point deadline, OnTimeout on_timeout, std::string_view sql, Send send, bool params = false) {
        const time_point start_time = std::chrono::steady_clock::now();
        PGconn* c = start(sql, send, params);
        if (!flush(c, deadline)) timed_out(start_time, deadline, on_timeout);
        Answer answer;
        do {
            if (!await_result(c, deadline)) timed_out(start_time, deadline, on_timeout);
        } while (!read_results(c, answer));
        return finish(c, std::move(answer));
    }

    // A statement's results as they are read: the last one, and the first
    // error (reading on to the end, which the next statement needs).
    struct Answer {
        detail::ResultPtr last, error;
        bool copy = false;      // it started a COPY, which is never drained
        bool complete = false;  // read to the end (send()'s statement only)
    };

    // Starts a statement (blocking or not): the session tracker scans `sql`.
    // `params`: sent with PQsendQueryParams, so it may go behind a session
    // reset still in flight (pipeline mode allows only the extended protocol).
    template <class Send>
    PGconn* start(std::string_view sql, Send send, bool params = false) {
        PGconn* c = ready_connection(params);
        session_.note_sql(sql);
        if (!send(c)) throw_failure(c, nullptr);
        if (reset_sent_) {
            statement_behind_reset_ = true;
            if (!PQpipelineSync(c)) throw_failure(c, nullptr);
        }
        return c;
    }

    // Reads the results that have arrived into `answer`, never blocking: true
    // once the last is in (or a COPY began, or the connection broke).
    bool read_results(PGconn* c, Answer& answer) noexcept {
        if (reset_sent_) {  // this statement went behind the reset: its answer comes first
            const int state = read_reset(c);
            if (state < 0) return true;  // finish() withholds the result
            if (state == 0) return false;
        }
        bool after_null = false;
        while (!PQisBusy(c)) {
            detail::ResultPtr r(PQgetResult(c));
            if (!r) {
                // Behind a reset, its pipeline's sync is next (unless the connection broke).
                if (!statement_behind_reset_ || PQstatus(c) != CONNECTION_OK || std::exchange(after_null, true))
                    return true;
                continue;
            }
            after_null = false;
            const ExecStatusType status = PQresultStatus(r.get());
            if (status == PGRES_PIPELINE_SYNC) {
                statement_behind_reset_ = false;
                if (!PQexitPipelineMode(c)) evict_ = true;
                return true;
            }
            if (is_copy(status)) {
                answer.copy = true;
                return true;
            }
            switch (status) {
                case PGRES_FATAL_ERROR:
                case PGRES_BAD_RESPONSE:
                    if (!answer.error) answer.error = std::move(r);
                    break;
                default:
                    session_.note_tag(PQcmdStatus(r.get()));
                    answer.last = std::move(r);
            }
        }
        return false;
    }

    // The result of a statement read to the end, or what its failure throws.
    Result finish(PGconn* c, Answer answer) {
        if (reset_failed_) {
            reset_failed_ = false;
            throw ConnectionLost("reservoir: connection lost: the session reset before this statement failed; its "
                                 "result is withheld and the connection will be closed");
        }
        if (answer.copy) {
            evict_ = true;
            throw QueryError("reservoir: COPY is not supported by query() or execute(); the connection will "
                             "be closed",
                             "0A000");
        }
        answered_at_ = std::chrono::steady_clock::now();
        if (answer.error || PQstatus(c) != CONNECTION_OK) throw_failure(c, answer.error.get());
        return Result(std::move(answer.last));
    }

    // `behind_reset`: the statement may go behind a session reset in flight.
    PGconn* ready_connection(bool behind_reset = false) {
        PGconn* c = conn_.get();
        if (!c) throw ConnectionLost("reservoir: connection is closed");
        if (PQstatus(c) != CONNECTION_OK) throw_failure(c, nullptr);
        if (in_flight_)  // the caller's to finish: the session is fine
            throw QueryError("reservoir: a statement sent with send() is still in flight; take its result() first",
                             "55000");
        if (reset_sent_ && !behind_reset &&
            !finish_reset(std::chrono::steady_clock::now() + reset_answer_wait)) {
            reset_failed_ = false;
            throw ConnectionLost("reservoir: connection lost: the session reset failed; the connection will be closed");
        }
        if (!reset_sent_ && PQtransactionStatus(c) == PQTRANS_ACTIVE) {  // (the reset is active until read)
            evict_ = true;
            throw ConnectionLost("reservoir: connection is still busy with an earlier statement that could not "
                                 "be drained; it cannot be used");
        }
        return c;
    }

    // Sends what libpq has buffered. False at the deadline. A failed write
    // returns true: libpq reports it with the result.
    static bool flush(PGconn* c, time_point deadline) noexcept {
        while (PQflush(c) > 0) {
            const short ready = detail::wait_socket(PQsocket(c), POLLIN | POLLOUT, deadline);
            if (ready == 0) return false;
            // Read too: the server may be waiting for us to read before it reads.
            if ((ready & POLLIN) && !PQconsumeInput(c)) return true;
            if (ready & (POLLERR | POLLHUP | POLLNVAL)) return true;
        }
        return true;
    }

    // Reads until PQgetResult() will not block. False at the deadline.
    static bool await_result(PGconn* c, time_point deadline) noexcept {
        while (PQisBusy(c)) {
            if (detail::wait_socket(PQsocket(c), POLLIN, deadline) == 0) return false;
            if (!PQconsumeInput(c)) break;  // broken: PQgetResult() reports it at once
        }
        return true;
    }

    [[noreturn]] void timed_out(time_point start, time_point deadline, OnTimeout on_timeout) {
        const time_point now = std::chrono::steady_clock::now();
        // Timed out in a pipeline (behind a session reset): given up, which is rare and simpler.
        const bool kept = on_timeout == OnTimeout::cancel && PQpipelineStatus(conn_.get()) == PQ_PIPELINE_OFF &&
                          cancel_and_drain(now + cancel_grace(deadline - start));
        if (!kept) evict_ = true;
        throw QueryError("reservoir: query timed out after " + detail::ms_text(now - start) +
                             " (client-side deadline); " +
                             (kept ? "it was cancelled on the server"
                                   : "the server did not confirm its cancel in time: the connection will be closed"),
                         std::string(sqlstate::query_canceled));
    }

    // Cancels the running statement, if any, and reads its results to the
    // end, returning by the deadline whatever the network does. True when the
    // connection is idle and no cancel of ours is still on its way (a late one
    // could hit the next statement). A backend drops a cancel that arrives
    // before it has read the statement, so while the statement still runs the
    // cancel is sent again, at growing intervals, once the last one is confirmed.
    bool cancel_and_drain(time_point deadline) noexcept {
        PGconn* c = conn_.get();
        const auto running = [c] {
            return c && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_ACTIVE;
        };
        detail::CancelSender cancel;
        for (duration wait = std::chrono::milliseconds(20); running(); wait *= 2) {
            const time_point now = std::chrono::steady_clock::now();
            if (now >= deadline || stop_requested()) return false;
            cancel.start(c);  // does nothing while the last request is unconfirmed
            drain(c, std::min(deadline, now + wait));
        }
        return c && PQstatus(c) == CONNECTION_OK && cancel.wait(deadline);
    }

    // Reads and drops results until the statement is over (or in COPY, which
    // is never drained) or `until` passes.
    static void drain(PGconn* c, time_point until) noexcept {
        while (flush(c, until) && await_result(c, until)) {
            detail::ResultPtr r(PQgetResult(c));
            if (!r || is_copy(PQresultStatus(r.get()))) return;
        }
    }

    static bool is_copy(ExecStatusType status) noexcept {
        return status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH;
    }

    // Throws the error of a failed statement (or of the connection, when
    // `error` is null): ConnectionLost if the session is gone, else QueryError.
    [[noreturn]] void throw_failure(PGconn* c, const PGresult* error) {
        // Redacted: a conninfo or URL the server echoes (dblink, FDWs) keeps no password.
        const auto field = [&](int code) { return error ? redact(detail::field(error, code)) : std::string(); };
        const std::string state = field(PG_DIAG_SQLSTATE), severity = field(PG_DIAG_SEVERITY_NONLOCALIZED);
        const std::string server_detail = field(PG_DIAG_MESSAGE_DETAIL);
        std::string primary = field(PG_DIAG_MESSAGE_PRIMARY);
        if (primary.empty()) primary = redact(detail::one_line(error ? PQresultErrorMessage(error) : PQerrorMessage(c)));
        std::string text = primary + (state.empty() ? "" : " (SQLSTATE " + state + ")");
        if (!server_detail.empty()) text += "; detail: " + server_detail;

        // The session's state decides, not the SQLSTATE's class: a server ERROR
        // leaves the session open whatever its code (08P01 for a parameter
        // count that does not match the statement's, 08001 from dblink...).
        if (PQstatus(c) != CONNECTION_OK || severity == "FATAL" || severity == "PANIC" ||
            (severity.empty() && detail::is_connection_failure(state))) {
            evict_ = true;
            throw ConnectionLost("reservoir: connection lost: " + text, state, server_detail);
        }
        if (detail::requires_eviction(state)) evict_ = true;
        if (state == sqlstate::read_only_transaction && epoch_) epoch_->refused_write(c, opened_in_);
        throw QueryError("reservoir: query failed: " + text, state, server_detail, field(PG_DIAG_MESSAGE_HINT));
    }

    detail::OwnedConn conn_;
    duration query_timeout_ = duration::zero();
    std::shared_ptr<QueryMetrics> metrics_;
    std::shared_ptr<ServerEpoch> epoch_;
    std::uint64_t opened_in_ = 0;  // the epoch when it was opened
    detail::SessionTracker session_;
    ResetMode session_reset_;
    bool evict_ = false;
    // The session reset of send_reset(): its answer is still unread; a
    // statement was sent behind it; it failed (the statement's result is withheld).
    bool reset_sent_ = false, statement_behind_reset_ = false, reset_failed_ = false;
    static constexpr duration reset_answer_wait = std::chrono::seconds(5);  // for an answer already on its way
    bool ping_in_flight_ = false;  // sent by a ping that ran out of time; the next ping reads its answer
    static constexpr duration recent_answer = std::chrono::milliseconds(1);
    time_point answered_at_{};  // when the last statement's results were all read (usable() of an unwatched socket)
    // The statement of send() until its result() is taken.
    bool in_flight_ = false;
    bool unsent_ = false;  // part of it is still in libpq's output buffer
    Answer answer_;
    time_point sent_at_{};
    std::string sent_sql_;  // for slow query events, cut like theirs
};

}  // namespace reservoir::pg
