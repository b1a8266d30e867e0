#pragma once
// reservoir::pg::Config: where and how to reach PostgreSQL, plus the pool's
// options. Read it from the environment (from_env), from a postgresql:// URL
// (from_url), or fill it in by hand. Pure configuration, no libpq: the driver
// passes keywords() to PQconnectStartParams.
//
// Precedence in from_env, highest first:
//   1. the parts DATABASE_URL actually has (a URL without a password leaves
//      DB_PASSWORD in force),
//   2. our DB_* variables; a primary name over its alias (DB_SSL over DATABASE_SSL),
//   3. DB_PROFILE's recommended values (pool sizes and timeouts),
//   4. the defaults below,
//   5. libpq's own settings: host, port, dbname, user, password and sslmode are
//      sent only when set, so PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD,
//      ~/.pgpass, PGSSLMODE and libpq's defaults (a local socket or localhost,
//      port 5432, user = OS user, dbname = user) still apply underneath.
//
// Thread safety: a Config is a plain value. from_env() calls std::getenv,
// which races with a concurrent setenv: call it at start-up.
// Exceptions: ConfigError (`reservoir: NAME = "value": why`), never with a
// password in its message; std::bad_alloc.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/options.hpp"

namespace reservoir::pg {

using namespace std::chrono_literals;

enum class Pooler {
    none,       // a PostgreSQL server, or a proxy that passes everything through
    pgbouncer,  // PgBouncer: rejects startup options, so no statement_timeout is sent
};

struct Config {
    static constexpr std::string_view default_application_name = "reservoir";

    // The URL this came from (from_url or DATABASE_URL), verbatim, or "". It may
    // hold a password: log redacted_url() instead.
    std::string url;

    // Connection. "" = unset: not sent, so libpq's PG* variable or default applies.
    std::string host;  // name, IP or socket directory; a comma list "h1,h2" tries each in turn
    std::string port;  // "5432", or one per host: "5432,5433" (an empty entry = the default port)
    std::string dbname;
    std::string user;
    std::string password;
    // Sent as fallback_application_name while it is the default (so PGAPPNAME
    // still wins over it), as application_name otherwise; "" = not sent.
    std::string application_name{default_application_name};
    // Sent as "-c statement_timeout=N" in libpq's options, unless pooler is
    // pgbouncer. 0 = not sent (the server's setting applies). libpq's options
    // replace PGOPTIONS: set 0 to keep PGOPTIONS.
    std::chrono::milliseconds statement_timeout = 30s;
    // A statement that takes this long or longer is a slow_query event to
    // pool.listener (its text, never its parameters). 0 = no such events.
    std::chrono::milliseconds slow_query_threshold = 1s;
    bool ssl = false;  // true: sslmode=require; false: not sent (PGSSLMODE, else "prefer")
    std::string target_session_attrs;  // e.g. "read-write" with several hosts; "" = any
    // More libpq keywords, sent in this order after the fields above (a later
    // duplicate wins): URL query parameters without a field of their own, such
    // as sslmode=verify-full or sslrootcert. An "sslmode" here wins over `ssl`;
    // an "options" here gets statement_timeout's -c in front (so its own wins).
    std::vector<std::pair<std::string, std::string>> options;
    Pooler pooler = Pooler::none;

    // Sizes and timeouts. pool.connect_timeout is also sent to libpq as
    // connect_timeout (whole seconds, rounded up).
    PoolOptions pool;

    // Reads these variables (all optional; a value that is set must be valid):
    //   DATABASE_URL                 a URL as from_url takes; its parts win over DB_*
    //   DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, DB_APPLICATION_NAME
    //   DB_POOL_MIN, DB_POOL_MAX     0..10000, 1..10000
    //   DB_IDLE_TIMEOUT_MS (alias DB_POOL_IDLE_MS), DB_CONNECTION_TIMEOUT_MS (alias
    //   DB_POOL_CONN_TIMEOUT_MS), DB_ACQUIRE_TIMEOUT_MS, DB_STATEMENT_TIMEOUT_MS,
    //   DB_SLOW_QUERY_MS
    //   DB_SSL (alias DATABASE_SSL)  true/false/1/0/yes/no/on/off, in any case
    //   DB_POOLER                    none | pgbouncer
    //   DB_PROFILE                   development | staging | production (see detail::profiles)
    static Config from_env();
    // The same with an injected lookup (nullptr = unset), for tests.
    static Config from_env(const std::function<const char*(const char*)>& lookup);
    // A postgresql:// or postgres:// URI as libpq documents it: user, password,
    // hosts (IPv6 in brackets, "h1:1,h2:2" lists), dbname, ?key=value parameters.
    static Config from_url(std::string_view url);

