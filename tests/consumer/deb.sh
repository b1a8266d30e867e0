#!/usr/bin/env bash
# shellcheck disable=SC2317  # the way_* functions are called by name, from run_ways
# Builds the Debian package with CPack and checks it without installing it:
#   deb             cpack -G DEB builds libreservoir-dev_VERSION_all.deb; its control
#                   fields (dpkg-deb -I) and its files (dpkg-deb -c: every header,
#                   the CMake package, reservoir.pc with prefix /usr, the copyright) are checked;
#                   dpkg -x unpacks it into WORK_DIR/root
#   deb-cmake       tests/consumer with find_package(reservoir) from WORK_DIR/root/usr
#   deb-pkg-config  tests/consumer with reservoir.pc from WORK_DIR/root, no CMake
# Each consumer runs against a throwaway PostgreSQL (scripts/pg-sandbox).
# One line per step; exit 1 if any fails (its log is shown).
#   tests/consumer/deb.sh SOURCE_DIR WORK_DIR
# CXX picks the compiler (default g++); STEP_TIMEOUT bounds each step (s, default 300).
set -euo pipefail

# shellcheck source=tests/consumer/common.sh
source "$(dirname -- "$0")/common.sh" "$0" "$@"

root=$work/root
version=$(sed -n 's/^#define RESERVOIR_VERSION_STRING "\([0-9.]*\)".*/\1/p' "$src/include/reservoir/version.hpp")
deb=$work/deb-lib/libreservoir-dev_${version}_all.deb

fail() { echo "deb: $*"; return 1; }

way_deb() {
  [[ -n $version ]] || fail "no RESERVOIR_VERSION_STRING in include/reservoir/version.hpp" || return
  rm -rf "${work:?}/deb-lib" "${root:?}"
  bounded cmake -S "$src" -B "$work/deb-lib" -DCMAKE_CXX_COMPILER="$cxx" -DRESERVOIR_INSTALL=ON \
    -DRESERVOIR_BUILD_TESTS=OFF -DRESERVOIR_BUILD_BENCHMARKS=OFF -DRESERVOIR_BUILD_EXAMPLES=OFF || return
  (cd "$work/deb-lib" && bounded cpack -G DEB) || return
  [[ -f $deb ]] || fail "cpack made no $(basename "$deb"): $(ls "$work/deb-lib"/*.deb 2>/dev/null)" || return

  local field expected
  dpkg-deb -I "$deb"
  for field in Package:libreservoir-dev Version:"$version" Architecture:all Depends:libpq-dev Section:libdevel \
    Priority:optional; do
    expected=${field#*:}
    [[ $(dpkg-deb -f "$deb" "${field%%:*}") == "$expected" ]] || fail "${field%%:*} is not $expected" || return
  done
  [[ -n $(dpkg-deb -f "$deb" Maintainer) && -n $(dpkg-deb -f "$deb" Description) ]] ||
    fail "no Maintainer or Description" || return

  local files header
  files=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for header in $(cd "$src/include" && find . -name '*.hpp' | sort); do
    grep -qxF "./usr/include/${header#./}" <<<"$files" || fail "missing header usr/include/${header#./}" || return
  done
  for file in ./usr/share/cmake/reservoir/reservoirConfig.cmake ./usr/share/cmake/reservoir/reservoirConfigVersion.cmake \
    ./usr/share/cmake/reservoir/reservoirTargets.cmake ./usr/share/pkgconfig/reservoir.pc \
    ./usr/share/doc/libreservoir-dev/copyright; do
    grep -qxF "$file" <<<"$files" || fail "missing $file" || return
  done
  # Nothing else: no binaries, no build or test files.
  local other
  other=$(grep -v -e '/$' -e '^\./usr/include/reservoir/.*\.hpp$' -e '^\./usr/share/cmake/reservoir/' \
    -e '^\./usr/share/pkgconfig/reservoir\.pc$' -e '^\./usr/share/doc/libreservoir-dev/copyright$' <<<"$files" || true)
  [[ -z $other ]] || fail "unexpected files: $other" || return

  dpkg -x "$deb" "$root"
  grep -qx 'prefix=/usr' "$root/usr/share/pkgconfig/reservoir.pc" || fail "reservoir.pc's prefix is not /usr" || return
  grep -qx 'License: Expat' "$root/usr/share/doc/libreservoir-dev/copyright" &&
    grep -qxF " $(sed -n 5p "$src/LICENSE")" "$root/usr/share/doc/libreservoir-dev/copyright" ||
    fail "the copyright file does not carry LICENSE" || return
  echo "$(basename "$deb"): $(wc -l <<<"$files") entries, as expected"
}

way_deb-cmake() {
  [[ -d $root/usr ]] || fail "no unpacked package (the deb step failed)" || return
  configure_build_run deb-cmake -DRESERVOIR_CONSUMER_MODE=package -DCMAKE_PREFIX_PATH="$root/usr" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
}

way_deb-pkg-config() {
  [[ -d $root/usr ]] || fail "no unpacked package (the deb step failed)" || return
  local pc=$root/usr/share/pkgconfig own requires deps
  # The .pc names /usr, where the package installs. Unpacked elsewhere, its
  # prefix is redefined for it alone (depth 2: the request, then reservoir.pc);
  # what it requires comes from the system, as it would once installed.
  own=$(PKG_CONFIG_PATH=$pc pkg-config --define-variable=prefix="$root/usr" --maximum-traverse-depth=2 \
    --cflags --libs reservoir) || return
  requires=$(PKG_CONFIG_PATH=$pc pkg-config --print-requires reservoir) || return
  [[ $requires == libpq* ]] || fail "reservoir.pc does not require libpq: '$requires'" || return
  # shellcheck disable=SC2086
  deps=$(pkg-config --cflags --libs $requires) || return
  echo "reservoir: $own; $requires: $deps"
  [[ $own == *"-I$root/usr/include"* ]] || fail "no -I for the unpacked headers" || return
  # shellcheck disable=SC2086  # lists of flags
  compile_run deb-pkg-config $own $deps
}

run_ways deb deb-cmake deb-pkg-config
