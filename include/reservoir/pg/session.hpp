#pragma once
// What a returned connection's session is reset with, per ResetMode, and the
// statement-text scanner that only ResetMode::trust_sql_text relies on.
//
// The default modes reset after every lease, whatever SQL ran: session state
// can be changed by functions, DO blocks, rules, triggers and escaped
// identifiers that no scan of the text or the command tags can see, so they
// never guess. See docs/tenant-isolation.md for what each mode guarantees.

#include <cstddef>
#include <string_view>

namespace reservoir::pg {

// How the pg context policy cleans a returned connection's session.
enum class ResetMode {
    // DISCARD ALL after every lease: the next borrower gets a session like a
    // fresh one (see the docs for the residues no reset can undo). The default.
    discard_all,
    // After every lease, what DISCARD ALL does except DEALLOCATE ALL and
    // DISCARD PLANS: prepared statements are kept (for applications that
    // cache them), and with them their names and text.
    light,
    // Trusts the application: DISCARD ALL only after a lease whose SQL text
    // or command tags show session state (SET, PREPARE, LISTEN, "temp",
    // set_config, advisory locks...). State changed where the scan cannot see
    // it (a function, a DO block, CREATE TABLE pg_temp.x, lastval()) reaches
    // the next borrower. Opt-in, for applications that never do that.
    trust_sql_text,
    // No session reset (PgBouncer in transaction mode: the server session is
    // not ours). An open transaction is still rolled back.
    none,
};

namespace detail {

// The session resets, as statements sent one by one in a pipeline with one
// sync (context.hpp), so they run as one implicit transaction: DISCARD ALL
// alone (it refuses a transaction block), the light reset together.
// The light reset is DISCARD ALL's documented steps but DEALLOCATE ALL and
// DISCARD PLANS. RESET ALL does not reset the role (PostgreSQL excludes
// `role` and `session_authorization` from it); SET SESSION AUTHORIZATION
// DEFAULT undoes both SET ROLE and SET SESSION AUTHORIZATION and any user may
// run it. RESET ALL runs before the function call, so the call is resolved
// with the reset search_path; it is schema-qualified anyway.
inline constexpr const char* discard_all_statements[] = {"DISCARD ALL"};
inline constexpr const char* light_reset_statements[] = {
    "SET SESSION AUTHORIZATION DEFAULT", "RESET ALL",    "CLOSE ALL",         "UNLISTEN *",
    "SELECT pg_catalog.pg_advisory_unlock_all()", "DISCARD TEMP", "DISCARD SEQUENCES"};

inline char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool identifier_char(char c) noexcept {
    c = ascii_lower(c);
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

// Case-insensitive search for `needle` (lower case); as a whole word if asked.
inline bool contains(std::string_view text, std::string_view needle, bool whole_word) noexcept {
    if (needle.size() > text.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= text.size(); ++i) {
        std::size_t k = 0;
        while (k < needle.size() && ascii_lower(text[i + k]) == needle[k]) ++k;
        if (k != needle.size()) continue;
        if (!whole_word) return true;
        const bool starts = i == 0 || !identifier_char(text[i - 1]);
        const bool ends = i + k == text.size() || !identifier_char(text[i + k]);
        if (starts && ends) return true;
    }
    return false;
}

// The scan of ResetMode::trust_sql_text, and of it alone: it misses state
// changed through functions, DO blocks, rules, triggers, pg_temp-qualified
// names, U&-escaped identifiers and sequences (lastval).
class SessionTracker {
public:
    // State no command tag reveals: temporary objects (CREATE TEMP TABLE and
    // CREATE TABLE AS report "CREATE TABLE" / "SELECT n"), session-level
    // advisory locks and set_config() (both "SELECT n").
    void note_sql(std::string_view sql) noexcept {
        if (!dirty_)
            dirty_ = contains(sql, "temp", true) || contains(sql, "temporary", true) ||
                     contains(sql, "advisory_lock", false) || contains(sql, "set_config", false);
    }

    // SET (RESET only returns a setting to its default: not dirty), PREPARE,
    // LISTEN, DECLARE CURSOR (WITH HOLD outlives the transaction), LOAD.
    void note_tag(std::string_view tag) noexcept {
        if (!dirty_)
            dirty_ = tag == "SET" || tag == "PREPARE" || tag == "LISTEN" || tag == "DECLARE CURSOR" || tag == "LOAD";
    }

    bool dirty() const noexcept { return dirty_; }
    void clear() noexcept { dirty_ = false; }

private:
    bool dirty_ = false;
};

}  // namespace detail

}  // namespace reservoir::pg
