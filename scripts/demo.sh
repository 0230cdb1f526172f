#!/usr/bin/env bash
# The local demo: a safecity function handling city events on a local broker.
#
# Starts the example function `fire-logger` (runtime/examples/fire_logger.rs),
# publishes fire and accident events plus two bad ones, shows the handled
# events, the dead letters with their reasons and the metrics, then stops the
# function with SIGTERM (graceful drain).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-rabbitmq.sh
echo "==> building"
cargo build --quiet -p safecity-cli -p safecity-runtime --example fire_logger

http_port=${SAFECITY_DEMO_HTTP_PORT:-19090}
log=$(mktemp)
SAFECITY_HTTP_ADDR="127.0.0.1:${http_port}" SAFECITY_RETRY_DELAYS=500ms \
  target/debug/examples/fire_logger 2>"$log" &
fn_pid=$!
trap 'kill -TERM $fn_pid 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:${http_port}/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:${http_port}/readyz" >/dev/null || { cat "$log"; echo "fire-logger did not become ready"; exit 1; }

safecity=target/debug/safecity
echo "==> publishing city events"
$safecity publish --type fire --count 3 --camera busan-haeundae-01 --class fire
$safecity publish --type accident --count 2 --camera seoul-gangnam-03 --region seoul \
  --latitude 37.4979 --longitude 127.0276 --class car
$safecity publish --type fire --no-detections
$safecity publish-raw --routing-key fire --body 'this is not a CloudEvent'
sleep 1

echo "==> what fire-logger did"
grep -E "seen|dead-letter" "$log" | sed -E 's/\x1b\[[0-9;]*m//g'
echo "==> its dead letters (with reasons)"
$safecity dead-letters fire-logger --limit 10 --remove
echo "==> its metrics (http://127.0.0.1:${http_port}/metrics)"
curl -fs "http://127.0.0.1:${http_port}/metrics" | grep -E '^safecity_events_(succeeded|dead_lettered)_total' || true

echo "==> SIGTERM: graceful drain"
kill -TERM $fn_pid
wait $fn_pid
trap 'rm -f "$log"' EXIT
tail -n 2 "$log" | sed -E 's/\x1b\[[0-9;]*m//g'
echo "==> demo done"