    // Keyword/value pairs for PQconnectStartParams: only what is set.
    std::vector<std::pair<std::string, std::string>> keywords() const;
    // A postgresql:// URL of what keywords() sends, passwords shown as ***. from_url parses it.
    std::string redacted_url() const;
    // Throws ConfigError for a bad port list or statement_timeout, then runs pool.validate().
    void validate() const;
};

// Hides passwords in text holding URLs (user:password@, ?password=), libpq
// conninfo pairs (password='...'), or both, e.g. a libpq error message. When in
// doubt it hides too much: a malformed URL's password runs to its last '@'.
inline std::string redact(std::string_view text);

namespace detail {

inline constexpr auto npos = std::string_view::npos;

// DB_PROFILE's recommended values. An explicit DB_POOL_MIN or DB_POOL_MAX wins
// over the profile's (or the default) other bound: DB_POOL_MAX=3 alone lowers
// min to 3. Both set with min > max is an error.
struct Profile {
    std::size_t min_size, max_size;
    std::chrono::milliseconds idle_timeout, acquire_timeout, statement_timeout;
};
inline constexpr std::pair<std::string_view, Profile> profiles[] = {
    //              min  max  idle  acquire  statement_timeout
    {"development", {1,   5,  30s,  5s,      60s}},
    {"staging",     {2,  10,  30s,  5s,      30s}},
    {"production",  {5,  20,  30s,  5s,      30s}},
};  // no profile: the defaults, min 2, max 20, idle 30s, acquire 5s, statement 30s

inline constexpr std::pair<std::string_view, bool> bool_words[] = {
    {"true", true}, {"false", false}, {"1", true}, {"0", false},
    {"yes", true},  {"no", false},    {"on", true}, {"off", false}};
inline constexpr std::pair<std::string_view, Pooler> pooler_words[] = {
    {"none", Pooler::none}, {"pgbouncer", Pooler::pgbouncer}};

// PostgreSQL's limit for statement_timeout; it also keeps every deadline far from overflow.
inline constexpr long long max_ms = 2147483647;

[[noreturn]] inline void bad_value(std::string_view name, std::string_view shown, std::string_view why) {
    throw ConfigError("reservoir: " + std::string(name) + " = \"" + std::string(shown) + "\": " +
                      std::string(why));
}

inline char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }
inline bool iequals(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](char x, char y) { return lower(x) == lower(y); });
}
inline bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

inline std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    for (std::size_t start = 0;;) {
        const auto end = s.find(sep, start);
        parts.push_back(s.substr(start, end - start));
        if (end == npos) return parts;
        start = end + 1;
    }
}

// The integer that is all of `text`, if it is within [lo, hi].
inline std::optional<long long> whole_in(std::string_view text, long long lo, long long hi) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return std::nullopt;
    return v;
}

// As whole_in, or throws: "", "12x", " 1", "+1" are not whole numbers.
inline long long parse_whole(std::string_view name, std::string_view text, long long lo, long long hi) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::invalid_argument || end != text.data() + text.size())
        bad_value(name, text, "not a whole number");
    if (ec == std::errc::result_out_of_range || v < lo || v > hi)
        bad_value(name, text, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
}

inline bool is_port(std::string_view s) { return whole_in(s, 1, 65535).has_value(); }
// One port per host; an empty entry means libpq's default port.
inline bool is_port_list(std::string_view s) {
    const auto ports = split(s, ',');
    return std::all_of(ports.begin(), ports.end(), [](auto p) { return p.empty() || is_port(p); });
}

