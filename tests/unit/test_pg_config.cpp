// reservoir::pg::Config: environment variables, URLs, precedence, error
// messages (never with a password), redact(), and what keywords() sends.

#include <catch2/catch.hpp>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <reservoir/pg/config.hpp>

using reservoir::ConfigError;
using reservoir::pg::Config;
using reservoir::pg::Pooler;
using reservoir::pg::redact;
using namespace std::chrono_literals;

namespace {

using Env = std::map<std::string, std::string>;
using Keywords = std::vector<std::pair<std::string, std::string>>;

const std::string secret = "Sup3r-S3cret";  // in every environment below: must never show up

Config load(Env env) {
    env.emplace("DB_PASSWORD", secret);
    return Config::from_env([&](const char* name) -> const char* {
        const auto it = env.find(name);
        return it == env.end() ? nullptr : it->second.c_str();
    });
}

// The message of the ConfigError `f` throws; fails the test if it throws none.
template <class F>
std::string error_of(F f) {
    try {
        f();
    } catch (const ConfigError& e) {
        return e.what();
    }
    FAIL("no ConfigError");
    return {};
}

std::string env_error(const Env& env) { return error_of([&] { load(env); }); }

std::string keyword(const Config& c, const std::string& key) {
    for (const auto& [k, v] : c.keywords())
        if (k == key) return v;
    return "(unset)";
}

}  // namespace

TEST_CASE("nothing set: documented defaults, and libpq's own settings stay in force", "[config]") {
    const Config c = Config::from_env([](const char*) -> const char* { return nullptr; });
    CHECK(c.url.empty());
    CHECK(c.host.empty());
    CHECK(c.port.empty());
    CHECK(c.dbname.empty());
    CHECK(c.user.empty());
    CHECK(c.password.empty());
    CHECK(c.application_name == "reservoir");
    CHECK(c.statement_timeout == 30s);
    CHECK(c.slow_query_threshold == 1s);
    CHECK_FALSE(c.ssl);
    CHECK(c.target_session_attrs.empty());
    CHECK(c.options.empty());
    CHECK(c.pooler == Pooler::none);
    CHECK(c.pool.min_size == 2);
    CHECK(c.pool.max_size == 20);
    CHECK(c.pool.idle_timeout == 30s);
    CHECK(c.pool.connect_timeout == 10s);
    CHECK(c.pool.acquire_timeout == 5s);
    // No host, port, dbname, user, password or sslmode: PGHOST & co. apply.
    CHECK(c.keywords() == Keywords{{"fallback_application_name", "reservoir"},
                                   {"connect_timeout", "10"},
                                   {"options", "-c statement_timeout=30000"}});
    CHECK(c.redacted_url() == "postgresql://?fallback_application_name=reservoir&connect_timeout=10"
                              "&options=-c%20statement_timeout%3D30000");
}

// Every field on one line, "name=value " each, so that a table can expect a part of it.
std::string describe(const Config& c) {
    std::ostringstream out;
    out << "url=" << c.url << " host=" << c.host << " port=" << c.port << " dbname=" << c.dbname
        << " user=" << c.user << " password=" << c.password << " application_name=" << c.application_name
        << " statement_timeout=" << c.statement_timeout.count() << " ssl=" << c.ssl
        << " pooler=" << (c.pooler == Pooler::pgbouncer ? "pgbouncer" : "none") << " min=" << c.pool.min_size
        << " max=" << c.pool.max_size << " idle=" << c.pool.idle_timeout.count()
        << " connect=" << c.pool.connect_timeout.count() << " acquire=" << c.pool.acquire_timeout.count() << " ";
    return out.str();
}

