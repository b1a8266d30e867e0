# Shared by run.sh and deb.sh (sourced, not run): the command line, a
# shellcheck shell=bash
# throwaway PostgreSQL for the consumer to query, time bounds, and the loop
# that runs each way and prints one line for it.
#   source common.sh "$0" "$@"   sets src, work, consumer, cxx, limit, url
(($# == 3)) || { echo "usage: $1 SOURCE_DIR WORK_DIR" >&2; exit 2; }
script_name=$(basename -- "$1")
src=$(realpath -- "$2")
mkdir -p "$3"
work=$(realpath -- "$3")
consumer=$src/tests/consumer
cxx=${CXX:-g++}
limit=${STEP_TIMEOUT:-300}
[[ -f $src/CMakeLists.txt && -f $consumer/main.cpp ]] ||
  { echo "$script_name: $src is not a reservoir checkout" >&2; exit 2; }

sandbox=$work/pg-sandbox
trap '"$src/scripts/pg-sandbox" stop "$sandbox" >/dev/null 2>&1 || true' EXIT
trap 'exit 143' INT TERM HUP  # so that the EXIT trap stops the server
if ! timeout --kill-after=10 120 "$src/scripts/pg-sandbox" start "$sandbox" >/dev/null 2>"$work/pg-sandbox.log"; then
  echo "consumer: the PostgreSQL sandbox did not start:" >&2; cat "$work/pg-sandbox.log" >&2; exit 1
fi
# shellcheck disable=SC2034  # used by the sourcing script
url=$(<"$sandbox/url")

bounded() {  # bounded CMD...: CMD, killed after STEP_TIMEOUT seconds
  local rc=0
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  if ((rc == 124 || rc == 137)); then echo "$script_name: timed out after $limit s: $*"; fi
  return "$rc"
}

# Each way starts from empty directories and logs to WORK_DIR/NAME.log.
configure_build_run() {  # configure_build_run NAME CMAKE_ARGS...
  local name=$1; shift
  bounded cmake -S "$consumer" -B "$work/$name" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug "$@" &&
    bounded cmake --build "$work/$name" -j 2 &&
    bounded "$work/$name/consumer" "$url"
}

# The consumer built with these flags alone (no CMake), then run.
compile_run() {  # compile_run NAME FLAG...
  local name=$1; shift
  mkdir -p "$work/$name"
  bounded "$cxx" -std=c++20 -Wall -Wextra -Wpedantic -Werror "$consumer/main.cpp" -o "$work/$name/consumer" "$@" &&
    bounded "$work/$name/consumer" "$url"
}

run_ways() {  # run_ways WAY...: way_WAY for each, one line each; exit 1 if any fails (its log is shown)
  local way start failed=0
  for way in "$@"; do
    rm -rf "${work:?}/$way"
    start=$SECONDS
    if "way_$way" >"$work/$way.log" 2>&1; then
      printf 'consumer: %-14s ok   %3d s  %s\n' "$way" $((SECONDS - start)) "$(tail -n 1 "$work/$way.log")"
    else
      printf 'consumer: %-14s FAIL %3d s  (log: %s)\n' "$way" $((SECONDS - start)) "$work/$way.log"
      tail -n 40 "$work/$way.log" | sed 's/^/    /'
      failed=1
    fi
  done
  exit $failed
}