template <class T, std::size_t N>
T pick(std::string_view name, std::string_view value, const std::pair<std::string_view, T> (&words)[N]) {
    std::string choices;
    for (const auto& [word, result] : words) {
        if (iequals(word, value)) return result;
        choices += (choices.empty() ? "" : ", ") + std::string(word);
    }
    bad_value(name, value, "must be one of " + choices);
}

inline int hex(char c) {
    c = lower(c);
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}
// Strict: nullopt for a malformed escape or %00 (libpq takes C strings).
// Lenient (matching redact's keys): a malformed escape stays as it is.
inline std::optional<std::string> percent_decode(std::string_view s, bool strict = true) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const int hi = s[i] == '%' && i + 2 < s.size() ? hex(s[i + 1]) : -1;
        const int lo = hi >= 0 ? hex(s[i + 2]) : -1;
        if (s[i] == '%' && (lo < 0 || hi * 16 + lo == 0)) {
            if (strict) return std::nullopt;
            out += '%';
        } else if (s[i] == '%') {
            out += char(hi * 16 + lo);
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}
inline std::string percent_encode(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
            c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += "0123456789ABCDEF"[static_cast<unsigned char>(c) >> 4];
            out += "0123456789ABCDEF"[static_cast<unsigned char>(c) & 15];
        }
    }
    return out;
}

// password, sslpassword, and any key spelled in another case or %-encoded.
inline bool is_secret_key(std::string_view key) {
    const auto name = *percent_decode(key, false);
    return name.size() >= 8 && iequals(std::string_view(name).substr(name.size() - 8), "password");
}

using Span = std::pair<std::size_t, std::size_t>;  // [begin, end) of text to hide

// user:PASSWORD@ after every "://". Without an '@' in the authority the
// password may hold a raw '/' or '?': then it runs to the text's last '@'.
inline void url_password_spans(std::string_view text, std::vector<Span>& hide) {
    const auto last_at = text.rfind('@');
    for (auto scheme = text.find("://"); scheme != npos; scheme = text.find("://", scheme + 3)) {
        const auto start = scheme + 3;
        const auto authority = text.substr(start, text.find_first_of("/?", start) - start);
        const auto at = authority.find('@') != npos ? start + authority.rfind('@') : last_at;
        const auto colon = text.find(':', start);
        if (at != npos && at >= start && colon < at) hide.push_back({colon + 1, at});
    }
}

// The value after every "...password =": in a URL query up to the next '&';
// in conninfo up to white space outside quotes, honouring backslash escapes.
inline void keyword_password_spans(std::string_view text, std::vector<Span>& hide) {
    const auto ends_key = [](char c) {
        return is_space(c) || c == '?' || c == '&' || c == '=' || c == '\'' || c == '"';
    };
    for (auto eq = text.find('='); eq != npos; eq = text.find('=', eq + 1)) {
        auto key_end = eq;
        while (key_end > 0 && is_space(text[key_end - 1])) --key_end;
        auto key_begin = key_end;
        while (key_begin > 0 && !ends_key(text[key_begin - 1])) --key_begin;
        if (!is_secret_key(text.substr(key_begin, key_end - key_begin))) continue;
        auto end = eq + 1;
        if (key_begin > 0 && (text[key_begin - 1] == '?' || text[key_begin - 1] == '&')) {
            end = std::min(text.find('&', end), text.size());
        } else {
            while (end < text.size() && is_space(text[end])) ++end;
            for (bool quoted = false; end < text.size() && (quoted || !is_space(text[end])); ++end) {
                if (text[end] == '\\') ++end;
                else if (text[end] == '\'') quoted = !quoted;
            }
            end = std::min(end, text.size());
        }
        hide.push_back({eq + 1, end});
        eq = end;
    }
}

