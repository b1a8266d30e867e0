#pragma once
// Shared by the session isolation tests: SQL that leaves session state behind
// by every route we know (plain statements, functions, DO blocks, a trigger,
// a rule, U&-escaped names, pg_settings, pg_temp-qualified names, the simple,
// extended, pipeline and event-loop protocols), and a fingerprint of a
// session to compare with a fresh connection's.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <poll.h>

#include "pg_test_support.hpp"

namespace pgtest {

// The seed of a randomized test: from `variable` to replay a run, else random.
inline std::uint64_t seed_from(const char* variable) {
    if (const char* s = std::getenv(variable); s && *s) return std::strtoull(s, nullptr, 10);
    return std::random_device{}();
}

// What a generated borrower may use: a schema (owned by the app user) with a
// sequence, a table with a serial, SECURITY INVOKER functions that change
// session state, a table whose trigger and one whose rule call set_config,
// and a BYPASSRLS role the app user may SET ROLE to. A table in public named
// `shadowed()` holds one row, 'real': a temporary table of that name must
// never shadow it for the next borrower. Dropped afterwards.
class StatePlayground {
public:
    explicit StatePlayground(const std::string& app_user)
        : schema_(unique_name("iso")), role_(unique_name("iso_role")), shadowed_(unique_name("iso_shadowed")),
          app_user_(app_user) {
        auto admin = connect_admin();
        admin.execute("CREATE ROLE " + role_ + " NOLOGIN BYPASSRLS; GRANT " + role_ + " TO " + app_user_ +
                      "; CREATE SCHEMA " + schema_ + " AUTHORIZATION " + app_user_);
        auto c = connect(app_config());
        const std::string& s = schema_;
        c.execute("CREATE SEQUENCE " + s + ".seq;"
                  "CREATE TABLE " + s + ".items (id bigserial PRIMARY KEY, note text);"
                  "CREATE FUNCTION " + s + ".set_it(n text, v text) RETURNS text LANGUAGE sql "
                  "  AS $$ SELECT pg_catalog.set_config(n, v, false) $$;"
                  "CREATE FUNCTION " + s + ".run(cmd text) RETURNS void LANGUAGE plpgsql "
                  "  AS $$ BEGIN EXECUTE cmd; END $$;"
                  "CREATE FUNCTION " + s + ".lock_it(k bigint) RETURNS void LANGUAGE sql "
                  "  AS $$ SELECT pg_catalog.pg_advisory_lock(k) $$;"
                  "CREATE TABLE " + s + ".trig (n text, v text);"
                  "CREATE FUNCTION " + s + ".trig_fn() RETURNS trigger LANGUAGE plpgsql "
                  "  AS $$ BEGIN PERFORM pg_catalog.set_config(NEW.n, NEW.v, false); RETURN NEW; END $$;"
                  "CREATE TRIGGER set_it BEFORE INSERT ON " + s + ".trig FOR EACH ROW EXECUTE FUNCTION " + s +
                  ".trig_fn();"
                  "CREATE TABLE " + s + ".ruled (n text, v text);"
                  "CREATE RULE set_it AS ON INSERT TO " + s + ".ruled DO ALSO "
                  "  SELECT pg_catalog.set_config(NEW.n, NEW.v, false);"
                  "GRANT USAGE ON SCHEMA " + s + " TO " + role_ + ";"
                  "GRANT ALL ON ALL TABLES IN SCHEMA " + s + " TO " + role_ + ";"
                  "GRANT ALL ON ALL SEQUENCES IN SCHEMA " + s + " TO " + role_ + ";"
                  "CREATE TABLE public." + shadowed_ + " AS SELECT 'real'::text AS v;"
                  "GRANT SELECT ON public." + shadowed_ + " TO PUBLIC");
    }
    ~StatePlayground() {
        try {
            auto admin = connect_admin();
            admin.execute("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE; DROP TABLE IF EXISTS public." + shadowed_ +
                          "; DROP OWNED BY " + role_ + "; DROP ROLE IF EXISTS " + role_);
        } catch (...) {
        }
    }
    StatePlayground(const StatePlayground&) = delete;
    StatePlayground& operator=(const StatePlayground&) = delete;