TEST_CASE("every variable and alias is read", "[config]") {
    struct Case {
        Env env;
        std::string expected;  // in describe()
    };
    const std::vector<Case> cases = {
        {{{"DB_HOST", "db.internal"}}, " host=db.internal "},
        {{{"DB_HOST", "a,b"}, {"DB_PORT", "1,2"}}, " host=a,b port=1,2 "},
        {{{"DB_PORT", "6543"}}, " port=6543 "},
        {{{"DB_NAME", "orders"}}, " dbname=orders "},
        {{{"DB_USER", "app"}}, " user=app "},
        {{}, " password=" + secret + " "},
        {{{"DB_POOL_MIN", "0"}}, " min=0 "},
        {{{"DB_POOL_MAX", "10000"}}, " max=10000 "},
        {{{"DB_IDLE_TIMEOUT_MS", "0"}}, " idle=0 "},
        {{{"DB_POOL_IDLE_MS", "1234"}}, " idle=1234 "},
        {{{"DB_CONNECTION_TIMEOUT_MS", "2500"}}, " connect=2500 "},
        {{{"DB_POOL_CONN_TIMEOUT_MS", "700"}}, " connect=700 "},
        {{{"DB_ACQUIRE_TIMEOUT_MS", "0"}}, " acquire=0 "},
        {{{"DB_STATEMENT_TIMEOUT_MS", "2147483647"}}, " statement_timeout=2147483647 "},
        {{{"DB_APPLICATION_NAME", "billing"}}, " application_name=billing "},
        {{{"DB_APPLICATION_NAME", ""}}, " application_name=reservoir "},  // empty = unset
        {{{"DB_SSL", "true"}}, " ssl=1 "},
        {{{"DATABASE_SSL", "on"}}, " ssl=1 "},
        {{{"DB_POOLER", "PgBouncer"}}, " pooler=pgbouncer "},
        {{{"DB_POOLER", "none"}}, " pooler=none "},
        {{{"DATABASE_URL", "postgres://h/d"}}, "url=postgres://h/d host=h port= dbname=d "},
        // Primary names win over aliases.
        {{{"DB_IDLE_TIMEOUT_MS", "1"}, {"DB_POOL_IDLE_MS", "2"}}, " idle=1 "},
        {{{"DB_CONNECTION_TIMEOUT_MS", "1"}, {"DB_POOL_CONN_TIMEOUT_MS", "2"}}, " connect=1 "},
        {{{"DB_SSL", "off"}, {"DATABASE_SSL", "on"}}, " ssl=0 "},
    };
    for (const auto& x : cases) CHECK_THAT(describe(load(x.env)), Catch::Contains(x.expected));
}

TEST_CASE("DB_POOL_CAPACITY sets how far max may be raised, never below max", "[config]") {
    CHECK(load({}).pool.capacity == 0);
    CHECK(load({{"DB_POOL_CAPACITY", "0"}}).pool.capacity == 0);
    CHECK(load({{"DB_POOL_MAX", "10"}, {"DB_POOL_CAPACITY", "40"}}).pool.capacity == 40);
    CHECK(load({{"DB_POOL_MAX", "10"}, {"DB_POOL_CAPACITY", "10"}}).pool.capacity == 10);
    CHECK_THROWS_WITH(load({{"DB_POOL_MAX", "10"}, {"DB_POOL_CAPACITY", "9"}}),
                      "reservoir: DB_POOL_CAPACITY (9) is below DB_POOL_MAX (10): it is the most that max may be "
                      "raised to");
    CHECK_THROWS_WITH(load({{"DB_POOL_CAPACITY", "10001"}}), Catch::Contains(R"(DB_POOL_CAPACITY = "10001")"));
}

TEST_CASE("DB_SSL words, in any case", "[config]") {
    for (const char* yes : {"true", "TRUE", "1", "yes", "Yes", "on", "ON"}) CHECK(load({{"DB_SSL", yes}}).ssl);
    for (const char* no : {"false", "False", "0", "no", "NO", "off", "Off"}) CHECK_FALSE(load({{"DB_SSL", no}}).ssl);
}

TEST_CASE("profiles pick recommended values; explicit variables win", "[config]") {
    struct Case {
        const char* profile;
        std::size_t min, max;
        std::chrono::milliseconds idle, acquire, statement;
    };
    for (const auto& p : {Case{"development", 1, 5, 30s, 5s, 60s}, Case{"staging", 2, 10, 30s, 5s, 30s},
                          Case{"production", 5, 20, 30s, 5s, 30s}, Case{"Production", 5, 20, 30s, 5s, 30s}}) {
        INFO(p.profile);
        const Config c = load({{"DB_PROFILE", p.profile}});
        CHECK(c.pool.min_size == p.min);
        CHECK(c.pool.max_size == p.max);
        CHECK(c.pool.idle_timeout == p.idle);
        CHECK(c.pool.acquire_timeout == p.acquire);
        CHECK(c.statement_timeout == p.statement);
    }
    const Config c = load({{"DB_PROFILE", "development"}, {"DB_POOL_MAX", "8"}, {"DB_STATEMENT_TIMEOUT_MS", "100"},
                           {"DB_IDLE_TIMEOUT_MS", "7"}, {"DB_ACQUIRE_TIMEOUT_MS", "9"}, {"DB_SLOW_QUERY_MS", "250"}});
    CHECK(c.pool.min_size == 1);
    CHECK(c.slow_query_threshold == 250ms);
    CHECK(c.pool.max_size == 8);
    CHECK(c.statement_timeout == 100ms);
    CHECK(c.pool.idle_timeout == 7ms);
    CHECK(c.pool.acquire_timeout == 9ms);

    // One explicit bound wins over the profile's or the default other bound.
    CHECK(load({{"DB_PROFILE", "production"}, {"DB_POOL_MAX", "3"}}).pool.min_size == 3);
    CHECK(load({{"DB_POOL_MAX", "1"}}).pool.min_size == 1);
    CHECK(load({{"DB_POOL_MIN", "30"}}).pool.max_size == 30);
    CHECK(load({{"DB_PROFILE", "development"}, {"DB_POOL_MIN", "6"}}).pool.max_size == 6);
}

