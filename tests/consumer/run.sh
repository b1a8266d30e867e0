#!/usr/bin/env bash
# Builds tests/consumer, a project outside reservoir, from scratch five ways and
# runs each build against a throwaway PostgreSQL (scripts/pg-sandbox):
#   package       cmake --install into WORK_DIR/prefix, then find_package(reservoir CONFIG)
#   subdirectory  add_subdirectory(SOURCE_DIR)
#   fetchcontent  FetchContent: a file:// git URL of SOURCE_DIR at its HEAD commit
#                 (committed files only, as a user's fetch would see them), or
#                 SOURCE_DIR as is when it is not a git work tree
#   single-header g++ -std=c++20 with single_include/ alone, no CMake
#   pkg-config    cmake --install into WORK_DIR/pc-prefix, then g++ -std=c++20 with
#                 `pkg-config --cflags --libs reservoir` from there alone, no CMake
# One line per way; exit 1 if any fails (its log is shown).
#   tests/consumer/run.sh SOURCE_DIR WORK_DIR
# CXX picks the compiler (default g++); STEP_TIMEOUT bounds each step (s, default 300).
set -euo pipefail

(($# == 2)) || { echo "usage: $0 SOURCE_DIR WORK_DIR" >&2; exit 2; }
src=$(realpath -- "$1")
mkdir -p "$2"
work=$(realpath -- "$2")
consumer=$src/tests/consumer
cxx=${CXX:-g++}
limit=${STEP_TIMEOUT:-300}
[[ -f $src/CMakeLists.txt && -f $consumer/main.cpp ]] || { echo "run.sh: $src is not a reservoir checkout" >&2; exit 2; }

sandbox=$work/pg-sandbox
trap '"$src/scripts/pg-sandbox" stop "$sandbox" >/dev/null 2>&1 || true' EXIT
trap 'exit 143' INT TERM HUP  # so that the EXIT trap stops the server
if ! timeout --kill-after=10 120 "$src/scripts/pg-sandbox" start "$sandbox" >/dev/null 2>"$work/pg-sandbox.log"; then
  echo "consumer: the PostgreSQL sandbox did not start:" >&2; cat "$work/pg-sandbox.log" >&2; exit 1
fi
url=$(<"$sandbox/url")

bounded() {  # bounded CMD...: CMD, killed after STEP_TIMEOUT seconds
  local rc=0
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  if ((rc == 124 || rc == 137)); then echo "run.sh: timed out after $limit s: $*"; fi
  return "$rc"
}

# Each way starts from empty directories and logs to WORK_DIR/NAME.log.
configure_build_run() {  # configure_build_run NAME CMAKE_ARGS...
  local name=$1; shift
  bounded cmake -S "$consumer" -B "$work/$name" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug "$@" &&
    bounded cmake --build "$work/$name" -j 2 &&
    bounded "$work/$name/consumer" "$url"
}

install_into() {  # install_into NAME: reservoir configured in WORK_DIR/NAME-lib, installed into WORK_DIR/NAME
  local name=$1
  rm -rf "${work:?}/$name-lib" "${work:?}/$name"
  bounded cmake -S "$src" -B "$work/$name-lib" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_INSTALL_PREFIX="$work/$name" \
    -DRESERVOIR_INSTALL=ON -DRESERVOIR_BUILD_TESTS=OFF -DRESERVOIR_BUILD_BENCHMARKS=OFF \
    -DRESERVOIR_BUILD_EXAMPLES=OFF &&
    bounded cmake --build "$work/$name-lib" -j 2 &&
    bounded cmake --install "$work/$name-lib"
}

way_package() {
  install_into prefix &&
    configure_build_run package -DRESERVOIR_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
}

way_subdirectory() {
  configure_build_run subdirectory -DRESERVOIR_CONSUMER_MODE=subdirectory -DRESERVOIR_SOURCE_DIR="$src"
}

way_fetchcontent() {
  local head
  if head=$(git -C "$src" rev-parse --verify -q HEAD 2>/dev/null) &&
    [[ $(git -C "$src" rev-parse --show-toplevel 2>/dev/null) == "$src" ]]; then
    echo "fetching file://$src at $head"
    configure_build_run fetchcontent -DRESERVOIR_CONSUMER_MODE=fetchcontent \
      -DRESERVOIR_FETCH_GIT="file://$src" -DRESERVOIR_FETCH_TAG="$head" -DFETCHCONTENT_QUIET=OFF
  else
    echo "not a git work tree: fetching SOURCE_DIR as is"
    configure_build_run fetchcontent -DRESERVOIR_CONSUMER_MODE=fetchcontent -DRESERVOIR_SOURCE_DIR="$src"
  fi
}

way_single-header() {
  local pq_include
  pq_include=$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
  mkdir -p "$work/single-header"
  bounded "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror -I"$src/single_include" -I"$pq_include" \
    "$consumer/main.cpp" -o "$work/single-header/consumer" -lpq -pthread &&
    bounded "$work/single-header/consumer" "$url"
}

way_pkg-config() {
  local flags
  install_into pc-prefix || return
  # Only the installed prefix and the system's own .pc files (libpq's).
  flags=$(PKG_CONFIG_PATH="$work/pc-prefix/share/pkgconfig" pkg-config --cflags --libs reservoir) || return
  echo "pkg-config --cflags --libs reservoir: $flags"
  if [[ " $flags " == *" -std="* ]]; then echo "the .pc must not choose the language standard"; return 1; fi
  mkdir -p "$work/pkg-config"
  # $flags is split on purpose: it is a list of flags.
  # shellcheck disable=SC2086
  bounded "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror "$consumer/main.cpp" -o "$work/pkg-config/consumer" \
    $flags &&
    bounded "$work/pkg-config/consumer" "$url"
}

failed=0
for way in package subdirectory fetchcontent single-header pkg-config; do
  rm -rf "${work:?}/$way"
  start=$SECONDS
  if "way_$way" >"$work/$way.log" 2>&1; then
    printf 'consumer: %-13s ok   %3d s  %s\n' "$way" $((SECONDS - start)) "$(tail -n 1 "$work/$way.log")"
  else
    printf 'consumer: %-13s FAIL %3d s  (log: %s)\n' "$way" $((SECONDS - start)) "$work/$way.log"
    tail -n 40 "$work/$way.log" | sed 's/^/    /'
    failed=1
  fi
done
exit $failed