    const std::string& schema() const { return schema_; }
    const std::string& role() const { return role_; }
    const std::string& shadowed() const { return shadowed_; }
    const std::string& app_user() const { return app_user_; }
    // Custom settings the generator defines (placeholders), besides the tenant ones.
    static std::vector<std::string> placeholders() {
        return {"app.current_tenant", "app.current_user", "app.current_session", "iso.p0", "iso.p1", "iso.p2"};
    }

private:
    static reservoir::pg::Config app_config() { return config(); }
    std::string schema_, role_, shadowed_, app_user_;
};

// One random borrower: a few state-changing statements, each through a
// random route. Failures are part of the game (a statement an earlier one
// made impossible, a route a statement cannot take): they are counted, and
// the session is left as they leave it.
class StateGenerator {
public:
    StateGenerator(const StatePlayground& pg, std::uint64_t seed, bool superuser)
        : pg_(pg), rng_(seed), superuser_(superuser) {}

    struct Outcome {
        std::string log;  // what ran, for the message of a failed comparison
        int failed = 0;   // statements that raised an error
        int ran = 0;
    };

    // Runs 1..3 actions on `c`; may leave a transaction open.
    Outcome dirty(reservoir::pg::Connection& c) {
        Outcome out;
        const int n = 1 + static_cast<int>(rng_() % 3);
        for (int i = 0; i < n; ++i) action(c, out);
        return out;
    }

private:
    std::string pick(const std::vector<std::string>& from) { return from[rng_() % from.size()]; }
    std::string next_name(const char* prefix) { return std::string(prefix) + std::to_string(++counter_); }
    static std::string literal(const std::string& s) {
        std::string out = "'";
        for (char ch : s) out += ch == '\'' ? std::string("''") : std::string(1, ch);
        return out + "'";
    }

    // A setting and a value that differs from a fresh session's.
    std::pair<std::string, std::string> setting() {
        static const std::vector<std::pair<std::string, std::string>> settings = {
            {"search_path", "pg_temp, public"},     {"work_mem", "7MB"},
            {"statement_timeout", "1234ms"},        {"application_name", "leaked"},
            {"DateStyle", "SQL, DMY"},              {"TimeZone", "Asia/Tokyo"},
            {"default_transaction_read_only", "on"}, {"default_transaction_isolation", "serializable"},
            {"row_security", "off"},                {"app.current_tenant", "t04"},
            {"app.current_user", "u04"},            {"iso.p0", "v"},
            {"iso.p1", "w"},                        {"iso.p2", ""}};
        auto kv = settings[rng_() % settings.size()];
        if (kv.first == "search_path" && rng_() % 2) kv.second = pg_.schema() + ", public";
        return kv;
    }