TEST_CASE("DATABASE_URL's parts win over DB_* parts; its missing parts do not", "[config]") {
    const Env parts = {{"DB_HOST", "envhost"}, {"DB_PORT", "1111"}, {"DB_NAME", "envdb"}, {"DB_USER", "envuser"},
                       {"DB_APPLICATION_NAME", "envapp"}, {"DB_SSL", "false"}, {"DB_CONNECTION_TIMEOUT_MS", "4000"}};
    Env env = parts;
    env["DATABASE_URL"] =
        "postgresql://urluser:urlpw@urlhost:2222/urldb?application_name=urlapp&sslmode=require&connect_timeout=3";
    Config c = load(env);
    CHECK(c.host == "urlhost");
    CHECK(c.port == "2222");
    CHECK(c.dbname == "urldb");
    CHECK(c.user == "urluser");
    CHECK(c.password == "urlpw");
    CHECK(c.application_name == "urlapp");
    CHECK(keyword(c, "sslmode") == "require");
    CHECK(c.pool.connect_timeout == 3s);

    env = parts;
    env["DATABASE_URL"] = "postgresql://urlhost";
    c = load(env);
    CHECK(c.host == "urlhost");
    CHECK(c.port == "1111");
    CHECK(c.dbname == "envdb");
    CHECK(c.user == "envuser");
    CHECK(c.password == secret);
    CHECK(c.application_name == "envapp");
    CHECK(c.pool.connect_timeout == 4000ms);
}

