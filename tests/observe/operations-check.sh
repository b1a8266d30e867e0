#!/usr/bin/env bash
# Checks the files in docs/operations/ that people copy.
#
#   operations-check.sh rules SOURCE_DIR
#       promtool check rules on the alert rules, then promtool test rules with
#       tests/observe/alert-rules.test.yml (each alert fires when it should,
#       and only then)
#   operations-check.sh names SOURCE_DIR UNIT_TESTS WORK_DIR
#       the dashboard is JSON, and every metric, label and library label value
#       in it and in the alert rules is one to_prometheus really emits: the
#       exposition is captured from the unit test "promtool accepts the
#       exposition" (UNIT_TESTS, the reservoir_unit_tests binary), not listed
#       by hand. Then the same check on a copy with one name misspelt must fail.
#
# promtool comes from promtool-check.sh --fetch (Debian's prometheus package,
# unpacked, not installed). Exit 0 when every check passes.
set -euo pipefail

here=$(cd "$(dirname -- "$0")" && pwd)
usage() { sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
(($# >= 2)) || usage
mode=$1 src=$(cd "$2" && pwd)
rules=$src/docs/operations/reservoir-alerts.yml
dashboard=$src/docs/operations/reservoir-dashboard.json

case $mode in
  rules)
    (($# == 2)) || usage
    promtool=$("$here/promtool-check.sh" --fetch)
    timeout 60 "$promtool" check rules "$rules"
    # rule_files in the test file are relative to it.
    (cd "$here" && timeout 60 "$promtool" test rules alert-rules.test.yml)
    ;;
  names)
    (($# == 4)) || usage
    unit_tests=$3 work=$4
    rm -rf "$work" && mkdir -p "$work/exposition"
    RESERVOIR_PROMTOOL_CHECK="$here/capture-exposition.sh" RESERVOIR_EXPOSITION_DIR="$work/exposition" \
      timeout 60 "$unit_tests" "promtool accepts the exposition" >"$work/unit-test.log" 2>&1 ||
      { cat "$work/unit-test.log" >&2; echo "operations-check: could not capture the exposition" >&2; exit 1; }
    shopt -s nullglob
    captured=("$work"/exposition/*)
    ((${#captured[@]} > 0)) || { echo "operations-check: the unit test wrote no exposition" >&2; exit 1; }
    python3 "$here/metric-names-check.py" --exposition "${captured[@]}" --rules "$rules" --dashboard "$dashboard"
    # The check must catch a wrong name: the same files with one misspelt.
    sed 's/reservoir_waiting/reservoir_waiters/g' "$dashboard" >"$work/misspelt.json"
    if python3 "$here/metric-names-check.py" --exposition "${captured[@]}" --dashboard "$work/misspelt.json" \
      >/dev/null 2>&1; then
      echo "operations-check: a dashboard naming reservoir_waiters passed the check" >&2
      exit 1
    fi
    ;;
  *) usage ;;
esac
