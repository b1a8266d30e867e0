#!/usr/bin/env bash
# clang-tidy over the library's headers, warnings as errors: the checks of
# .clang-tidy, through tests/tidy/tidy_headers.cpp, reporting on include/reservoir/
# only (HeaderFilterRegex). Needs clang-tidy 14 (Debian: clang-tidy) and libpq-dev.
#   tests/tidy/run.sh [SOURCE_DIR]
set -euo pipefail

src=$(realpath -- "${1:-$(dirname "$0")/../..}")
tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
[[ -n $tidy ]] || { echo "tidy: clang-tidy not found; install it with: apt-get install clang-tidy" >&2; exit 1; }
pq_include=$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)

echo "tidy: $("$tidy" --version | grep -m1 -o 'version [0-9.]*'), checks from $src/.clang-tidy"
# The checks of SOURCE_DIR/.clang-tidy, from wherever this runs.
rc=0
out=$("$tidy" --quiet --config-file="$src/.clang-tidy" --warnings-as-errors='*' "$src/tests/tidy/tidy_headers.cpp" -- \
  -std=c++20 -Wall -Wextra -Wpedantic -I"$src/include" -I"$pq_include" 2>&1) || rc=$?
grep -v '^[0-9]* warnings\? generated\.$' <<<"$out" || true
if ((rc)); then echo "tidy: findings (or a compile error) above" >&2; exit 1; fi
echo "tidy: no findings"
