#!/bin/sh
# Runs the health_service example against a pg-sandbox and checks it end to end:
#   health_service_test.sh BINARY SANDBOX_DIR
# starts it with --port 0, reads the port from its stdout, fetches
# /health/database and /metrics with curl, checks their content, sends SIGTERM
# to that process only and checks it exits 0 within 10 s. Every wait is bounded.
set -u

binary=${1:?usage: health_service_test.sh BINARY SANDBOX_DIR}
sandbox=${2:?usage: health_service_test.sh BINARY SANDBOX_DIR}
command -v curl >/dev/null || { echo "FAIL: curl is not installed (apt-get install curl)"; exit 1; }
[ -r "$sandbox/url" ] || { echo "FAIL: no $sandbox/url: is the sandbox running?"; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- service stderr:"; cat "$work/stderr" 2>/dev/null; exit 1; }

DATABASE_URL=$(cat "$sandbox/url") "$binary" --port 0 >"$work/stdout" 2>"$work/stderr" &
pid=$!

# The port, within 10 s.
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$work/stdout")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || fail "the service exited before listening"
  sleep 0.1
done
[ -n "$port" ] || fail "no 'listening on PORT' within 10 s"
echo "service pid $pid listening on $port"

fetch() {  # fetch PATH FILE: prints the HTTP status
  curl -sS --max-time 10 -o "$2" -w '%{http_code}' -D "$2.headers" "http://127.0.0.1:$port$1"
}

status=$(fetch /health/database "$work/health") || fail "curl /health/database failed"
echo "/health/database: HTTP $status"; cat "$work/health"; echo
[ "$status" = 200 ] || fail "/health/database answered $status, not 200"
grep -q '"healthy":true' "$work/health" || fail '/health/database lacks "healthy":true'
for key in healthy status reasons totalConnections idleConnections activeConnections waiting latencyMs; do
  grep -q "\"$key\":" "$work/health" || fail "/health/database lacks the key $key"
done
grep -qi '^content-type: application/json' "$work/health.headers" || fail "/health/database is not application/json"

status=$(fetch /metrics "$work/metrics") || fail "curl /metrics failed"
echo "/metrics: HTTP $status, $(wc -l <"$work/metrics") lines"
[ "$status" = 200 ] || fail "/metrics answered $status, not 200"
grep -q '^reservoir_connections{' "$work/metrics" || fail "/metrics lacks reservoir_connections{"
grep -q '^# TYPE reservoir_connections gauge' "$work/metrics" || fail "/metrics lacks the TYPE line of reservoir_connections"
grep -q '^# TYPE ' "$work/metrics" || fail "/metrics has no TYPE lines"
grep -q 'pool="main"' "$work/metrics" || fail '/metrics lacks the label pool="main"'
grep -qi '^content-type: text/plain; version=0.0.4' "$work/metrics.headers" || fail "/metrics has the wrong content type"

# SIGTERM to that process only; it must exit 0 within 10 s.
kill -TERM "$pid"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "still running 10 s after SIGTERM"
wait "$pid"
rc=$?
pid=""
[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM, not 0"
echo "PASS: both endpoints served, clean exit on SIGTERM"
