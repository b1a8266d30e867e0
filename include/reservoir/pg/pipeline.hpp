#pragma once
// pg::pipeline: many statements on one connection without waiting for each
// result (libpq's pipeline mode), so a batch costs about one round trip
// instead of one per statement.
//
//   std::vector<pg::Result> rows = pg::pipeline(*lease, [&](pg::Pipeline& p) {
//       for (int id : ids) p.query("SELECT name FROM items WHERE id = $1", id);
//   });
//
// Semantics. The batch ends with a single sync point, so the server runs it
// as one implicit transaction (unless the connection is already inside an
// explicit one): it is all or nothing. When statement k fails, the statements
// before it are rolled back, the ones after it are not run, and pipeline()
// throws statement k's QueryError, its message naming k; the connection stays
// usable. Inside an explicit transaction the failure leaves that transaction
// failed, as a failing query() would. If the callback throws, the batch is
// abandoned: a statement that raises an error is queued before the sync, so
// the server rolls back what was queued, and the callback's exception
// propagates. A batch that runs past its deadline throws 57014; its
// connection is closed (a cancel cannot be told apart per statement) and the
// batch cancelled on the server.

#include <libpq-fe.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "detail/cancel.hpp"

namespace reservoir::pg {

class Pipeline {
public:
    // Queues one statement with parameters $1..$n; nothing is waited for.
    template <class... Args>
    void query(const SqlText& sql, const Args&... args) {
        const Params params(args...);
        conn_.session_.note_sql(sql.c_str());
        if (!PQsendQueryParams(c_, sql.c_str(), params.size(), params.types(), params.values(), params.lengths(),
                               params.formats(), 0))
            conn_.throw_failure(c_, nullptr);
        ++queued_;
        // Keep libpq's output buffer from growing without bound; reading
        // while writing (in flush) keeps the server from stalling on us.
        if (queued_ % flush_every == 0 && !Connection::flush(c_, deadline_)) timed_out();
    }

    std::size_t size() const noexcept { return queued_; }

private:
    template <class Fn>
    friend std::vector<Result> pipeline_until(Connection& conn, time_point deadline, Fn&& fn);

    static constexpr std::size_t flush_every = 64;

    Pipeline(Connection& conn, time_point deadline)
        : conn_(conn), c_(conn.ready_connection()), deadline_(deadline), timer_(conn.metrics_.get(), "(pipeline)") {
        if (!PQenterPipelineMode(c_)) conn_.throw_failure(c_, nullptr);
    }

    // Syncs, then reads every queued statement's results and the sync's.
    // The first failure is thrown once the connection is out of pipeline mode.
    std::vector<Result> finish() {
        if (!PQpipelineSync(c_)) broken();
        if (!Connection::flush(c_, deadline_)) timed_out();
        std::vector<Result> results;
        results.reserve(queued_);
        detail::ResultPtr error;
        std::size_t failed_at = 0;
        for (std::size_t i = 0; i < queued_; ++i) {
            detail::ResultPtr last;
            for (;;) {  // one statement's results end with a null
                if (!Connection::await_result(c_, deadline_)) timed_out();
                detail::ResultPtr r(PQgetResult(c_));
                if (!r) break;
                const ExecStatusType status = PQresultStatus(r.get());
                if (status == PGRES_FATAL_ERROR && !error) {
                    error = std::move(r);
                    failed_at = i + 1;
                } else if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
                    conn_.session_.note_tag(PQcmdStatus(r.get()));
                    last = std::move(r);
                } else if (status != PGRES_PIPELINE_ABORTED) {
                    broken();  // COPY or a bad response: no way to continue this session
                }
            }
            results.emplace_back(std::move(last));
        }
        for (;;) {  // the sync point's own result
            if (!Connection::await_result(c_, deadline_)) timed_out();
            detail::ResultPtr r(PQgetResult(c_));
            if (!r) broken();
            if (PQresultStatus(r.get()) == PGRES_PIPELINE_SYNC) break;
        }
        if (!PQexitPipelineMode(c_)) broken();
        if (error) {
            try {
                conn_.throw_failure(c_, error.get());
            } catch (const QueryError& e) {
                throw QueryError(std::string(e.what()) + " (statement " + std::to_string(failed_at) + " of " +
                                     std::to_string(queued_) +
                                     " in a pipeline; the ones before it were rolled back, the ones after it "
                                     "not run)",
                                 e.sqlstate(), e.detail(), e.hint());
            }
        }
        return results;
    }

    // Makes the batch fail at its end, so that its implicit transaction rolls back.
    void abandon() {
        query("DO $$BEGIN RAISE EXCEPTION 'reservoir: pipeline abandoned by its caller'; END$$");
    }

    [[noreturn]] void broken() {
        conn_.evict_ = true;
        conn_.throw_failure(c_, nullptr);
    }

    // The connection is given up, but its backend would run the rest of the
    // batch until it next wrote to the socket: a cancel stops it now, sent
    // without waiting for it (see CancelSender).
    [[noreturn]] void timed_out() {
        conn_.evict_ = true;
        const bool cancelled = detail::CancelSender().start(c_);
        throw QueryError("reservoir: a pipeline of " + std::to_string(queued_) +
                             " statements ran past its deadline; the connection will be closed" +
                             (cancelled ? " and the batch was cancelled on the server" : ""),
                         std::string(sqlstate::query_canceled));
    }

    Connection& conn_;
    PGconn* c_;
    time_point deadline_;
    detail::StatementTimer timer_;  // the whole batch is one entry in the query-time histogram
    std::size_t queued_ = 0;
};

// Runs fn(Pipeline&), which queues statements, then returns one Result per
// statement, in order. Under `deadline` as a whole.
template <class Fn>
std::vector<Result> pipeline_until(Connection& conn, time_point deadline, Fn&& fn) {
    Pipeline p(conn, deadline);
    try {
        std::forward<Fn>(fn)(p);
    } catch (...) {
        const std::exception_ptr thrown = std::current_exception();
        try {
            p.abandon();
            (void)p.finish();
        } catch (...) {  // the callback's exception is the one to report
        }
        std::rethrow_exception(thrown);
    }
    return p.finish();
}

// The same under the connection's query timeout.
template <class Fn>
std::vector<Result> pipeline(Connection& conn, Fn&& fn) {
    return pipeline_until(conn, detail::deadline_after(conn.query_timeout()), std::forward<Fn>(fn));
}

}  // namespace reservoir::pg
