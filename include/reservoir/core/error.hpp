#pragma once
// One error root, a few kinds. Every message starts with "reservoir:" and names
// what was wrong; none ever contains a password.

#include <chrono>
#include <stdexcept>
#include <string>

namespace reservoir {

enum class ErrorKind {
    acquire_timeout,    // no connection within the acquire deadline
    acquire_cancelled,  // the acquirer's std::stop_token was stopped while it waited
    pool_closed,        // the pool is shutting down or shut down
    pool_unavailable,   // the circuit breaker is open: the server is failing
    pool_saturated,     // too many waiters already (admission control)
    connect_failed,     // opening a connection failed
    config,             // a setting is invalid
    query,              // a statement failed; the connection is still good
    connection_lost,    // the connection broke; the pool discards it
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message)
        : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

private:
    ErrorKind kind_;
};

class AcquireTimeout : public Error {
public:
    AcquireTimeout(const std::string& message, std::chrono::nanoseconds waited)
        : Error(ErrorKind::acquire_timeout, message), waited_(waited) {}
    std::chrono::nanoseconds waited() const noexcept { return waited_; }

private:
    std::chrono::nanoseconds waited_;
};

// A queued acquire taken back out of the queue by its std::stop_token.
class AcquireCancelled : public Error {
public:
    AcquireCancelled(const std::string& message, std::chrono::nanoseconds waited)
        : Error(ErrorKind::acquire_cancelled, message), waited_(waited) {}
    std::chrono::nanoseconds waited() const noexcept { return waited_; }

private:
    std::chrono::nanoseconds waited_;
};

class PoolClosed : public Error {
public:
    explicit PoolClosed(const std::string& message) : Error(ErrorKind::pool_closed, message) {}
};

class PoolUnavailable : public Error {
public:
    PoolUnavailable(const std::string& message, std::chrono::nanoseconds retry_in)
        : Error(ErrorKind::pool_unavailable, message), retry_in_(retry_in) {}
    // How long until the pool dials again (the breaker goes half-open).
    std::chrono::nanoseconds retry_in() const noexcept { return retry_in_; }

private:
    std::chrono::nanoseconds retry_in_;
};

class PoolSaturated : public Error {
public:
    explicit PoolSaturated(const std::string& message) : Error(ErrorKind::pool_saturated, message) {}
};

class ConnectError : public Error {
public:
    explicit ConnectError(const std::string& message) : Error(ErrorKind::connect_failed, message) {}
};

class ConfigError : public Error {
public:
    explicit ConfigError(const std::string& message) : Error(ErrorKind::config, message) {}
};

}  // namespace reservoir
