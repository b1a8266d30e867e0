#pragma once
// reservoir::pg::Config: where and how to reach PostgreSQL, plus the pool's
// options. Read it from the environment (from_env), from a postgresql:// URL
// or key=value connection string (from_url, read as libpq reads it), or fill
// it in by hand. Pure configuration, no libpq: the driver passes keywords()
// to PQconnectStartParams.
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

    // Reads these variables (all optional; an empty one is unset; a value that
    // is set must be valid):
    //   DATABASE_URL                 a URL or key=value string as from_url takes; its parts win over DB_*
    //   DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, DB_APPLICATION_NAME
    //   DB_POOL_MIN, DB_POOL_MAX     0..10000, 1..10000
    //   DB_POOL_CAPACITY             0..10000, at least the max: how far Pool::resize may raise max (0 = max)
    //   DB_IDLE_TIMEOUT_MS (alias DB_POOL_IDLE_MS), DB_CONNECTION_TIMEOUT_MS (alias
    //   DB_POOL_CONN_TIMEOUT_MS), DB_ACQUIRE_TIMEOUT_MS, DB_STATEMENT_TIMEOUT_MS,
    //   DB_SLOW_QUERY_MS
    //   DB_SSL (alias DATABASE_SSL)  true/false/1/0/yes/no/on/off, in any case
    //   DB_POOLER                    none | pgbouncer
    //   DB_PROFILE                   development | staging | production (see detail::profiles)
    static Config from_env();
    // The same with an injected lookup (nullptr = unset), for tests.
    static Config from_env(const std::function<const char*(const char*)>& lookup);
    // A connection string as libpq's PQconninfoParse reads it: a postgresql://
    // or postgres:// URI (user, password, hosts with IPv6 in brackets and
    // "h1:1,h2:2" lists, dbname, ?key=value parameters), or "key=value ..."
    // pairs. A key libpq does not know, or a value it would refuse when it
    // connects (a port, sslmode, ...), is an error here. Where Config differs
    // from libpq (a raw '@' after the host is rejected, an empty value unsets,
    // connect_timeout <= 0): docs/configuration.md.
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
// doubt it hides too much: a URL's password runs to its last '@'.
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

// The integer that is all of `text`, within [lo, hi], or throws: "", "12x", " 1", "+1" are not whole numbers.
inline long long parse_whole(std::string_view name, std::string_view text, long long lo, long long hi) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::invalid_argument || end != text.data() + text.size())
        bad_value(name, text, "not a whole number");
    if (ec == std::errc::result_out_of_range || v < lo || v > hi)
        bad_value(name, text, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
}

// An int as libpq's parse_int_param reads one: white space around it, a sign.
inline std::optional<long long> libpq_int(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    if (s.starts_with('+')) s.remove_prefix(1);  // strtol takes a '+', from_chars does not
    int v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end == s.data()) return std::nullopt;
    for (const char* p = end; p != s.data() + s.size(); ++p)
        if (!is_space(*p)) return std::nullopt;
    return v;
}

// A port as libpq reads one (" 5432" too).
inline bool is_port(std::string_view s) {
    const auto port = libpq_int(s);
    return port && *port >= 1 && *port <= 65535;
}
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

// password, sslpassword, oauth_client_secret, scram_client_key and the like,
// and any such key spelled in another case or %-encoded.
inline bool is_secret_key(std::string_view key) {
    const auto name = *percent_decode(key, false);
    const auto ends = [&](std::string_view tail) {
        return name.size() >= tail.size() && iequals(std::string_view(name).substr(name.size() - tail.size()), tail);
    };
    return ends("password") || ends("secret") || (ends("_key") && iequals(name.substr(0, 6), "scram_"));
}

using Span = std::pair<std::size_t, std::size_t>;  // [begin, end) of text to hide