    // The SQL of one state change, as a statement (not yet routed).
    std::string statement() {
        const std::string& s = pg_.schema();
        switch (rng_() % 22) {
            case 0: {
                auto [n, v] = setting();
                return "SET " + n + " = " + literal(v);
            }
            case 1: {
                auto [n, v] = setting();
                return "SELECT pg_catalog.set_config(" + literal(n) + ", " + literal(v) + ", false)";
            }
            case 2: {
                auto [n, v] = setting();
                return "SELECT U&\"set\\005Fconfig\"(" + literal(n) + ", " + literal(v) + ", false)";
            }
            case 3: {
                auto [n, v] = setting();
                return "SELECT " + s + ".set_it(" + literal(n) + ", " + literal(v) + ")";
            }
            case 4: {
                auto [n, v] = setting();
                return "UPDATE pg_settings SET setting = " + literal(v) + " WHERE name = " + literal(n);
            }
            case 5: {
                auto [n, v] = setting();
                return "INSERT INTO " + s + (rng_() % 2 ? ".trig" : ".ruled") + " VALUES (" + literal(n) + ", " +
                       literal(v) + ")";
            }
            case 6: return rng_() % 2 ? "SET ROLE " + pg_.role()
                                      : "SELECT pg_catalog.set_config('role', " + literal(pg_.role()) + ", false)";
            case 7:  // a superuser may become the app user; anyone may "become" themselves
                return "SET SESSION AUTHORIZATION " + (superuser_ ? pg_.app_user() : std::string("DEFAULT"));
            case 8: return "CREATE TEMP TABLE " + next_name("tmp") + " (a int)";
            case 9: return "CREATE TABLE pg_temp." + (rng_() % 2 ? pg_.shadowed() : next_name("tmp")) +
                           " AS SELECT 'leak'::text AS v";
            case 10: return "CREATE TABLE \"pg_temp\"." + next_name("tmp") + " (a int)";
            case 11: return rng_() % 2 ? "CREATE TEMP VIEW " + next_name("tmpv") + " AS SELECT 1 AS a"
                                       : "CREATE FUNCTION pg_temp." + next_name("tmpf") +
                                             "() RETURNS int LANGUAGE sql AS 'SELECT 1'";
            case 12: return "LISTEN " + next_name("chan");
            case 13: {
                const std::string ch = next_name("chan");
                return "LISTEN " + ch + "; NOTIFY " + ch + ", 'for the next borrower?'";
            }
            case 14: {
                const std::string k = std::to_string(rng_() % 1000000);
                return pick({"SELECT pg_catalog.pg_advisory_lock(" + k + ")",
                             "SELECT pg_catalog.pg_try_advisory_lock(" + k + ")",
                             "SELECT pg_catalog.pg_advisory_lock_shared(" + k + ")", "SELECT " + s + ".lock_it(" + k + ")"});
            }
            case 15: return "PREPARE " + next_name("prep") + " AS SELECT 1";
            case 16: return "DECLARE " + next_name("cur") + " CURSOR WITH HOLD FOR SELECT 1";
            case 17: return pick({"SELECT pg_catalog.nextval('" + s + ".seq')",
                                  "INSERT INTO " + s + ".items (note) VALUES ('x')",
                                  "SELECT pg_catalog.setval('" + s + ".seq', 42)"});
            case 18: return "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY";
            case 19: return "SELECT pg_catalog.set_config('search_path', 'pg_temp, public', false)";
            case 20: return "RESET ALL";  // harmless: a fresh session's values
            default: return "SELECT 1";
        }
    }

    // One action: a routed statement, or a client-side setting.
    void action(reservoir::pg::Connection& c, Outcome& out) {
        const int what = static_cast<int>(rng_() % 20);
        if (what == 0) {
            c.set_query_timeout(std::chrono::milliseconds(1 + rng_() % 3));
            out.log += "[set_query_timeout] ";
            return;
        }
        if (what == 1) {  // a protocol-level prepared statement (Parse with a name)
            const std::string name = next_name("pprep");
            out.log += "[PQprepare " + name + "] ";
            ++out.ran;
            PGconn* raw = c.native_handle();
            PQsetnonblocking(raw, 0);  // PQprepare waits for its answer: let it block
            reservoir::pg::detail::ResultPtr r(PQprepare(raw, name.c_str(), "SELECT 1", 0, nullptr));
            PQsetnonblocking(raw, 1);
            if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) ++out.failed;
            return;
        }
        const std::string sql = statement();
        static const char* const routes[] = {"simple", "extended", "do", "function", "pipeline",
                                              "send",   "in_txn",   "left_open"};
        const int route = static_cast<int>(rng_() % 8);
        out.log += std::string("[") + routes[route] + "] " + sql + "; ";
        ++out.ran;
        const bool opened = route >= 6 && c.transaction_status() == PQTRANS_IDLE;
        try {
            if (opened) c.execute("BEGIN");
            switch (route) {
                case 0:
                case 6:
                case 7: c.execute(sql); break;
                case 1: c.query(sql); break;
                case 2: c.execute("DO $iso$ BEGIN EXECUTE " + literal(sql) + "; END $iso$"); break;
                case 3: c.query("SELECT " + pg_.schema() + ".run($1)", sql); break;
                case 4: reservoir::pg::pipeline(c, [&](reservoir::pg::Pipeline& p) { p.query(sql); }); break;
                case 5: {
                    c.send(sql);
                    while (!c.consume()) {
                        pollfd fd{c.socket(), static_cast<short>(POLLIN | (c.wants_write() ? POLLOUT : 0)), 0};
                        ::poll(&fd, 1, 1000);
                    }
                    c.result();
                    break;
                }
            }
            if (opened && route == 6) c.execute("COMMIT");
        } catch (const reservoir::Error&) {  // a QueryError, or a lost connection the pool replaces
            ++out.failed;
            // An error aborts the transaction: end it unless leaving it open is the point.
            if (route != 7 && c.transaction_status() == PQTRANS_INERROR) try {
                    c.execute("ROLLBACK");
                } catch (const reservoir::Error&) {
                }
        }
    }

