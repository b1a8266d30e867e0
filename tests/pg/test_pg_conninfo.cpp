// Config reads connection strings as libpq does: a differential test against
// PQconninfoParse over a corpus and seeded generated strings, and passwords
// (seeded random bytes) that must leave no trace in any text the library
// writes. Neither needs the server: connects go to a closed loopback port.

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "pg_test_support.hpp"

using namespace pgtest;
namespace pg = reservoir::pg;

namespace {

using Fields = std::map<std::string, std::string>;

// What PQconninfoParse makes of `text`: every keyword with a non-empty value,
// or nullopt if it rejects it (and its message in `error`).
std::optional<Fields> libpq_parse(const std::string& text, std::string& error) {
    char* message = nullptr;
    PQconninfoOption* options = PQconninfoParse(text.c_str(), &message);
    error = message ? message : "";
    if (message) PQfreemem(message);
    if (!options) return std::nullopt;
    Fields fields;
    for (auto* o = options; o->keyword; ++o)
        if (o->val && *o->val) fields[o->keyword] = o->val;
    PQconninfoFree(options);
    return fields;
}

std::set<std::string> libpq_keywords() {
    std::set<std::string> keys;
    PQconninfoOption* defaults = PQconndefaults();
    REQUIRE(defaults);
    for (auto* o = defaults; o->keyword; ++o) keys.insert(o->keyword);
    PQconninfoFree(defaults);
    return keys;
}

// What a Config holds, as the libpq keywords it stands for (only those a connection string set).
Fields config_fields(const pg::Config& c) {
    Fields f;
    const auto put = [&](const char* key, const std::string& value) {
        if (!value.empty()) f[key] = value;
    };
    put("host", c.host);
    put("port", c.port);
    put("dbname", c.dbname);
    put("user", c.user);
    put("password", c.password);
    if (c.application_name != pg::Config::default_application_name) put("application_name", c.application_name);
    put("target_session_attrs", c.target_session_attrs);
    if (c.pool.connect_timeout != pg::Config{}.pool.connect_timeout)
        put("connect_timeout", std::to_string(std::chrono::ceil<std::chrono::seconds>(c.pool.connect_timeout).count()));
    for (const auto& [key, value] : c.options) put(key.c_str(), value);
    return f;
}

// libpq's fields, with the differences docs/configuration.md lists made equal:
// connect_timeout <= 0 (libpq: no limit) keeps the pool's own deadline, and is
// read as a number; application_name "reservoir" is the default.
Fields normalized(Fields f) {
    if (const auto it = f.find("connect_timeout"); it != f.end()) {
        const long long seconds = std::stoll(it->second);
        if (seconds <= 0 || std::chrono::seconds(seconds) == pg::Config{}.pool.connect_timeout) f.erase(it);
        else it->second = std::to_string(seconds);
    }
    if (const auto it = f.find("application_name"); it != f.end() && it->second == "reservoir") f.erase(it);
    return f;
}

std::string show(const Fields& f) {
    std::string out;
    for (const auto& [k, v] : f) out += k + "=<" + v + "> ";
    return out;
}

// Whether libpq refuses these options when it starts a connection to one of
// the hosts (no wait, no DNS: each host becomes 127.0.0.1, and an empty port
// a closed one). The whole list once, then each host's port alone: libpq
// checks a host's port only when it reaches that host.
bool libpq_refuses_to_connect(Fields f, const std::string& closed_port) {
    f.erase("service");  // a service file would be read
    const auto refuses = [](const Fields& options) {
        std::vector<const char*> keys, values;
        for (const auto& [k, v] : options) {
            keys.push_back(k.c_str());
            values.push_back(v.c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);
        PGconn* conn = PQconnectStartParams(keys.data(), values.data(), 0);
        REQUIRE(conn);
        const bool refused = PQstatus(conn) == CONNECTION_BAD &&
                             std::string(PQerrorMessage(conn)).find("Connection refused") == std::string::npos;
        PQfinish(conn);
        return refused;
    };
    const auto hosts = pg::detail::split(f["host"], ','), ports = pg::detail::split(f["port"], ',');
    const auto port_or_closed = [&](std::string_view p) { return p.empty() ? closed_port : std::string(p); };
    Fields all = f;
    all["host"] = "127.0.0.1";
    all["port"] = port_or_closed(ports[0]);
    for (std::size_t i = 1; i < hosts.size(); ++i) all["host"] += ",127.0.0.1";
    for (std::size_t i = 1; i < ports.size(); ++i) all["port"] += "," + port_or_closed(ports[i]);
    if (refuses(all)) return true;
    return std::any_of(ports.begin(), ports.end(), [&](std::string_view p) {
        Fields one = f;
        one["host"] = "127.0.0.1";
        one["port"] = port_or_closed(p);
        return refuses(one);
    });
}

// The corpus: ordinary strings, the odd ones libpq takes, and ones it rejects.
std::vector<std::string> corpus() {
    std::vector<std::string> c = {
        "postgresql://", "postgres://", "postgresql://h", "postgresql://h/db", "postgresql://u@h/db",
        "postgresql://u:pw@h:5432/db", "postgresql://u:@h", "postgresql://:pw@h", "postgresql:///db",
        "postgresql://h:/db", "postgresql://h?port=", "postgresql://h?connect_timeout=0",
        "postgresql://h?connect_timeout=-5", "postgresql://h?connect_timeout=%207%20", "host=a dbname=b",
        "host = a  dbname= 'b c' user=\\'u password='p\\'w'", "", "   ", "dbname=", "host=h port=",
        "postgresql://h?bogus=1", "postgresql://h?ssl=true", "postgresql://h?ssl=false", "postgresql://h?requiressl=1",
        "postgresql://h?requiressl=0", "postgresql://h1:1,h2:2,h3:3/db", "postgresql://h1,h2:2/db",
        "postgresql://,/", "postgresql://h:1,:2,[::1]/", "postgresql://[::1]:5432/db", "postgresql://[fe80::1%25eth0]/db",
        "postgresql://[2001:db8::7]:1,[::1]/d", "postgresql://[]/", "postgresql://[::1]x/", "postgresql://[::1",
        "postgresql://%2Fvar%2Frun%2Fpostgresql/db", "postgresql://h/my%20db", "postgresql://%75:%70@h",
        "postgresql://h/%zz", "postgresql://h/%00", "postgresql://h/%4", "postgresql://u%zz@h", "postgresql://h%/",
        "postgresql://h?a=%zz", "postgresql://h?%zz=1", "postgresql://h?x", "postgresql://h?=1",
        "postgresql://h?a=1=2", "postgresql://h?dbname=x&", "postgresql://h?&dbname=x", "postgresql://h?host=&port=",
        "postgresql://h/db?host=h2&dbname=d2&user=u2&password=p2", "postgresql://h#frag", "postgresql://h/db#x",
        "postgresql://u:a?b#c@h/d", "postgresql://u:p@ss@h/db", "postgresql://app:hunter2@prod/Secret99@127.0.0.1:1/app",
        "postgresql://app:p@ss:w/rd@db/app", "postgresql://h/db?application_name=a@b", "postgresql://u@@h",
        "POSTGRESQL://h", " postgresql://h", "postgresql:/h", "mysql://u@h/db", "host", "host=", "=x", "a='b",
        "host=h\\", "host='h\\'", "password=a\\ b host=h", "host=h sslmode=require sslmode=bogus",
        "host=h sslmode=bogus sslmode=require", "postgresql://h:0", "postgresql://h:65536", "postgresql://h:x",
        "postgresql://h:%2B5432", "postgresql://h:5432,5433", "postgresql://h1,h2?port=1,2,3",
        "postgresql://h?sslmode=verify-full&sslrootcert=/ca.pem&options=-c%20search_path%3Dx",
        "postgresql://h?target_session_attrs=read-write", "postgresql://h?target_session_attrs=rw",
        "postgresql://h?keepalives_idle=x", "postgresql://h?tcp_user_timeout=100",
        "postgresql://h?application_name=reservoir", "postgresql://h?application_name=",
        "postgresql://h?fallback_application_name=fb", "postgresql://h?PassWord=x", "postgresql://h?Host=x",
        "postgresql://h?pass%77ord=x", "postgresql://h?options=-c%20a%3Db", "postgresql://h?hostaddr=127.0.0.1",
        "postgresql://h?require_auth=scram-sha-256", "host=h sslnegotiation=direct", "postgresql://h?oauth_scope=x",
    };
    // Every libpq keyword as a query parameter and as a pair, with a plain value.
    for (const auto& key : libpq_keywords()) {
        c.push_back("postgresql://h?" + key + "=v");
        c.push_back("host=h " + key + "=v");
    }
    return c;
}

// A value for `key`: one libpq takes, one it refuses when connecting, empty, or odd bytes.
std::string value_for(const std::string& key, std::mt19937_64& rng) {
    static const std::map<std::string, std::vector<std::string>> values = {
        {"port", {"5432", "1,2", ",", " 5432", "0", "65536", "x", "%35%34%33%32", "-1"}},
        {"connect_timeout", {"5", "0", "-1", " 7 ", "x", "2.5", "99999999"}},
        {"keepalives_idle", {"30", "x", " 4", "-2"}},
        {"sslmode", {"require", "verify-full", "disable", "bogus", "Require"}},
        {"target_session_attrs", {"read-write", "any", "standby", "rw"}},
        {"gssencmode", {"disable", "prefer", "maybe"}},
        {"channel_binding", {"require", "nope"}},
        {"ssl_min_protocol_version", {"TLSv1.2", "TLSv9"}},
        {"host", {"h", "127.0.0.1", "h1,h2", "%2Ftmp", ",", "::1"}},
        {"application_name", {"app", "reservoir", "a%20b"}},
    };
    static const std::vector<std::string> common = {"", "v", "a%20b", "%zz", "a b", "x@y", "a=b", "%00", "'q'"};
    const auto it = values.find(key);
    const bool own = it != values.end() && rng() % 4 != 0;
    const auto& pool = own ? it->second : common;
    return pool[rng() % pool.size()];
}

std::string generated(std::mt19937_64& rng, const std::vector<std::string>& keys) {
    const auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
    const auto key = [&] {
        static const std::vector<std::string> odd = {"bogus", "ssl", "requiressl", "", "Host", "pass%77ord"};
        return rng() % 8 == 0 ? pick(odd) : keys[rng() % keys.size()];
    };
    std::string s;
    if (rng() % 4 != 0) {
        s = pick({"postgresql://", "postgres://"});
        s += pick({"", "", "u@", "u:p@", ":p@", "u:@", "%75:%70@", "u%zz@", "u:a%2Fb@", "u:a?b@"});
        const int hosts = 1 + int(rng() % 3);
        for (int i = 0; i < hosts; ++i) {
            s += i ? "," : "";
            s += pick({"h", "127.0.0.1", "[::1]", "[2001:db8::1]", "", "h%2Cx", "[", "[]", "h%", "db.example"});
            s += pick({"", "", ":", ":5432", ":0", ":65536", ":x", ":%31"});
        }
        s += pick({"", "/", "/db", "/d%20b", "/%00", "/a%2Fb"});
        if (rng() % 2) {
            s += "?";
            const int params = int(rng() % 4);
            for (int i = 0; i < params; ++i) {
                const auto k = key();
                s += (i ? pick({"&", "&", "&", "&&"}) : "") + k + pick({"=", "=", "=", ""}) + value_for(k, rng);
            }
            if (rng() % 4 == 0) s += "&";
        }
    } else {
        const int pairs = 1 + int(rng() % 4);
        for (int i = 0; i < pairs; ++i) {
            const auto k = key();
            auto v = value_for(k, rng);
            if (rng() % 3 == 0) v = "'" + v + "'";
            s += (i ? pick({" ", "  ", "\t"}) : "") + k + pick({"=", " = ", "=", ""}) + v;
        }
    }
    if (rng() % 8 == 0) {  // one stray character somewhere
        const std::string stray = "@/:?#%[]&=' \\,";
        s.insert(s.begin() + std::ptrdiff_t(rng() % (s.size() + 1)), stray[rng() % stray.size()]);
    }
    return s;
}

}  // namespace

TEST_CASE("Config reads connection strings as libpq's PQconninfoParse does", "[pg][conninfo]") {
    const LocalSocket closed(false);  // bound, so no one else takes the port, but not listening: refused
    const auto installed = libpq_keywords();
    std::vector<std::string> inputs = corpus();
    std::mt19937_64 rng(20261207);  // fixed: a failure replays
    std::vector<std::string> keys(installed.begin(), installed.end());
    for (int i = 0; i < 20000; ++i) inputs.push_back(generated(rng, keys));

    // Differences docs/configuration.md lists with their reasons; anything else is a disagreement.
    std::map<std::string, int> documented;
    std::vector<std::string> disagreements;
    int both_accept = 0, both_reject = 0;
    for (const auto& text : inputs) {
        std::string their_error = "a NUL byte";  // libpq takes C strings: it would read less than the text
        const auto theirs = text.find('\0') == std::string::npos ? libpq_parse(text, their_error) : std::nullopt;
        std::optional<Fields> ours;
        std::string error;
        try {
            ours = config_fields(pg::Config::from_url(text));
        } catch (const reservoir::ConfigError& e) {
            error = e.what();
        }
        if (theirs && ours) {
            ++both_accept;
            if (normalized(*theirs) != *ours)
                disagreements.push_back("[" + text + "] libpq: " + show(*theirs) + "| Config: " + show(*ours));
        } else if (!theirs && !ours) {
            ++both_reject;
        } else if (theirs) {
            // Config rejects what libpq parses: a raw '@' after the host, or a value libpq refuses when it
            // connects (checked here against libpq itself; connect_timeout is read by the pool).
            if (error.find("holds a raw '@' after the host part") != std::string::npos)
                ++documented["raw '@' after the host"];
            else if (error.find("connect_timeout must be") != std::string::npos)
                ++documented["connect_timeout not an int within the pool's range"];
            else if (libpq_refuses_to_connect(*theirs, closed.port()))
                ++documented["a value libpq refuses when it connects"];
            else
                disagreements.push_back("[" + text + "] libpq accepts " + show(*theirs) + "| Config: " + error);
        } else {
            // Config accepts a keyword of a newer libpq than the one installed.
            const auto newer = std::any_of(std::begin(pg::detail::libpq_keywords), std::end(pg::detail::libpq_keywords),
                                           [&](std::string_view k) {
                                               return !installed.count(std::string(k)) &&
                                                      their_error.find("\"" + std::string(k) + "\"") != std::string::npos;
                                           });
            if (newer) ++documented["a keyword of a newer libpq"];
            else disagreements.push_back("[" + text + "] libpq rejects, Config accepts " + show(*ours));
        }
    }
    std::string summary = std::to_string(inputs.size()) + " inputs: " + std::to_string(both_accept) +
                          " both accept, " + std::to_string(both_reject) + " both reject";
    for (const auto& [why, n] : documented) summary += ", " + std::to_string(n) + " documented (" + why + ")";
    summary += ", " + std::to_string(disagreements.size()) + " disagreements";
    INFO(summary);
    for (std::size_t i = 0; i < disagreements.size() && i < 20; ++i) UNSCOPED_INFO(disagreements[i]);
    CHECK(disagreements.empty());
    CHECK(both_accept > 1000);  // the generator covers both sides
    CHECK(both_reject > 1000);
    SUCCEED(summary);

    // Every keyword the installed libpq knows is one Config knows.
    std::string unknown;
    for (const auto& key : installed)
        if (std::count(std::begin(pg::detail::libpq_keywords), std::end(pg::detail::libpq_keywords), key) != 1)
            unknown += key + " ";
    CHECK(unknown == "");
}

namespace {

// A password an attacker would try: the bytes that mean something in URLs and
// conninfo, white space, non-ASCII bytes, letters; every fourth has a raw '@'
// and '/' in the middle, like "hunter2@prod/Secret99". A `dense` one has a
// non-ASCII byte in every 4 in a row, which no message of the library or of
// libpq holds: its check cannot trip on message text that varies (timings).
std::string random_password(std::mt19937_64& rng, bool at_and_slash, bool dense) {
    static const std::string special = "@/:?#%[]&=' \\\"\t,;";
    static const std::string letters = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    const auto non_ascii = [&] { return char(0x80 + rng() % 0x80); };
    std::string pw;
    for (std::size_t n = 8 + rng() % 17; pw.size() < n;) {
        if (dense && pw.size() % 3 == 0) {
            pw += non_ascii();
            continue;
        }
        switch (rng() % 4) {
            case 0: pw += special[rng() % special.size()]; break;
            case 1: pw += non_ascii(); break;
            default: pw += letters[rng() % letters.size()];
        }
    }
    if (at_and_slash) {
        const std::size_t at = dense ? 1 : pw.size() / 2;  // dense: right after a non-ASCII byte
        pw.insert(at, "@" + std::string(1, dense ? non_ascii() : letters[rng() % letters.size()]) + "/");
    }
    return pw;
}

// The password in connection strings, raw and escaped, each way a user may write it.
std::vector<std::pair<std::string, std::string>> embeddings(const std::string& pw, const std::string& port) {
    using pg::detail::percent_encode;
    const std::string server = "@127.0.0.1:" + port + "/app";
    std::string quoted;
    for (const char c : pw) quoted += (c == '\'' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    std::vector<std::pair<std::string, std::string>> e = {
        {"raw in the user part", "postgresql://app:" + pw + server},
        {"encoded in the user part", "postgresql://app:" + percent_encode(pw) + server},
        {"encoded in the query", "postgresql://app" + server + "?sslmode=disable&password=" + percent_encode(pw) +
                                     "&application_name=t"},
        {"quoted in a pair", "host=127.0.0.1 port=" + port + " dbname=app password='" + quoted + "' user=app"},
    };
    if (pw.find('&') == std::string::npos)  // '&' ends a query parameter: nothing can tell it from one
        e.push_back({"raw in the query", "postgresql://app" + server + "?password=" + pw + "&application_name=t"});
    if (pw.find_first_of(" \t'\\") == std::string::npos)  // likewise white space in an unquoted pair
        e.push_back({"raw in a pair", "host=127.0.0.1 port=" + port + " password=" + pw + " user=app"});
    return e;
}

// Every text the library writes about this connection string: its errors,
// redactions, and the connect error of a driver (and of a pool, if asked).
std::vector<std::string> texts_about(const std::string& text, const std::string& pw, bool pool_too) {
    std::vector<std::string> out = {pg::redact(text)};
    const auto use = [&](const pg::Config& c, bool with_pool) {
        out.push_back(c.redacted_url());
        out.push_back(pg::redact(c.url));
        // The parts a driver names in its messages. Only 127.0.0.1 is ever connected to: another
        // host here is a part of the password read as one.
        out.push_back("host=" + c.host + " port=" + c.port + " dbname=" + c.dbname + " user=" + c.user);
        CHECK(c.host == "127.0.0.1");
        if (c.host != "127.0.0.1") return;
        try {
            pg::Driver(c).connect(Clock::now() + 5s);
            FAIL("connected to a closed port");
        } catch (const reservoir::ConnectError& e) {
            out.push_back(e.what());
        }
        if (!with_pool) return;
        pg::Config small = c;
        small.pool.min_size = 0;
        small.pool.max_size = 1;
        small.pool.acquire_timeout = 300ms;
        reservoir::PgPool pool(small);
        try {
            (void)pool.acquire();
            FAIL("acquired a connection to a closed port");
        } catch (const reservoir::Error& e) {  // AcquireTimeout, or PoolUnavailable once the breaker opens
            out.push_back(e.what());
        }
        out.push_back(pool.stats().last_connect_error);
    };
    const auto from_env = [&](std::map<std::string, std::string> env) {
        return pg::Config::from_env([env = std::move(env)](const char* name) -> const char* {
            const auto it = env.find(name);
            return it == env.end() ? nullptr : it->second.c_str();
        });
    };
    for (int way = 0; way < 3; ++way) {
        try {
            if (way == 0) use(pg::Config::from_url(text), pool_too);
            if (way == 1) use(from_env({{"DATABASE_URL", text}}), false);
            if (way == 2) use(from_env({{"DB_PASSWORD", pw}, {"DB_HOST", "127.0.0.1"},
                                        {"DB_PORT", pg::Config::from_url(text).port}}), false);
        } catch (const reservoir::ConfigError& e) {
            out.push_back(e.what());
        }
    }
    return out;
}

}  // namespace

TEST_CASE("no text the library writes holds 4 bytes in a row of a password", "[pg][conninfo]") {
    const LocalSocket closed(false);  // bound, so no one else takes the port, but not listening: refused
    std::mt19937_64 rng(7122026);  // fixed: a failure replays
    const int passwords = 300;
    // A 4-byte run that the same texts hold with a 2-byte password is the text's own, not the password's.
    std::map<std::string, std::set<std::string>> own;
    for (const auto& [way, text] : embeddings("Zq", closed.port()))
        for (const auto& t : texts_about(text, "Zq", false))
            for (std::size_t i = 0; i + 4 <= t.size(); ++i) own[way].insert(t.substr(i, 4));

    int checked = 0;
    for (int n = 0; n < passwords; ++n) {
        const bool pool_too = n < 4;  // a pool takes 300 ms: a few
        const auto pw = random_password(rng, n % 4 == 0, pool_too);
        for (const auto& [way, text] : embeddings(pw, closed.port())) {
            for (const auto& t : texts_about(text, pw, pool_too)) {
                ++checked;
                for (const auto& secret : {pw, pg::detail::percent_encode(pw)})
                    for (std::size_t i = 0; i + 4 <= secret.size(); ++i) {
                        const auto run = secret.substr(i, 4);
                        if (own[way].count(run) || t.find(run) == std::string::npos) continue;
                        INFO("password #" << n << " " << way << ": [" << text << "]");
                        FAIL_CHECK("[" << run << "] of the password in: " << t);
                        break;
                    }
            }
        }
    }
    CHECK(checked > passwords * 15);
}

TEST_CASE("a password that is also a word of libpq's message leaves the message whole", "[pg][conninfo]") {
    const LocalSocket closed(false);  // bound, so no one else takes the port, but not listening: refused
    for (const char* password : {"failed", "port", "Connection", "127.0.0.1"}) {
        pg::Config c;
        c.host = "127.0.0.1";
        c.port = closed.port();
        c.user = "app";
        c.password = password;
        INFO(password);
        try {
            pg::Driver(c).connect(Clock::now() + 5s);
            FAIL("connected to a closed port");
        } catch (const reservoir::ConnectError& e) {
            CHECK_THAT(e.what(), Catch::StartsWith("reservoir: connect to host=127.0.0.1 port=" + c.port +
                                                   " user=app failed: connection to server at \"127.0.0.1\", port " +
                                                   c.port + " failed: Connection refused"));
        }
    }
}