// Sets the fields the URL has; the message of any error shows it redacted.
inline void apply_url(Config& c, std::string_view url, std::string_view name) {
    const auto scheme_end = url.find("://");
    const auto scheme = url.substr(0, scheme_end);
    const bool scheme_ok = scheme_end != npos && (scheme == "postgresql" || scheme == "postgres");
    // After a bad scheme the text is redacted as an authority, so that "user:pw@host" is hidden too.
    const auto fail = [&](std::string_view why) {
        bad_value(name, scheme_ok ? redact(url) : redact("://" + std::string(url)).substr(3), why);
    };
    const auto decode = [&](std::string_view s, std::string_view part) {
        auto d = percent_decode(s);
        if (!d) fail("bad percent-encoding in the " + std::string(part));
        return std::move(*d);
    };
    const auto set_if = [](std::string& field, std::string value) {
        if (!value.empty()) field = std::move(value);
    };
    if (!scheme_ok) fail("must start with postgresql:// or postgres://");

    auto rest = url.substr(scheme_end + 3);
    auto authority = rest.substr(0, rest.find_first_of("/?"));
    rest.remove_prefix(authority.size());
    // user:password@ ends at the last '@': a host never holds one, a password may.
    if (const auto at = authority.rfind('@'); at != npos) {
        const auto userinfo = authority.substr(0, at), user = userinfo.substr(0, userinfo.find(':'));
        set_if(c.user, decode(user, "user name"));
        if (user.size() < userinfo.size())
            set_if(c.password, decode(userinfo.substr(user.size() + 1), "password"));
        authority.remove_prefix(at + 1);
    }
    if (!authority.empty()) {
        std::string hosts, ports;
        bool any_port = false;
        const auto entries = split(authority, ',');  // brackets never hold a comma
        for (std::size_t i = 0; i < entries.size(); ++i) {
            const auto entry = entries[i];
            const bool bracketed = entry.starts_with('[');  // an IPv6 address
            const auto close = bracketed ? entry.find(']') : 0;
            if (close == npos) fail("unclosed '[' in the host");
            const auto colon = entry.find(':', close);
            auto host = entry.substr(0, colon);
            if (bracketed && host.size() != close + 1) fail("unexpected text after ']' in the host");
            if (bracketed) host = host.substr(1, close - 1);
            const auto port = colon == npos ? std::string_view() : entry.substr(colon + 1);
            if (colon != npos && !is_port(port)) fail("a port must be a number from 1 to 65535");
            if (host.empty() && colon != npos) fail("a port needs a host");
            if (host.empty() && entries.size() > 1) fail("empty host in the host list");
            hosts += (i ? "," : "") + decode(host, "host");
            ports += (i ? "," : "") + std::string(port);
            any_port = any_port || !port.empty();
        }
        set_if(c.host, std::move(hosts));
        if (any_port) c.port = std::move(ports);
    }
    if (rest.starts_with('/')) set_if(c.dbname, decode(rest.substr(1, rest.find('?') - 1), "database name"));
    if (const auto q = rest.find('?'); q != npos) {
        for (const auto param : split(rest.substr(q + 1), '&')) {
            if (param.empty()) continue;
            const auto eq = param.find('=');
            if (eq == 0 || eq == npos) fail("a query parameter is not key=value");
            const auto key = decode(param.substr(0, eq), "query");
            auto value = decode(param.substr(eq + 1), "query");
            if (key == "host") set_if(c.host, std::move(value));
            else if (key == "dbname") set_if(c.dbname, std::move(value));
            else if (key == "user") set_if(c.user, std::move(value));
            else if (key == "password") set_if(c.password, std::move(value));
            else if (key == "application_name") set_if(c.application_name, std::move(value));
            else if (key == "target_session_attrs") set_if(c.target_session_attrs, std::move(value));
            else if (key == "sslmode" && value == "require") c.ssl = true;
            else if (key == "port") {
                if (value.empty() || !is_port_list(value)) fail("a port must be a number from 1 to 65535");
                c.port = std::move(value);
            } else if (key == "connect_timeout") {
                const auto seconds = whole_in(value, 1, max_ms / 1000);
                if (!seconds) fail("connect_timeout must be whole seconds, at least 1");
                c.pool.connect_timeout = std::chrono::seconds(*seconds);
            } else {
                c.options.emplace_back(key, std::move(value));
            }
        }
    }
}

}  // namespace detail

