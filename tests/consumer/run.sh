#!/usr/bin/env bash
# shellcheck disable=SC2317  # the way_* functions are called by name, from run_ways
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

# shellcheck source=tests/consumer/common.sh
source "$(dirname -- "$0")/common.sh" "$0" "$@"

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
  compile_run single-header -I"$src/single_include" -I"$pq_include" -lpq -pthread
}

way_pkg-config() {
  local flags
  install_into pc-prefix || return
  # Only the installed prefix and the system's own .pc files (libpq's).
  flags=$(PKG_CONFIG_PATH="$work/pc-prefix/share/pkgconfig" pkg-config --cflags --libs reservoir) || return
  echo "pkg-config --cflags --libs reservoir: $flags"
  if [[ " $flags " == *" -std="* ]]; then echo "the .pc must not choose the language standard"; return 1; fi
  # $flags is split on purpose: pkg-config prints a list of flags.
  # shellcheck disable=SC2086
  compile_run pkg-config $flags
}

run_ways package subdirectory fetchcontent single-header pkg-config
