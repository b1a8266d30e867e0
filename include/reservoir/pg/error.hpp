#pragma once
// Errors of the PostgreSQL driver. Server errors carry the SQLSTATE and the
// server's detail; a failure that leaves the connection useless is a distinct
// type (ConnectionLost) so that callers and the pool can tell them apart.

#include <libpq-fe.h>

#include <string>
#include <string_view>
#include <utility>

#include "../core/error.hpp"

namespace reservoir::pg {

// SQLSTATEs the driver itself reports or acts upon.
namespace sqlstate {
inline constexpr std::string_view query_canceled = "57014";  // statement_timeout, cancel, client timeout
inline constexpr std::string_view unique_violation = "23505";
inline constexpr std::string_view in_failed_transaction = "25P02";
inline constexpr std::string_view read_only_transaction = "25006";           // e.g. a demoted primary
inline constexpr std::string_view idle_in_transaction_timeout = "25P03";
inline constexpr std::string_view invalid_transaction_termination = "2D000";  // pg::transaction's fn ended it
}  // namespace sqlstate

// A failure reported by (or on behalf of) the server, with its diagnostics.
class ServerError : public Error {
public:
    ServerError(ErrorKind kind, const std::string& message, std::string sqlstate, std::string detail = {},
                std::string hint = {})
        : Error(kind, message), sqlstate_(std::move(sqlstate)), detail_(std::move(detail)), hint_(std::move(hint)) {}

    const std::string& sqlstate() const noexcept { return sqlstate_; }  // five characters, or empty
    const std::string& detail() const noexcept { return detail_; }
    const std::string& hint() const noexcept { return hint_; }

private:
    std::string sqlstate_, detail_, hint_;
};

// A statement failed (constraint, syntax, timeout: SQLSTATE 57014, ...). The
// connection is still good unless Connection::must_evict() says otherwise.
class QueryError : public ServerError {
public:
    QueryError(const std::string& message, std::string sqlstate, std::string detail = {}, std::string hint = {})
        : ServerError(ErrorKind::query, message, std::move(sqlstate), std::move(detail), std::move(hint)) {}
};

// The connection broke (network, server shutdown, backend terminated): it
// can run nothing more, and the pool discards it when it comes back.
class ConnectionLost : public ServerError {
public:
    explicit ConnectionLost(const std::string& message, std::string sqlstate = {}, std::string detail = {})
        : ServerError(ErrorKind::connection_lost, message, std::move(sqlstate), std::move(detail)) {}
};

// A value could not be read as the requested C++ type (NULL, wrong type, out
// of range), or a row or column does not exist.
class TypeError : public Error {
public:
    explicit TypeError(const std::string& message) : Error(ErrorKind::query, message) {}
};

namespace detail {

// Connection-class SQLSTATEs (class 08) and the server going away (57P01
// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now). Only a
// hint, for an error without a severity: the server ends a session with a
// FATAL error, and after an ERROR (08P01 for a wrong parameter count, say) the
// session goes on.
inline bool is_connection_failure(std::string_view state) noexcept {
    return state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03";
}

// States after which the session must not be reused although it still answers.
inline bool requires_eviction(std::string_view state) noexcept {
    return state == sqlstate::read_only_transaction || state == sqlstate::idle_in_transaction_timeout;
}

inline std::string field(const PGresult* r, int code) {
    const char* v = PQresultErrorField(r, code);
    return v ? v : "";
}

}  // namespace detail

}  // namespace reservoir::pg