inline std::string redact(std::string_view text) {
    std::vector<detail::Span> hide;
    detail::url_password_spans(text, hide);
    detail::keyword_password_spans(text, hide);
    std::sort(hide.begin(), hide.end());
    std::string out;
    std::size_t copied = 0;
    for (std::size_t i = 0; i < hide.size(); ++i) {
        auto [begin, end] = hide[i];
        while (i + 1 < hide.size() && hide[i + 1].first <= end) end = std::max(end, hide[++i].second);
        out.append(text.substr(copied, begin - copied)).append("***");
        copied = end;
    }
    return out.append(text.substr(copied));
}

inline Config Config::from_url(std::string_view url) {
    Config c;
    detail::apply_url(c, url, "connection URL");
    c.url = url;
    c.validate();
    return c;
}

inline Config Config::from_env() {
    return from_env([](const char* name) -> const char* { return std::getenv(name); });
}

inline Config Config::from_env(const std::function<const char*(const char*)>& lookup) {
    using namespace detail;
    struct Var {
        const char* name;
        std::string value;
    };
    const auto read = [&](const char* primary, const char* alias = nullptr) -> std::optional<Var> {
        for (const char* name : {primary, alias})
            if (const char* value = name ? lookup(name) : nullptr) return Var{name, value};
        return std::nullopt;
    };
    const auto text = [&](const char* name, std::string& field) {
        if (auto v = read(name)) field = std::move(v->value);
    };
    const auto millis = [&](const char* name, const char* alias, long long lo,
                            std::chrono::milliseconds& field) {
        if (auto v = read(name, alias))
            field = std::chrono::milliseconds(parse_whole(v->name, v->value, lo, max_ms));
    };
    const auto size = [&](const char* name, long long lo) -> std::optional<std::size_t> {
        if (auto v = read(name)) return parse_whole(v->name, v->value, lo, reservoir::detail::max_pool_size);
        return std::nullopt;
    };

    Config c;
    if (auto v = read("DB_PROFILE")) {
        const Profile p = pick(v->name, v->value, profiles);
        c.pool.min_size = p.min_size;
        c.pool.max_size = p.max_size;
        c.pool.idle_timeout = p.idle_timeout;
        c.pool.acquire_timeout = p.acquire_timeout;
        c.statement_timeout = p.statement_timeout;
    }
    text("DB_HOST", c.host);
    if (auto v = read("DB_PORT")) {
        if (v->value.empty() || !is_port_list(v->value))
            bad_value(v->name, v->value, "must be a port number from 1 to 65535, or a comma list of them");
        c.port = std::move(v->value);
    }
    text("DB_NAME", c.dbname);
    text("DB_USER", c.user);
    text("DB_PASSWORD", c.password);
    text("DB_APPLICATION_NAME", c.application_name);
    if (auto v = read("DB_SSL", "DATABASE_SSL")) c.ssl = pick(v->name, v->value, bool_words);
    if (auto v = read("DB_POOLER")) c.pooler = pick(v->name, v->value, pooler_words);
    millis("DB_IDLE_TIMEOUT_MS", "DB_POOL_IDLE_MS", 0, c.pool.idle_timeout);
    millis("DB_CONNECTION_TIMEOUT_MS", "DB_POOL_CONN_TIMEOUT_MS", 1, c.pool.connect_timeout);
    millis("DB_ACQUIRE_TIMEOUT_MS", nullptr, 0, c.pool.acquire_timeout);
    millis("DB_STATEMENT_TIMEOUT_MS", nullptr, 0, c.statement_timeout);
    millis("DB_SLOW_QUERY_MS", nullptr, 0, c.slow_query_threshold);

    const auto min = size("DB_POOL_MIN", 0), max = size("DB_POOL_MAX", 1);
    c.pool.min_size = min.value_or(c.pool.min_size);
    c.pool.max_size = max.value_or(c.pool.max_size);
    if (c.pool.min_size > c.pool.max_size) {
        if (min && max)
            throw ConfigError("reservoir: DB_POOL_MIN (" + std::to_string(*min) + ") exceeds DB_POOL_MAX (" +
                              std::to_string(*max) + ")");
        if (min) c.pool.max_size = *min;  // the explicit one wins, the other follows it
        else c.pool.min_size = *max;
    }

    if (auto v = read("DATABASE_URL")) {
        apply_url(c, v->value, v->name);
        c.url = std::move(v->value);
    }
    c.validate();
    return c;
}