// user:PASSWORD@ after every "://". A password may hold a raw '/', '?', '@'
// or even "://" (libpq then reads the URL otherwise, and Config rejects it):
// so the password runs to the last '@' of the text.
inline void url_password_spans(std::string_view text, std::vector<Span>& hide) {
    const auto at = text.rfind('@');
    for (auto scheme = text.find("://"); scheme != npos; scheme = text.find("://", scheme + 3)) {
        const auto start = scheme + 3;
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

// libpq's connection keywords, libpq 15's and those added up to 18 (a libpq
// older than the keyword rejects it when connecting). A key outside this
// list is an error at parse time, as PQconninfoParse makes it.
inline constexpr std::string_view libpq_keywords[] = {
    "service", "user", "password", "passfile", "channel_binding", "connect_timeout", "dbname", "host",
    "hostaddr", "port", "client_encoding", "options", "application_name", "fallback_application_name",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "sslmode",
    "sslcompression", "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir", "sslsni",
    "requirepeer", "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode", "krbsrvname",
    "gsslib", "replication", "target_session_attrs",
    // libpq 16
    "require_auth", "sslcertmode", "load_balance_hosts", "gssdelegation",
    // libpq 17
    "sslnegotiation",
    // libpq 18
    "min_protocol_version", "max_protocol_version", "sslkeylogfile", "scram_client_key", "scram_server_key",
    "oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope"};

// Values libpq checks only when it connects (so a bad one would fail every
// connect): checked here at parse time, the way libpq checks them.
inline constexpr std::pair<std::string_view, std::string_view> libpq_choices[] = {
    {"sslmode", "disable allow prefer require verify-ca verify-full"},
    {"gssencmode", "disable prefer require"},
    {"channel_binding", "disable prefer require"},
    {"target_session_attrs", "any read-write read-only primary standby prefer-standby"},
    {"ssl_min_protocol_version", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"},
    {"ssl_max_protocol_version", "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"},
    {"load_balance_hosts", "disable random"},
    {"sslcertmode", "disable allow require"},
    {"sslnegotiation", "postgres direct"},
};
inline constexpr std::string_view libpq_integers[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                                      "keepalives_interval", "keepalives_count",
                                                      "tcp_user_timeout"};

inline bool one_of(std::string_view word, std::string_view words) {
    const auto list = split(words, ' ');
    return std::find(list.begin(), list.end(), word) != list.end();
}

// text[0, stop) with each span in `hide` (which may overlap or be empty) as "***".
inline std::string hidden(std::string_view text, std::vector<Span> hide, std::size_t stop) {
    std::sort(hide.begin(), hide.end());
    std::string out;
    std::size_t copied = 0;
    const auto shows = [&](const Span& s) { return s.first < stop || (s.first == stop && stop == text.size()); };
    for (std::size_t i = 0; i < hide.size() && shows(hide[i]); ++i) {
        auto [begin, end] = hide[i];
        while (i + 1 < hide.size() && hide[i + 1].first <= end) end = std::max(end, hide[++i].second);
        if (begin < copied) begin = copied;
        out.append(text.substr(copied, begin - copied)).append("***");
        copied = std::min(std::max(end, copied), stop);
    }
    return copied < stop ? out.append(text.substr(copied, stop - copied)) : out;
}

// A connection string read the way libpq's PQconninfoParse reads it: a URI
// when it starts with postgresql:// or postgres://, key=value pairs otherwise.
// It keeps where each value was, so that an error can show the text up to its
// cause with the passwords hidden, and nothing that may be part of one.
class ConnString {
public:
    struct Param {
        std::string key, value;
        std::size_t end;  // where the value's text ends in the input
    };

    ConnString(std::string_view text, std::string_view name) : text_(text), name_(name) {
        scheme_ = text.starts_with("postgresql://") ? 13 : text.starts_with("postgres://") ? 11 : 0;
        if (text.find('\0') != npos) {
            ambiguous_ = true;  // what libpq would see ends there: show nothing of it
            fail("holds a NUL byte", 0);
        }
        if (scheme_) parse_uri();
        else parse_pairs();
        // libpq uses a key's last value: check that one, as libpq checks it when it connects.
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const auto& p = params_[i];
            const bool last = std::none_of(params_.begin() + std::ptrdiff_t(i) + 1, params_.end(),
                                           [&](const Param& later) { return later.key == p.key; });
            if (last && !p.value.empty()) check(p);
        }
    }

    const std::vector<Param>& params() const noexcept { return params_; }

    // Throws ConfigError showing the text up to `end`, passwords hidden.
    [[noreturn]] void fail(std::string_view why, std::size_t end) const { bad_value(name_, shown(end), why); }

private:
    std::string shown(std::size_t end) const {
        if (ambiguous_) return std::string(text_.substr(0, scheme_)) + "...";
        const auto stop = std::min({end, doubt_, text_.size()});
        // Besides the passwords found so far, all that redact() would hide in
        // the whole text, so that a cut cannot leave a password's start: text
        // that is no URI here may still be one to its author ("u:pw@h").
        auto hide = secrets_;
        const std::string whole = scheme_ ? std::string(text_) : "://" + std::string(text_);
        const std::size_t shift = scheme_ ? 0 : 3;
        std::vector<Span> more;
        url_password_spans(whole, more);
        keyword_password_spans(whole, more);
        for (const auto& [begin, finish] : more)
            if (finish > shift) hide.push_back({std::max(begin, shift) - shift, finish - shift});
        auto out = hidden(text_, std::move(hide), stop);
        if (stop < text_.size()) out += stop == doubt_ ? "***..." : "...";
        return out;
    }

    // A key (found before any password whose end is unsure) is named only
    // when it is spelled as libpq's keys are: "u:pw" is no key to show.
    static std::string key_name(std::string_view key) {
        const bool plain = key.size() <= 32 && std::all_of(key.begin(), key.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        });
        return plain ? " \"" + std::string(key) + "\"" : "";
    }

    void secret(std::size_t begin, std::size_t end) { secrets_.push_back({begin, end}); }

    std::string decode(std::size_t begin, std::size_t end, std::string_view part) const {
        auto d = percent_decode(text_.substr(begin, end - begin));
        if (!d) fail("bad percent-encoding in the " + std::string(part), end);
        return std::move(*d);
    }

    void store(std::string key, std::string value, std::size_t at, std::size_t end) {
        if (key == "requiressl") {  // libpq's old spelling
            key = "sslmode";
            value = value.starts_with('1') ? "require" : "prefer";
        }
        if (std::find(std::begin(libpq_keywords), std::end(libpq_keywords), key) != std::end(libpq_keywords)) {
            params_.push_back({std::move(key), std::move(value), end});
            return;
        }
        if (at < doubt_) fail("unknown connection parameter" + key_name(key) + " (libpq rejects it)", end);
        fail(std::string("unknown connection parameter after a password; if it is a part of the password, ") +
                 (scheme_ ? "percent-encode the password" : "quote the password, with \\' and \\\\ for ' and \\"),
             end);
    }

    // The checks libpq makes on its first connect; their values hold no password.
    void check(const Param& p) const {
        const auto& key = p.key;
        if (key == "port" && !is_port_list(p.value))
            fail("a port must be a number from 1 to 65535 (a comma list: one per host)", p.end);
        if (std::find(std::begin(libpq_integers), std::end(libpq_integers), key) != std::end(libpq_integers) &&
            !libpq_int(p.value))
            fail(key + " must be a whole number", p.end);
        if (key == "connect_timeout" && *libpq_int(p.value) > max_ms / 1000)
            fail("connect_timeout must be at most " + std::to_string(max_ms / 1000) + " seconds", p.end);
        for (const auto& [name, words] : libpq_choices)
            if (key == name && !one_of(p.value, words))
                fail(key + " must be one of " + std::string(words), p.end);
    }

    // libpq's conninfo_uri_parse_options, step by step.
    void parse_uri() {
        const auto t = text_;
        const auto n = t.size();
        const auto at = [&](std::size_t p) { return p < n ? t[p] : '\0'; };
        const auto until = [&](std::size_t p, std::string_view stops) {
            while (p < n && stops.find(t[p]) == npos) ++p;
            return p;
        };
        // user[:password]@ ends at the first '@' before any '/'.
        auto p = until(scheme_, "@/");
        const bool userinfo = at(p) == '@';
        p = userinfo ? p + 1 : scheme_;
        // A raw '@' after that is almost always a password's: with a raw '/'
        // before it ("u:a/b@h" is host "u", dbname "b@h" to libpq), or an '@'
        // of its own. No reading of it is safe to use or to show.
        if (t.find('@', p) != npos) {
            ambiguous_ = true;
            fail("holds a raw '@' after the host part (a password's '/' or '@' not percent-encoded?); encode "
                 "'@' as %40 and '/' as %2F",
                 0);
        }
        if (userinfo) {
            const auto end = p - 1, colon = std::min(t.find(':', scheme_), end);
            if (colon < end) secret(colon + 1, end);
            if (colon > scheme_) store("user", decode(scheme_, colon, "user name"), scheme_, colon);
            if (colon + 1 < end) store("password", decode(colon + 1, end, "password"), colon + 1, end);
        }
        // host[:port] pairs, comma separated; an IPv6 address in brackets.
        const auto netloc = p;
        std::string hosts, ports;
        char stop = '\0';
        for (;;) {
            if (at(p) == '[') {
                const auto close = until(p + 1, "]");
                if (close == n) fail("unclosed '[' in the host", n);
                if (close == p + 1) fail("empty IPv6 address in '[]'", close + 1);
                hosts.append(t.substr(p + 1, close - p - 1));
                p = close + 1;
                if (at(p) && std::string_view(":/?,").find(at(p)) == npos)
                    fail("unexpected text after ']' in the host", p + 1);
            } else {
                const auto end = until(p, ":/?,");
                hosts.append(t.substr(p, end - p));
                p = end;
            }
            stop = at(p);
            if (stop == ':') {
                const auto end = until(p + 1, "/?,");
                ports.append(t.substr(p + 1, end - p - 1));
                p = end;
                stop = at(p);
            }
            if (stop != ',') break;
            ++p;
            hosts += ',';
            ports += ',';
        }
        const auto decoded = [&](const std::string& raw, std::string_view part) {
            auto d = percent_decode(raw);
            if (!d) fail("bad percent-encoding in the " + std::string(part), p);
            return std::move(*d);
        };
        if (!hosts.empty()) store("host", decoded(hosts, "host"), netloc, p);
        if (!ports.empty()) store("port", decoded(ports, "port"), netloc, p);
        if (stop == '/') {
            const auto begin = p + 1;
            p = until(begin, "?");
            if (p > begin) store("dbname", decode(begin, p, "database name"), begin, p);
            stop = at(p);
        }
        if (stop == '?') parse_query(p + 1);
    }

    // libpq's conninfo_uri_parse_params: key=value&..., a trailing '&' allowed.
    void parse_query(std::size_t p) {
        const auto t = text_;
        while (p < t.size()) {
            const auto begin = p;
            auto eq = npos;
            for (; p < t.size() && t[p] != '&'; ++p) {
                if (t[p] != '=') continue;
                if (eq != npos) fail("a query parameter has a second '='", p + 1);
                eq = p;
                if (is_secret_key(t.substr(begin, eq - begin))) doubt_ = std::min(doubt_, eq + 1);
            }
            const auto end = p;
            if (p < t.size()) ++p;
            if (eq == npos) fail("a query parameter is not key=value", end);
            if (is_secret_key(t.substr(begin, eq - begin))) secret(eq + 1, end);
            auto key = decode(begin, eq, "query parameter's name");
            auto value = decode(eq + 1, end, "query parameter's value");
            if (key == "ssl" && value == "true") {  // libpq's nod to JDBC URLs
                key = "sslmode";
                value = "require";
            }
            store(std::move(key), std::move(value), begin, end);
        }
    }

    // libpq's conninfo_parse: key = value, a value in '...' or with \-escapes.
    void parse_pairs() {
        const auto t = text_;
        const auto n = t.size();
        std::size_t p = 0;
        while (p < n) {
            if (is_space(t[p])) {
                ++p;
                continue;
            }
            const auto begin = p;
            while (p < n && t[p] != '=' && !is_space(t[p])) ++p;
            const std::string key(t.substr(begin, p - begin));
            while (p < n && is_space(t[p])) ++p;
            if (p == n || t[p] != '=')
                fail("must be a postgresql:// or postgres:// URL, or key=value pairs", p);
            ++p;
            while (p < n && is_space(t[p])) ++p;
            const auto value_begin = p;
            const bool hidden = is_secret_key(key);
            if (hidden) doubt_ = std::min(doubt_, value_begin);
            std::string value;
            if (p < n && t[p] == '\'') {
                for (++p;; ++p) {
                    if (p == n) fail("a quoted value has no closing quote", n);
                    if (t[p] == '\\' && p + 1 < n) value += t[++p];
                    else if (t[p] == '\'') break;
                    else if (t[p] != '\\') value += t[p];
                }
                ++p;
            } else {
                for (; p < n && !is_space(t[p]); ++p) {
                    if (t[p] == '\\' && p + 1 < n) value += t[++p];
                    else if (t[p] != '\\') value += t[p];
                }
            }
            if (hidden) secret(value_begin, p);
            store(key, std::move(value), begin, p);
        }
    }

    std::string_view text_, name_;
    std::size_t scheme_ = 0;     // the length of postgresql:// or postgres://; 0: key=value pairs
    bool ambiguous_ = false;     // show nothing past the scheme
    std::size_t doubt_ = npos;   // a password in a query or a pair starts here: where it ends is unsure
    std::vector<Span> secrets_;  // in order
    std::vector<Param> params_;
};

// Sets what the connection string has, as libpq would use it. An empty value
// unsets (and a later value of a key wins, as in libpq).
inline void apply_conninfo(Config& c, std::string_view text, std::string_view name) {
    const ConnString parsed(text, name);
    const auto connect_timeout = c.pool.connect_timeout;
    for (const auto& p : parsed.params()) {
        const auto& key = p.key;
        const auto& value = p.value;
        if (key == "host") c.host = value;
        else if (key == "port") c.port = value;
        else if (key == "dbname") c.dbname = value;
        else if (key == "user") c.user = value;
        else if (key == "password") c.password = value;
        else if (key == "application_name")
            c.application_name = value.empty() ? std::string(Config::default_application_name) : value;
        else if (key == "target_session_attrs") c.target_session_attrs = value;
        else if (key == "connect_timeout") {
            // 0 or less is libpq's "no limit": the pool keeps the deadline it had.
            const auto seconds = libpq_int(value).value_or(0);
            c.pool.connect_timeout = seconds > 0 ? std::chrono::seconds(seconds) : connect_timeout;
        } else {
            std::erase_if(c.options, [&](const auto& o) { return o.first == p.key; });
            if (!value.empty()) c.options.emplace_back(key, value);
        }
    }
}

}  // namespace detail

inline std::string redact(std::string_view text) {
    std::vector<detail::Span> hide;
    detail::url_password_spans(text, hide);
    detail::keyword_password_spans(text, hide);
    return detail::hidden(text, std::move(hide), text.size());
}

inline Config Config::from_url(std::string_view url) {
    Config c;
    detail::apply_conninfo(c, url, "connection URL");
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
        for (const char* name : {primary, alias})  // an empty variable is an unset one
            if (const char* value = name ? lookup(name) : nullptr; value && *value) return Var{name, value};
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
        if (!is_port_list(v->value))
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
    if (const auto capacity = size("DB_POOL_CAPACITY", 0); capacity && *capacity != 0) {
        if (*capacity < c.pool.max_size)
            throw ConfigError("reservoir: DB_POOL_CAPACITY (" + std::to_string(*capacity) + ") is below DB_POOL_MAX (" +
                              std::to_string(c.pool.max_size) + "): it is the most that max may be raised to");
        c.pool.capacity = *capacity;
    }

    if (auto v = read("DATABASE_URL")) {
        apply_conninfo(c, v->value, v->name);
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
