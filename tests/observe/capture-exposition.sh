#!/usr/bin/env bash
# Stands in for promtool-check.sh in the unit test "promtool accepts the
# exposition" (through RESERVOIR_PROMTOOL_CHECK): keeps a copy of each
# exposition the library wrote, in $RESERVOIR_EXPOSITION_DIR, so that checks
# can compare files against the metrics to_prometheus really emits.
#   capture-exposition.sh FILE
set -euo pipefail
[[ $# -eq 1 && -n ${RESERVOIR_EXPOSITION_DIR:-} ]] ||
  { echo "usage: RESERVOIR_EXPOSITION_DIR=DIR $0 FILE" >&2; exit 2; }
cp -- "$1" "$RESERVOIR_EXPOSITION_DIR/"