inline std::vector<std::pair<std::string, std::string>> Config::keywords() const {
    std::vector<std::pair<std::string, std::string>> kw;
    const auto add = [&](const char* key, std::string value) {
        if (!value.empty()) kw.emplace_back(key, std::move(value));
    };
    const bool own_sslmode =
        std::any_of(options.begin(), options.end(), [](const auto& o) { return o.first == "sslmode"; });
    add("host", host);
    add("port", port);
    add("dbname", dbname);
    add("user", user);
    add("password", password);
    add(application_name == default_application_name ? "fallback_application_name" : "application_name",
        application_name);
    if (ssl && !own_sslmode) add("sslmode", "require");
    add("target_session_attrs", target_session_attrs);
    if (const auto seconds = std::chrono::ceil<std::chrono::seconds>(pool.connect_timeout); seconds.count() > 0)
        add("connect_timeout", std::to_string(seconds.count()));
    // PgBouncer refuses startup parameters it does not know, "options" included.
    std::string startup;
    if (statement_timeout.count() > 0 && pooler != Pooler::pgbouncer)
        startup = "-c statement_timeout=" + std::to_string(statement_timeout.count());
    for (const auto& [key, value] : options) {
        if (key == "options" && !startup.empty())
            kw.emplace_back(key, std::exchange(startup, {}) + " " + value);
        else
            kw.emplace_back(key, value);
    }
    add("options", std::move(startup));
    return kw;
}

inline std::string Config::redacted_url() const {
    using detail::percent_encode;
    std::string query;  // "&key=value" for each keyword that is not in the authority or the path
    for (const auto& [key, value] : keywords()) {
        if (key == "host" || key == "port" || key == "user" || key == "password" || key == "dbname") continue;
        query += "&" + percent_encode(key) + "=" + (detail::is_secret_key(key) ? "***" : percent_encode(value));
    }
    std::string out = "postgresql://" + percent_encode(user) + (password.empty() ? "" : ":***");
    if (!user.empty() || !password.empty()) out += '@';
    const auto hosts = detail::split(host, ','), ports = detail::split(port, ',');
    if (std::find(hosts.begin(), hosts.end(), "") != hosts.end()) {
        // No host, "h1,,h2", or a port without a host: only query parameters can say that.
        if (!host.empty()) query += "&host=" + percent_encode(host);
        if (!port.empty()) query += "&port=" + port;
    } else {
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            const auto h = hosts[i];
            const auto p = ports.size() == 1 ? ports[0] : i < ports.size() ? ports[i] : "";
            const bool ipv6 = h.find(':') != h.npos && h.find_first_not_of("0123456789abcdefABCDEF:.") == h.npos;
            out += (i ? "," : "") + (ipv6 ? "[" + std::string(h) + "]" : percent_encode(h));
            if (!p.empty()) out += ":" + std::string(p);
        }
    }
    if (!dbname.empty()) out += "/" + percent_encode(dbname);
    return query.empty() ? out : out + "?" + query.substr(1);
}

inline void Config::validate() const {
    const auto bad = [](std::string_view field, std::string_view value, std::string_view why) {
        detail::bad_value("connection option " + std::string(field), value, why);
    };
    if (!port.empty() && !detail::is_port_list(port)) bad("port", port, "must be port numbers from 1 to 65535");
    const auto hosts = detail::split(host, ',').size(), ports = detail::split(port, ',').size();
    if (ports > 1 && ports != hosts)
        bad("port", port,
            std::to_string(ports) + " ports for " + std::to_string(hosts) + " hosts (\"" + host + "\")");
    if (const auto ms = statement_timeout.count(); ms < 0 || ms > detail::max_ms)
        bad("statement_timeout", std::to_string(ms) + "ms", "must be between 0 and 2147483647");
    if (const auto ms = slow_query_threshold.count(); ms < 0)
        bad("slow_query_threshold", std::to_string(ms) + "ms", "must not be negative");
    for (const auto& [key, value] : keywords())  // libpq takes C strings: a NUL would cut a value short
        if (key.find('\0') != key.npos || value.find('\0') != value.npos) bad(key, "...", "holds a NUL byte");
    pool.validate();
}

}  // namespace reservoir::pg