TEST_CASE("each bad variable names itself and its value, never the password", "[config]") {
    struct Case {
        Env env;
        std::vector<std::string> expected;  // substrings of the message
    };
    const std::vector<Case> cases = {
        {{{"DB_POOL_MAX", "abc"}}, {R"(reservoir: DB_POOL_MAX = "abc": not a whole number)"}},
        {{{"DB_POOL_MAX", "12x"}}, {R"(DB_POOL_MAX = "12x": not a whole number)"}},
        {{{"DB_POOL_MAX", " 5"}}, {R"(DB_POOL_MAX = " 5": not a whole number)"}},
        {{{"DB_POOL_MAX", "0"}}, {R"(DB_POOL_MAX = "0": must be between 1 and 10000)"}},
        {{{"DB_POOL_MAX", "10001"}}, {R"(DB_POOL_MAX = "10001")", "between 1 and 10000"}},
        {{{"DB_POOL_MAX", "99999999999999999999999"}}, {R"(DB_POOL_MAX = "99999999999999999999999")", "between"}},
        {{{"DB_POOL_MIN", "-5"}}, {R"(DB_POOL_MIN = "-5": must be between 0 and 10000)"}},
        {{{"DB_POOL_MIN", "30"}, {"DB_POOL_MAX", "20"}}, {"reservoir: DB_POOL_MIN (30) exceeds DB_POOL_MAX (20)"}},
        {{{"DB_PORT", "65536"}}, {R"(DB_PORT = "65536")", "1 to 65535"}},
        {{{"DB_PORT", "0"}}, {R"(DB_PORT = "0")"}},
        {{{"DB_PORT", "54x"}}, {R"(DB_PORT = "54x")"}},
        {{{"DB_PORT", "5432,x"}}, {R"(DB_PORT = "5432,x")"}},
        {{{"DB_HOST", "a,b,c"}, {"DB_PORT", "1,2"}}, {R"(port = "1,2": 2 ports for 3 hosts ("a,b,c"))"}},
        {{{"DB_IDLE_TIMEOUT_MS", "-1"}}, {R"(DB_IDLE_TIMEOUT_MS = "-1": must be between 0 and 2147483647)"}},
        {{{"DB_POOL_IDLE_MS", "soon"}}, {R"(DB_POOL_IDLE_MS = "soon": not a whole number)"}},
        {{{"DB_POOL_IDLE_MS", "x"}, {"DB_IDLE_TIMEOUT_MS", "y"}}, {R"(DB_IDLE_TIMEOUT_MS = "y")"}},
        {{{"DB_CONNECTION_TIMEOUT_MS", "0"}}, {R"(DB_CONNECTION_TIMEOUT_MS = "0": must be between 1 and)"}},
        {{{"DB_POOL_CONN_TIMEOUT_MS", "1.5"}}, {R"(DB_POOL_CONN_TIMEOUT_MS = "1.5": not a whole number)"}},
        {{{"DB_ACQUIRE_TIMEOUT_MS", "2147483648"}}, {R"(DB_ACQUIRE_TIMEOUT_MS = "2147483648")"}},
        {{{"DB_STATEMENT_TIMEOUT_MS", "-100"}}, {R"(DB_STATEMENT_TIMEOUT_MS = "-100")"}},
        {{{"DB_SLOW_QUERY_MS", "-1"}}, {R"(DB_SLOW_QUERY_MS = "-1": must be between 0 and 2147483647)"}},
        {{{"DB_SSL", "maybe"}}, {R"(DB_SSL = "maybe": must be one of true, false, 1, 0, yes, no, on, off)"}},
        {{{"DB_POOLER", "pgpool"}}, {R"(DB_POOLER = "pgpool": must be one of none, pgbouncer)"}},
        {{{"DB_PROFILE", "prod"}}, {R"(DB_PROFILE = "prod": must be one of development, staging, production)"}},
        {{{"DATABASE_URL", "mysql://u:pw@h/db"}},
         {R"(DATABASE_URL = "mysql:***@h/db": must be a postgresql:// or postgres:// URL, or key=value pairs)"}},
        {{{"DATABASE_URL", "postgresql://h?sslmode=on"}},
         {R"(DATABASE_URL = "postgresql://h?sslmode=on": sslmode must be one of disable allow prefer require)"}},
    };
    for (const auto& [env, expected] : cases) {
        const auto message = env_error(env);
        INFO(message);
        for (const auto& part : expected) CHECK(message.find(part) != std::string::npos);
        CHECK(message.find(secret) == std::string::npos);
    }
}

TEST_CASE("a malformed DATABASE_URL is shown with its password hidden", "[config]") {
    const std::vector<std::string> urls = {
        "postgresql://u:" + secret + "@h:99999/db",                 // bad port
        "postgresql://u:" + secret + "@h/db%zz",                    // bad escape after the password
        "postgresql://u:" + secret + "%zz@h/db",                    // bad escape in the password
        "postgresql://u:" + secret + "@[::1/db",                    // unclosed bracket
        "postgresql://u:" + secret + "@h/db?novalue",               // parameter without '='
        "postgresql://u:" + secret + "@h/db?connect_timeout=x",     // bad connect_timeout
        "postgresql://u:" + secret + "@h/db?bogus=1",               // a key libpq does not know
        "postgresql://u:" + secret + "/x@h/db",                     // raw '/' in the password
        "postgresql://u:" + secret + "@x@h/db",                     // raw '@' in the password
        "postgresql://h/db?password=" + secret + "&bogus=1",        // ... and a key after it
        "postgresql://h/db?password=" + secret + "=x",              // raw '=' in a query password
        "host=h password='" + secret + "' port=x",                  // conninfo pairs
        "host=h password=" + secret + " x",                         // ... a raw space in the password
        "host=h password='" + secret,                               // ... unterminated quote
        "u:" + secret + " x@h/db",                                  // no scheme, cut before its '@'
        "u:" + secret + "=x y@h/db",                                // ... read as a pair
        "host='h password=" + secret + "",                          // a password inside an unclosed quote
        "postgresql://h/db?password=" + secret + "&port=x",         // password as a query parameter
        "postgresql://h/db?pass%77ord=" + secret + "&port=x",       // ... spelled with an escape
        "postgresql://h/db?sslpassword=" + secret + "&port=x",      // key file password
        "postgres//u:" + secret + "@h/db",                          // bad scheme
        "u:" + secret + "@h/db",                                    // no scheme at all
        "POSTGRESQL://u:" + secret + "@h/db",                       // scheme in capitals
        " postgresql://u:" + secret + "@h/db",                      // leading space
    };
    for (const auto& url : urls) {
        INFO(url);
        for (const auto& message : {env_error({{"DATABASE_URL", url}}), error_of([&] { Config::from_url(url); })}) {
            INFO(message);
            CHECK(message.find(secret) == std::string::npos);
            // The password hidden, or nothing shown past the scheme when the password's end is unsure.
            CHECK((message.find("***") != std::string::npos || message.find("://...\"") != std::string::npos));
        }
        CHECK(env_error({{"DATABASE_URL", url}}).find("reservoir: DATABASE_URL = \"") == 0);
    }
}

TEST_CASE("from_url: parts, escapes, IPv6, host lists, query parameters", "[config]") {
    struct Case {
        std::string url, host, port, dbname, user, password;
        Keywords options;
    };
    const std::vector<Case> cases = {
        {"postgresql://", "", "", "", "", "", {}},
        {"postgres://h", "h", "", "", "", "", {}},
        {"postgresql://h:5433", "h", "5433", "", "", "", {}},
        {"postgresql:///db", "", "", "db", "", "", {}},
        {"postgresql://u@h/db", "h", "", "db", "u", "", {}},
        {"postgresql://u:@h/db", "h", "", "db", "u", "", {}},
        {"postgresql://:pw@h", "h", "", "", "", "pw", {}},
        {"postgresql://u:p%40ss%3Aw%2Fd@h/my%20db", "h", "", "my db", "u", "p@ss:w/d", {}},
        {"postgresql://u:p?s#s@h/db", "h", "", "db", "u", "p?s#s", {}},  // the first '@' before a '/' ends it
        {"postgresql://h:/db", "h", "", "db", "", "", {}},                 // an empty port: the default
        {"postgresql://:5432/db", "", "5432", "db", "", "", {}},           // a port without a host: the default
        {"postgresql://h1,,h2:1/db", "h1,,h2", ",,1", "db", "", "", {}},    // an empty host: the default
        {"postgresql://u:a:b@h", "h", "", "", "u", "a:b", {}},
        {"postgresql://%75ser@h", "h", "", "", "user", "", {}},
        {"postgresql://[::1]:5432/db", "::1", "5432", "db", "", "", {}},
        {"postgresql://[2001:db8::7]/db", "2001:db8::7", "", "db", "", "", {}},
        {"postgresql://h1:5432,h2:5433/db", "h1,h2", "5432,5433", "db", "", "", {}},
        {"postgresql://h1,h2:5433,[::1]/db", "h1,h2,::1", ",5433,", "db", "", "", {}},
        {"postgresql://%2Fvar%2Frun%2Fpostgresql/db", "/var/run/postgresql", "", "db", "", "", {}},
        {"postgresql:///db?host=/tmp&port=5555", "/tmp", "5555", "db", "", "", {}},
        {"postgresql://h/db?user=q&password=p%26q&dbname=other", "h", "", "other", "q", "p&q", {}},
        {"postgresql://h?sslmode=verify-full&sslrootcert=/ca.pem&options=-c%20search_path%3Dx", "h", "", "", "", "",
         {{"sslmode", "verify-full"}, {"sslrootcert", "/ca.pem"}, {"options", "-c search_path=x"}}},
        {"postgresql://h/db?keepalives=1&", "h", "", "db", "", "", {{"keepalives", "1"}}},
        {"postgresql://h?ssl=true", "h", "", "", "", "", {{"sslmode", "require"}}},  // libpq's JDBC spelling
        {"postgresql://h?requiressl=1&sslmode=verify-ca", "h", "", "", "", "", {{"sslmode", "verify-ca"}}},
        {"postgresql://h?port=%205432%20&connect_timeout=0", "h", " 5432 ", "", "", "", {}},  // as libpq reads ints
        {"postgresql://h/db?host=&dbname=&sslrootcert=a&sslrootcert=", "", "", "", "", "", {}},  // empty = unset
        {"host=h port=5433 dbname='my db' user=u password='p \\'w' sslmode=require", "h", "5433", "my db", "u",
         "p 'w", {{"sslmode", "require"}}},
        {"", "", "", "", "", "", {}},
    };
    for (const auto& x : cases) {
        INFO(x.url);
        const Config c = Config::from_url(x.url);
        CHECK(c.url == x.url);
        CHECK(c.host == x.host);
        CHECK(c.port == x.port);
        CHECK(c.dbname == x.dbname);
        CHECK(c.user == x.user);
        CHECK(c.password == x.password);
        CHECK(c.options == x.options);
    }

    const Config c = Config::from_url(
        "postgresql://h/db?application_name=me&target_session_attrs=read-write&sslmode=require&connect_timeout=7");
    CHECK(c.application_name == "me");
    CHECK(c.target_session_attrs == "read-write");
    CHECK(c.options == Keywords{{"sslmode", "require"}});
    CHECK(c.pool.connect_timeout == 7s);
    CHECK(Config::from_url("postgresql://h?connect_timeout=0").pool.connect_timeout == 10s);  // the pool's own
}

TEST_CASE("from_url rejects what libpq rejects, and what it would misread", "[config]") {
    struct Case {
        std::string url;
        const char* why;
    };
    const std::vector<Case> cases = {
        {"http://h/db", "must be a postgresql:// or postgres:// URL, or key=value pairs"},
        {"postgresql:/h/db", "must be a postgresql://"},
        {"POSTGRESQL://h/db", "must be a postgresql://"},  // libpq's scheme is lower case
        {"host", "must be a postgresql://"},
        {"postgresql://h:0/db", "a port must be a number from 1 to 65535"},
        {"postgresql://h:65536/db", "a port must be"},
        {"postgresql://h:54a/db", "a port must be"},
        {"postgresql://h:-1/db", "a port must be"},
        {"postgresql://[::1/db", "unclosed '['"},
        {"postgresql://[]/db", "empty IPv6 address"},
        {"postgresql://[::1]x/db", "unexpected text after ']'"},
        {"postgresql://h/db%2", "bad percent-encoding in the database name"},
        {"postgresql://h/db%g0", "bad percent-encoding in the database name"},
        {"postgresql://h/db%00", "bad percent-encoding in the database name"},
        {"postgresql://u%zz@h", "bad percent-encoding in the user name"},
        {"postgresql://u:%@h", "bad percent-encoding in the password"},
        {"postgresql://h%/db", "bad percent-encoding in the host"},
        {"postgresql://h/db?a=%x", "bad percent-encoding in the query parameter's value"},
        {"postgresql://h/db?novalue", "not key=value"},
        {"postgresql://h/db?&keepalives=1", "not key=value"},
        {"postgresql://h/db?a=b=c", "a second '='"},
        {"postgresql://h/db?=v", "unknown connection parameter \"\""},
        {"postgresql://h/db?bogus=1", "unknown connection parameter \"bogus\" (libpq rejects it)"},
        {"postgresql://h/db?ssl=false", "unknown connection parameter \"ssl\""},
        {"postgresql://h/db?port=1,x", "a port must be"},
        {"postgresql://h/db?connect_timeout=2.5", "connect_timeout must be a whole number"},
        {"postgresql://h/db?keepalives_idle=soon", "keepalives_idle must be a whole number"},
        {"postgresql://h/db?sslmode=requir", "sslmode must be one of disable allow prefer require verify-ca"},
        {"postgresql://h/db?target_session_attrs=rw", "target_session_attrs must be one of any read-write"},
        {"postgresql://u:p@ss@h/db", "holds a raw '@' after the host part"},
        {"postgresql://h/db?application_name=a@b", "holds a raw '@'"},
        {"host=h bogus=1", "unknown connection parameter \"bogus\""},
        {"host=h a:b=1", "unknown connection parameter (libpq rejects it)"},  // no key: maybe "user:password"
        {"postgresql://h/db?password=x&y=1", "unknown connection parameter after a password; if it is a part of "
                                              "the password, percent-encode the password"},
        {"host=h password=x y=1", "after a password; if it is a part of the password, quote the password"},
        {"host=h port", "must be a postgresql://"},
        {"host='h", "a quoted value has no closing quote"},
        {"host=h sslmode=bogus", "sslmode must be one of"},
        {std::string("postgresql://h/d\0b", 18), "holds a NUL byte"},
    };
    for (const auto& x : cases) {
        const auto message = error_of([&] { Config::from_url(x.url); });
        INFO(x.url);
        INFO(message);
        CHECK(message.find("reservoir: connection URL = \"") == 0);
        CHECK(message.find(x.why) != std::string::npos);
    }
    // The value a check names is shown; a later value of a key is the one checked, as in libpq.
    CHECK_THAT(error_of([&] { Config::from_url("postgresql://h?port=99999&sslmode=require"); }),
               Catch::StartsWith(R"(reservoir: connection URL = "postgresql://h?port=99999...": a port must be)"));
    CHECK_NOTHROW(Config::from_url("postgresql://h?sslmode=bogus&sslmode=require"));
}

TEST_CASE("a password with raw '@' or '/' is no host or dbname, and shows in no message", "[config]") {
    // libpq reads the first as host "prod", dbname "Secret99@127.0.0.1:1/app", the second as host "ss",
    // port "w", dbname "rd@db/app": parts of the password that would show in every connect error.
    for (const std::string url : {"postgresql://app:hunter2@prod/Secret99@127.0.0.1:1/app",
                                  "postgresql://app:p@ss:w/rd@db/app"}) {
        INFO(url);
        const auto message = error_of([&] { Config::from_url(url); });
        CHECK_THAT(message, Catch::StartsWith(R"(reservoir: connection URL = "postgresql://...": holds a raw '@')"));
        for (const char* part : {"hunter2", "Secret99", "127.0.0.1", "prod", "ss:w", "rd@db"})
            CHECK_THAT(message, !Catch::Contains(part));
        CHECK_THAT(env_error({{"DATABASE_URL", url}}), Catch::StartsWith(R"(reservoir: DATABASE_URL = "postgresql://...")"));
    }
    CHECK(redact("postgresql://app:p@ss:w/rd@db/app") == "postgresql://app:***@db/app");
    CHECK(redact("postgresql://app:hunter2@prod/Secret99@127.0.0.1:1/app") == "postgresql://app:***@127.0.0.1:1/app");
}

TEST_CASE("an empty variable is an unset one", "[config]") {
    const Config c = load({{"DATABASE_URL", ""}, {"DB_HOST", ""}, {"DB_PORT", ""}, {"DB_POOL_MAX", ""},
                           {"DB_SSL", ""}, {"DB_PROFILE", ""}, {"DB_APPLICATION_NAME", ""}, {"DB_POOLER", ""}});
    CHECK(c.url.empty());
    CHECK(c.host.empty());
    CHECK(c.port.empty());
    CHECK(c.pool.max_size == 20);
    CHECK_FALSE(c.ssl);
    CHECK(c.application_name == "reservoir");
    // An empty DB_PASSWORD leaves libpq's own (PGPASSWORD, ~/.pgpass) in force, as an unset one does.
    CHECK(Config::from_env([](const char*) { return ""; }).password.empty());
    // A URL's empty query value unsets the part, as libpq's does.
    CHECK(load({{"DB_HOST", "envhost"}, {"DATABASE_URL", "postgresql://?host="}}).host.empty());
}

TEST_CASE("redact hides passwords in URLs, conninfo and messages", "[config]") {
    struct Case {
        std::string in, out;
    };
    const std::vector<Case> cases = {
        {"postgresql://u:pw@h/db", "postgresql://u:***@h/db"},
        {"postgresql://u@h/db", "postgresql://u@h/db"},
        {"postgresql://h:5432/db", "postgresql://h:5432/db"},
        {"postgresql://u:@h", "postgresql://u:***@h"},
        {"postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"},
        {"postgresql://u:p/w?x@h/db", "postgresql://u:***@h/db"},
        {"postgresql://u:pw@[::1]:5432,h2/db", "postgresql://u:***@[::1]:5432,h2/db"},
        {"postgresql://u:pw@h/db?application_name=a@b", "postgresql://u:***@b"},  // in doubt: to the last '@'
        {"postgresql://u:p/w?x@h/db postgres://v:q@h", "postgresql://u:***@h"},
        {"postgresql://h/db?password=pw&sslmode=require", "postgresql://h/db?password=***&sslmode=require"},
        {"postgresql://h/db?x=1&sslpassword=a%20b", "postgresql://h/db?x=1&sslpassword=***"},
        {"postgresql://h/db?PASS%57ORD=pw", "postgresql://h/db?PASS%57ORD=***"},
        {"host=h password=pw user=u", "host=h password=*** user=u"},
        {"host=h password = 'p w\\' x' user=u", "host=h password =*** user=u"},
        {"password=a\\ b dbname=d", "password=*** dbname=d"},
        {"password='unterminated user=u", "password=***"},
        {"password=", "password=***"},
        {"sslpassword=k host=h", "sslpassword=*** host=h"},
        {"FATAL:  password authentication failed for user \"bob@srv\"",  // no '=': not a conninfo pair
         "FATAL:  password authentication failed for user \"bob@srv\""},
        {"could not connect to \"postgresql://u:pw@h/db\": refused",
         "could not connect to \"postgresql://u:***@h/db\": refused"},
        {"", ""},
    };
    for (const auto& [in, out] : cases) {
        INFO(in);
        CHECK(redact(in) == out);
    }
}

TEST_CASE("keywords: only what is set, in order, with the pooler-safe profile", "[config]") {
    Config c;
    c.host = "h1,h2";
    c.port = "5432,5433";
    c.dbname = "d";
    c.user = "u";
    c.password = "pw";
    c.application_name = "app";
    c.ssl = true;
    c.target_session_attrs = "read-write";
    c.statement_timeout = 1500ms;
    c.pool.connect_timeout = 2500ms;
    c.options = {{"keepalives", "1"}, {"options", "-c search_path=s"}};
    CHECK(c.keywords() == Keywords{{"host", "h1,h2"}, {"port", "5432,5433"}, {"dbname", "d"}, {"user", "u"},
                                   {"password", "pw"}, {"application_name", "app"}, {"sslmode", "require"},
                                   {"target_session_attrs", "read-write"}, {"connect_timeout", "3"},
                                   {"keepalives", "1"},
                                   {"options", "-c statement_timeout=1500 -c search_path=s"}});
    CHECK(c.redacted_url() ==
          "postgresql://u:***@h1:5432,h2:5433/d?application_name=app&sslmode=require&target_session_attrs=read-write"
          "&connect_timeout=3&keepalives=1&options=-c%20statement_timeout%3D1500%20-c%20search_path%3Ds");

    SECTION("PgBouncer gets no statement_timeout in options") {
        c.pooler = Pooler::pgbouncer;
        CHECK(keyword(c, "options") == "-c search_path=s");
        c.options.clear();
        CHECK(keyword(c, "options") == "(unset)");
    }
    SECTION("an empty application_name sends none") {
        c.application_name = "";
        CHECK(keyword(c, "application_name") == "(unset)");
        CHECK(keyword(c, "fallback_application_name") == "(unset)");
    }
    SECTION("statement_timeout 0 sends none") {
        c.statement_timeout = 0ms;
        c.options.clear();
        CHECK(keyword(c, "options") == "(unset)");
    }
    SECTION("an sslmode option wins over ssl") {
        c.options = {{"sslmode", "verify-full"}, {"sslpassword", "k"}};
        CHECK(keyword(c, "sslmode") == "verify-full");
        CHECK(c.redacted_url().find("sslmode=verify-full") != std::string::npos);
        CHECK(c.redacted_url().find("sslpassword=***") != std::string::npos);
    }
    SECTION("IPv6 and socket hosts in redacted_url") {
        c.host = "::1,/tmp";
        c.port = "6000";
        c.options.clear();
        CHECK(c.redacted_url().starts_with("postgresql://u:***@[::1]:6000,%2Ftmp:6000/d?"));
    }
    SECTION("hosts no URL authority can hold go to the query") {
        c.host = "h1,,h2";
        c.port = "1,2,3";
        CHECK(c.redacted_url().ends_with("&host=h1%2C%2Ch2&port=1,2,3"));
        c.host = "";
        c.port = "5";
        CHECK(c.redacted_url().ends_with("&port=5"));
        c.host = ",";
        c.port = "";
        CHECK(c.redacted_url().ends_with("&host=%2C"));
    }
}

TEST_CASE("validate: hand-built configurations", "[config]") {
    Config c;
    CHECK_NOTHROW(c.validate());
    c.port = "70000";
    CHECK_THAT(error_of([&] { c.validate(); }), Catch::Contains(R"(connection option port = "70000")"));
    c.port = "1,2";
    CHECK_THAT(error_of([&] { c.validate(); }), Catch::Contains("2 ports for 1 hosts"));
    c.host = "h1,h2";
    c.port = "1,2,3";  // e.g. DB_HOST with a URL's ?port=
    CHECK_THAT(error_of([&] { c.validate(); }), Catch::Contains(R"(port = "1,2,3": 3 ports for 2 hosts ("h1,h2"))"));
    c.host = "";
    c.port = "";
    c.statement_timeout = -1ms;
    CHECK_THAT(error_of([&] { c.validate(); }), Catch::Contains("statement_timeout"));
    c.statement_timeout = 0ms;
    c.password = std::string("a\0b", 3);
    CHECK_THAT(error_of([&] { c.validate(); }), Catch::Contains("password") && !Catch::Contains(c.password));
    c.password.clear();
    c.pool.max_size = 0;
    CHECK_THAT(error_of([&] { c.validate(); }), Catch::Contains("max_size"));
}

TEST_CASE("redacted_url parses again, with the password as ***", "[config]") {
    for (const char* url : {"postgresql://u:pw@h1:1,[::1]:2/d%20b?sslmode=verify-full&options=-c%20x%3D1",
                            "postgresql:///db?host=h1,,h2&port=5432", "postgresql://?port=7&sslpassword=k",
                            "postgresql://%5Bodd%3Ahost%5D/db", "postgresql://:pw@h?application_name=a%26b"}) {
        INFO(url);
        const Config c = Config::from_url(url);
        const Config again = Config::from_url(c.redacted_url());
        CHECK(again.host == c.host);
        CHECK(again.dbname == c.dbname);
        CHECK(again.user == c.user);
        CHECK(again.password == (c.password.empty() ? "" : "***"));
        CHECK(again.ssl == c.ssl);
    }
}
