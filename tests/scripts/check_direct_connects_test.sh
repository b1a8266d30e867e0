#!/usr/bin/env bash
# scripts/check-direct-connects on fixture trees it writes to a temporary
# directory: one without direct libpq connects, one with, and --allow.
#   tests/scripts/check_direct_connects_test.sh [PATH_TO_check-direct-connects]
set -euo pipefail

check=$(realpath -- "${1:-$(dirname "$0")/../../scripts/check-direct-connects}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 passes=0

# expect NAME WANTED_STATUS WANTED_STDOUT CHECK_ARGS...  (run in $tmp; stdout compared whole)
expect() {
  local name=$1 want_status=$2 want_out=$3 status=0 out
  shift 3
  out=$(cd "$tmp" && "$check" "$@" 2>"$tmp/stderr") || status=$?
  if [[ $status == "$want_status" && $out == "$want_out" ]]; then
    passes=$((passes + 1))
  else
    failures=$((failures + 1))
    echo "FAIL: $name: status $status (want $want_status)"
    echo "  stdout:"; sed 's/^/    /' <<<"$out"
    echo "  wanted:"; sed 's/^/    /' <<<"$want_out"
    echo "  stderr:"; sed 's/^/    /' "$tmp/stderr"
  fi
}

# A tree that borrows from the pool: mentions that are not direct calls.
mkdir -p "$tmp/clean/src/db" "$tmp/clean/docs"
cat >"$tmp/clean/src/db/pool.cpp" <<'EOF'
#include <reservoir/reservoir.hpp>
// We used to call PQconnectdb(conninfo) here, once per request.
/* The old code:
 *   PGconn* c = PQsetdbLogin(host, port, nullptr, nullptr, db, user, pw);
 */
reservoir::PgPool& pool() { return reservoir::global<reservoir::PgPool>::get(); }
int MyPQconnectdbCounter(int n) { return n; }   // a longer name is not libpq's
void* address = nullptr;  // PQconnectStart is only named here
EOF
printf 'PGconn* c = PQconnectdb("dbname=x");\n' >"$tmp/clean/docs/notes.txt"  # not a C or C++ source

expect "clean tree" 0 "" clean

# A tree with offenders: every function, in several kinds of file and directories.
mkdir -p "$tmp/bad/src/orders" "$tmp/bad/src/users" "$tmp/bad/tools" "$tmp/bad/with space"
cat >"$tmp/bad/src/orders/repo.cpp" <<'EOF'
#include <libpq-fe.h>
PGconn* open_orders() {
    return PQconnectdb("dbname=orders");
}
PGconn* open_orders_params(const char* const* k, const char* const* v) {
    PGconn* c = PQconnectdbParams (k, v, 0);  // a space before the parenthesis
    return c;
}
EOF
cat >"$tmp/bad/src/users/cache.hpp" <<'EOF'
#pragma once
#include <libpq-fe.h>
inline PGconn* start(const char* ci) { return PQconnectStart(ci); }
inline PGconn* start_params(const char* const* k, const char* const* v) {
    return ::PQconnectStartParams(k, v, 0);
}
EOF
cat >"$tmp/bad/tools/legacy.c" <<'EOF'
#include <libpq-fe.h>
PGconn* legacy(void) { return PQsetdbLogin("h", "5432", NULL, NULL, "db", "u", "p"); }
PGconn* older(void) { return PQsetdb("h", "5432", NULL, NULL, "db"); }
EOF
printf 'auto* c = PQconnectdb("");\n' >"$tmp/bad/with space/x.cc"

all_bad='bad/src/orders/repo.cpp:3: return PQconnectdb("dbname=orders");
bad/src/orders/repo.cpp:6: PGconn* c = PQconnectdbParams (k, v, 0);  // a space before the parenthesis
bad/src/users/cache.hpp:3: inline PGconn* start(const char* ci) { return PQconnectStart(ci); }
bad/src/users/cache.hpp:5: return ::PQconnectStartParams(k, v, 0);
bad/tools/legacy.c:2: PGconn* legacy(void) { return PQsetdbLogin("h", "5432", NULL, NULL, "db", "u", "p"); }
bad/tools/legacy.c:3: PGconn* older(void) { return PQsetdb("h", "5432", NULL, NULL, "db"); }
bad/with space/x.cc:1: auto* c = PQconnectdb("");'
sorted() { sort <<<"$1"; }

# The file order is the file system's: compare sorted.
out=$(cd "$tmp" && "$check" bad 2>/dev/null) && status=0 || status=$?
if [[ $status == 1 && $(sort <<<"$out") == $(sorted "$all_bad") ]]; then
  passes=$((passes + 1))
else
  failures=$((failures + 1))
  echo "FAIL: offenders: status $status (want 1)"; sed 's/^/    /' <<<"$out"
fi
if grep -q '7 direct libpq connect(s) in 4 file(s)' <(cd "$tmp" && "$check" bad 2>&1 >/dev/null || true); then
  passes=$((passes + 1))
else
  failures=$((failures + 1)); echo "FAIL: the summary line"
fi

# --allow: a file, a directory (with a trailing slash), a glob, and ./ prefixes.
expect "one file flagged" 1 "bad/tools/legacy.c:2: PGconn* legacy(void) { return PQsetdbLogin(\"h\", \"5432\", NULL, NULL, \"db\", \"u\", \"p\"); }
bad/tools/legacy.c:3: PGconn* older(void) { return PQsetdb(\"h\", \"5432\", NULL, NULL, \"db\"); }" \
  bad/tools/legacy.c
expect "allow a file and directories" 1 'bad/src/users/cache.hpp:3: inline PGconn* start(const char* ci) { return PQconnectStart(ci); }
bad/src/users/cache.hpp:5: return ::PQconnectStartParams(k, v, 0);' \
  --allow bad/src/orders/ --allow ./bad/tools --allow "bad/with space/x.cc" bad
expect "allow everything" 0 "" --allow 'bad/src/*' --allow=bad/tools --allow 'bad/with space' ./bad
expect "a directory name is not a prefix of another" 1 'bad/tools/legacy.c:2: PGconn* legacy(void) { return PQsetdbLogin("h", "5432", NULL, NULL, "db", "u", "p"); }
bad/tools/legacy.c:3: PGconn* older(void) { return PQsetdb("h", "5432", NULL, NULL, "db"); }' \
  --allow bad/too bad/tools
expect "clean and allowed trees together" 0 "" --allow bad clean bad

# Usage errors.
expect "--allow without a path" 2 "" --allow
expect "a missing path" 2 "" no-such-dir
expect "an unknown option" 2 "" --frobnicate

echo "check-direct-connects: $passes passed, $failures failed"
((failures == 0))
