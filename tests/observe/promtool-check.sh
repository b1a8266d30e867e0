#!/usr/bin/env bash
# Checks a Prometheus text exposition with `promtool check metrics`.
#
#   tests/observe/promtool-check.sh FILE     check FILE
#   tests/observe/promtool-check.sh [-]      check stdin
#   tests/observe/promtool-check.sh --fetch  find or fetch promtool, print its path (for scripts/setup)
#
# promtool is found as: $PROMTOOL if set, else `promtool` on PATH, else the
# binary from Debian's prometheus package, fetched once with `apt-get download`
# (not installed: no service, no root needed unless the apt lists are missing)
# and unpacked with `dpkg -x` into ${XDG_CACHE_HOME:-$HOME/.cache}/reservoir/promtool.
# Idempotent and safe to run concurrently (the unpacked tree is moved into
# place in one rename).
#
# Exit status: 0 only when promtool exits 0 AND prints nothing. promtool
# reports lint problems (a counter without _total, a missing HELP, a unit
# that is not a base unit...) as text on stdout or stderr, and some versions
# exit 0 for them, so any output at all counts as a failure and is shown.
# 1: the exposition has a problem; 2: usage error or promtool unavailable.
set -euo pipefail

die() { echo "promtool-check: $*" >&2; exit 2; }

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/reservoir/promtool"

temps=()
cleanup() { [ ${#temps[@]} -eq 0 ] || rm -rf "${temps[@]}"; }
trap cleanup EXIT

# These set $promtool (not printed: a command substitution would run them in a
# subshell, whose EXIT trap would not clean up).
promtool=""

fetch_promtool() {
  local bin="$cache_dir/usr/bin/promtool"
  if [ -x "$bin" ]; then promtool="$bin"; return 0; fi
  command -v apt-get >/dev/null || die "promtool not found: set PROMTOOL, put promtool on PATH, or use a Debian system (apt-get) to fetch it"
  command -v dpkg >/dev/null || die "promtool not found and dpkg is missing to unpack Debian's prometheus package"
  mkdir -p "$(dirname "$cache_dir")"
  local work
  work="$(mktemp -d "$(dirname "$cache_dir")/promtool.XXXXXX")"
  temps+=("$work")
  # apt-get download writes into the current directory. Run as root, it warns
  # that the _apt user cannot write there; that is harmless.
  if ! (cd "$work" && apt-get download -qq prometheus >/dev/null 2>"$work/apt.log"); then
    if [ "$(id -u)" -eq 0 ]; then
      echo "promtool-check: apt-get download failed; running apt-get update" >&2
      apt-get update -qq >/dev/null
      (cd "$work" && apt-get download -qq prometheus >/dev/null 2>"$work/apt.log") ||
        { cat "$work/apt.log" >&2; die "could not download Debian's prometheus package"; }
    else
      cat "$work/apt.log" >&2
      die "could not download Debian's prometheus package (run 'sudo apt-get update', or set PROMTOOL)"
    fi
  fi
  local debs=("$work"/prometheus_*.deb)
  [ -f "${debs[0]}" ] || die "apt-get download produced no prometheus_*.deb"
  dpkg -x "${debs[0]}" "$work/tree"
  [ -x "$work/tree/usr/bin/promtool" ] || die "the prometheus package has no usr/bin/promtool"
  # Another run may have won the race: then keep its tree.
  mv -T "$work/tree" "$cache_dir" 2>/dev/null || true
  [ -x "$bin" ] || die "could not put promtool into $cache_dir"
  promtool="$bin"
}

find_promtool() {
  if [ -n "${PROMTOOL:-}" ]; then
    [ -x "$PROMTOOL" ] || die "PROMTOOL=$PROMTOOL is not an executable"
    promtool="$PROMTOOL"
  elif command -v promtool >/dev/null; then
    promtool="$(command -v promtool)"
  else
    fetch_promtool
  fi
}

[ $# -le 1 ] || die "usage: $0 [FILE | - | --fetch]"
arg="${1:--}"
if [ "$arg" = "--fetch" ]; then
  find_promtool
  echo "$promtool"
  exit 0
fi
if [ "$arg" != "-" ] && [ ! -r "$arg" ]; then die "cannot read $arg"; fi

find_promtool

input="$arg"
if [ "$arg" = "-" ]; then
  input="$(mktemp)"
  temps+=("$input")
  cat >"$input"
fi
[ -s "$input" ] || { echo "promtool-check: the exposition is empty" >&2; exit 1; }

status=0
output="$("$promtool" check metrics <"$input" 2>&1)" || status=$?
if [ "$status" -ne 0 ] || [ -n "$output" ]; then
  echo "promtool-check: promtool check metrics failed (exit $status; any output counts as a failure):" >&2
  [ -n "$output" ] && printf '%s\n' "$output" >&2
  exit 1
fi
