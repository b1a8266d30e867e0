#pragma once
// Session state that a borrower can leave behind, as seen from the client:
// the command tags the server returned and a scan of the SQL text sent. It is
// deliberately conservative: a false "dirty" costs one reset, a missed one
// leaks state to the next borrower.

#include <cstddef>
#include <string_view>

namespace reservoir::pg {

// How the pg context policy cleans a session that was left dirty.
enum class ResetMode {
    // DISCARD ALL: everything, prepared statements included. The default.
    discard_all,
    // Settings, role, cursors, LISTEN, advisory locks and temporary tables,
    // but prepared statements are kept (for applications that cache them).
    light,
    // No session reset (PgBouncer in transaction mode: the server session is
    // not ours). An open transaction is still rolled back.
    none,
};

namespace detail {

// The light reset. RESET ALL does not reset the role: in PostgreSQL 15 `role`
// and `session_authorization` are excluded from RESET ALL (checked against a
// 15.18 server; the RESET docs only say "all settable run-time parameters").
// SET SESSION AUTHORIZATION DEFAULT undoes both SET ROLE and SET SESSION
// AUTHORIZATION and any user may run it; DISCARD ALL starts with it too.
inline constexpr const char* light_reset_sql =
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP";
inline constexpr const char* discard_all_sql = "DISCARD ALL";  // must run outside a transaction block

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
