#pragma once
// pg::Driver: opens libpq connections for the pool, never blocking past the
// connect deadline. libpq's own connect_timeout has a 2 s floor and restarts
// for every host; here PQconnectStartParams + PQconnectPoll are driven with
// poll() against one exact deadline for the whole attempt, all hosts included.
// (Host names are still resolved inside PQconnectStartParams, synchronously:
// give `hostaddr` to avoid DNS when that matters.)
//
// No password appears in an error message: libpq's messages never echo one
// (they name hosts, ports, users and the values of other options; the
// keywords go in one by one, with expand_dbname off, so no connection string
// of ours is parsed or quoted back), and redact() hides any in a URL or
// conninfo string that a message may quote.

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/clock.hpp"
#include "../core/error.hpp"
#include "config.hpp"
#include "connection.hpp"
#include "detail/wait.hpp"

namespace reservoir::pg {

class Driver {
public:
    using connection_type = Connection;

    // TCP keepalives so that a dead peer is noticed within about a minute
    // rather than the kernel's two hours; each applies unless the config sets it.
    static constexpr std::pair<const char*, const char*> keepalive_defaults[] = {
        {"keepalives", "1"},       {"keepalives_idle", "30"},        {"keepalives_interval", "10"},
        {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"},
    };

    explicit Driver(const Config& config)
        : config_(config),
          keywords_(config.keywords()),
          session_reset_(config.pooler == decltype(config.pooler)::pgbouncer ? ResetMode::none
                                                                              : ResetMode::discard_all),
          metrics_(std::make_shared<QueryMetrics>(config.slow_query_threshold, config.pool.listener)) {
        for (const auto& [key, value] : keepalive_defaults)
            if (!keyword(key)) keywords_.emplace_back(key, value);
        target_ = describe_target();
    }

    Connection connect(time_point deadline) const {
        const time_point start = std::chrono::steady_clock::now();
        std::vector<const char*> keys, values;
        keys.reserve(keywords_.size() + 1);
        values.reserve(keywords_.size() + 1);
        for (const auto& [key, value] : keywords_) {
            keys.push_back(key.c_str());
            values.push_back(value.c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);

        detail::ConnPtr conn(PQconnectStartParams(keys.data(), values.data(), 0));
        if (!conn) throw ConnectError("reservoir: connect to " + target_ + " failed: out of memory");
        PGconn* c = conn.get();
        // Before the first poll: the server may send notices while it starts
        // the session (a WARNING for a bad per-role setting, say), which
        // libpq's default receiver would print on stderr. Errors that fail the
        // connect come through PQerrorMessage either way.
        PQsetNoticeReceiver(c, detail::drop_notice, nullptr);
        // Before the first PQconnectPoll, behave as if it asked to write.
        PostgresPollingStatusType step = PGRES_POLLING_WRITING;
        while (PQstatus(c) != CONNECTION_BAD && step != PGRES_POLLING_OK && step != PGRES_POLLING_FAILED) {
            const short events = step == PGRES_POLLING_READING ? POLLIN : POLLOUT;
            if (detail::wait_socket(PQsocket(c), events, deadline) == 0)
                throw ConnectError(scrub("reservoir: connect to " + target_ + " timed out after " +
                                         detail::ms_text(std::chrono::steady_clock::now() - start) + " (" +
                                         stage(PQstatus(c)) + ")"));
            step = PQconnectPoll(c);
        }
        if (step != PGRES_POLLING_OK || PQstatus(c) != CONNECTION_OK)
            throw ConnectError(scrub("reservoir: connect to " + target_ + " failed: " +
                                     detail::one_line(PQerrorMessage(c))));
        Connection opened(conn.release(), session_reset_, metrics_, epoch_);
        if (opened.must_evict())  // so the pool does not reconnect in a loop
            throw ConnectError("reservoir: connect to " + target_ + " failed: cannot make the socket non-blocking");
        return opened;
    }

    bool is_usable(const Connection& c) const noexcept { return c.usable(); }
    bool ping(Connection& c, time_point deadline) const noexcept { return c.ping(deadline); }

    const Config& config() const noexcept { return config_; }
    // Every statement run by this driver's connections (and its copies'):
    // latencies, and how many took slow_query_threshold or longer.
    HistogramSnapshot query_time() const noexcept { return metrics_->query_time(); }
    std::uint64_t slow_queries() const noexcept { return metrics_->slow_queries(); }
    // The libpq keywords used to connect: the config's, plus keepalive defaults.
    const std::vector<std::pair<std::string, std::string>>& keywords() const noexcept { return keywords_; }

private:
    // The value libpq uses: the last one given.
    const std::string* keyword(std::string_view key) const noexcept {
        const auto it = std::find_if(keywords_.rbegin(), keywords_.rend(), [&](const auto& kv) { return kv.first == key; });
        return it == keywords_.rend() ? nullptr : &it->second;
    }

    // "host=db1,db2 port=5432 dbname=app user=app", for messages.
    std::string describe_target() const {
        std::string text;
        for (const char* key : {"host", "hostaddr", "port", "dbname", "user"}) {
            const std::string* value = keyword(key);
            if (!value || value->empty()) continue;
            text += (text.empty() ? "" : " ") + std::string(key) + "=" + *value;
        }
        return scrub(text.empty() ? "the default server" : text);
    }

    // Only where a password can be: cutting the password's text wherever it
    // appears would also cut words that happen to match it ("for user").
    static std::string scrub(const std::string& text) { return redact(text); }

    static const char* stage(ConnStatusType status) noexcept {
        switch (status) {
            case CONNECTION_STARTED: return "waiting for the TCP connection";
            case CONNECTION_MADE: return "sending the startup packet";
            case CONNECTION_SSL_STARTUP: return "during the SSL handshake";
            case CONNECTION_GSS_STARTUP: return "during GSS negotiation";
            case CONNECTION_AWAITING_RESPONSE: return "waiting for the server to answer the startup packet";
            case CONNECTION_AUTH_OK: return "authenticated, waiting for the server to be ready";
            case CONNECTION_CHECK_WRITABLE:
            case CONNECTION_CHECK_TARGET:
            case CONNECTION_CHECK_STANDBY: return "checking target_session_attrs";
            default: return "connecting";
        }
    }

    Config config_;
    std::vector<std::pair<std::string, std::string>> keywords_;
    ResetMode session_reset_;
    std::shared_ptr<QueryMetrics> metrics_;
    std::shared_ptr<ServerEpoch> epoch_ = std::make_shared<ServerEpoch>();  // shared by copies, like metrics_
    std::string target_;
};

}  // namespace reservoir::pg