    const StatePlayground& pg_;
    std::mt19937_64 rng_;
    bool superuser_;
    int counter_ = 0;
};

// A session as the next borrower can see it, by component: every setting in
// pg_settings with its value and source, the custom settings the generator
// uses (a placeholder defined by an earlier SET reads '' where a fresh
// session reads NULL: a residue no reset undoes, reported as "<residue>"
// and compared as ''), current and session user, temporary objects, LISTEN
// channels, advisory locks, prepared statements, cursors, lastval/currval,
// and the client-side query timeout and pending notifications.
using Fingerprint = std::map<std::string, std::string>;

inline Fingerprint fingerprint(reservoir::pg::Connection& c, const StatePlayground& pg, int* residues = nullptr) {
    Fingerprint f;
    // Client side first: a leaked 1 ms query timeout would fail the queries below.
    f["query_timeout"] = std::to_string(c.query_timeout().count());
    int pending = 0;
    while (PGnotify* n = PQnotifies(c.native_handle())) ++pending, PQfreemem(n);
    f["pending notifications"] = std::to_string(pending);
    const auto one = [&](const std::string& sql) {
        const auto r = c.query(sql);
        return r[0][0].get<std::optional<std::string>>().value_or("<null>");
    };
    for (const auto row : c.query("SELECT name, pg_catalog.concat(setting, ' (', source, ')') FROM pg_catalog.pg_settings"))
        f["setting " + row[0].get<std::string>()] = row[1].get<std::string>();
    for (const auto& name : StatePlayground::placeholders()) {
        const auto r = c.query("SELECT pg_catalog.current_setting($1, true)", name);
        const auto value = r[0][0].get<std::optional<std::string>>();
        if (value && value->empty() && residues) ++*residues;
        f["setting " + name] = value.value_or("");
    }
    f["users"] = one("SELECT pg_catalog.concat(current_user, '/', session_user)");
    f["temp objects"] = one(
        "SELECT pg_catalog.concat((SELECT pg_catalog.string_agg(relname::text, ',') FROM pg_catalog.pg_class "
        "WHERE relnamespace = pg_catalog.pg_my_temp_schema()), '/', (SELECT pg_catalog.string_agg(proname::text, ',') "
        "FROM pg_catalog.pg_proc WHERE pronamespace = pg_catalog.pg_my_temp_schema()))");
    f["listen"] = one("SELECT pg_catalog.string_agg(c, ',') FROM pg_catalog.pg_listening_channels() c");
    f["advisory locks"] = one("SELECT pg_catalog.count(*)::text FROM pg_catalog.pg_locks WHERE locktype = 'advisory' "
                              "AND pid = pg_catalog.pg_backend_pid()");
    f["prepared"] = one("SELECT pg_catalog.string_agg(name, ',') FROM pg_catalog.pg_prepared_statements");
    f["cursors"] = one("SELECT pg_catalog.string_agg(name, ',') FROM pg_catalog.pg_cursors");
    f["transaction"] = std::to_string(static_cast<int>(c.transaction_status()));
    for (const std::string& call : {std::string("pg_catalog.lastval()"), "pg_catalog.currval('" + pg.schema() + ".seq')"}) {
        try {
            f[call] = one("SELECT " + call + "::text");
        } catch (const reservoir::pg::QueryError& e) {
            f[call] = "error " + e.sqlstate();  // 55000: not yet defined in this session
        }
    }
    return f;
}

// The components that differ, as "name: fresh -> seen" lines.
inline std::string differences(const Fingerprint& fresh, const Fingerprint& seen, const std::vector<std::string>& skip = {}) {
    std::string out;
    for (const auto& [key, value] : fresh) {
        if (std::find(skip.begin(), skip.end(), key) != skip.end()) continue;
        const auto it = seen.find(key);
        const std::string other = it == seen.end() ? "<missing>" : it->second;
        if (other != value) out += key + ": " + value + " -> " + other + "\n";
    }
    return out;
}

}  // namespace pgtest
