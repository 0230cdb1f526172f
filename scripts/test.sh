#!/usr/bin/env bash
# The whole test suite on a fresh machine: services, Python peers, lints, tests.
# Slow suites (the browser test, long scenes) run only with SAFECITY_SLOW_TESTS=1;
# CI sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
# One clean build of the workspace: incremental artefacts only cost disk here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

scripts/ensure-rabbitmq.sh
scripts/ensure-postgres.sh
scripts/python-peers.sh
scripts/fetch-yolo-assets.sh
scripts/ensure-kubectl.sh
# Prometheus (promtool, the server), npm's Grafana schema; the rules' unit
# tests, the dashboard schema and the manifests' validation.
scripts/check-monitoring.sh
if [ "${SAFECITY_SLOW_TESTS:-}" = "1" ]; then
  scripts/ensure-chromium.sh
  # The offline map's geography (npm world-atlas), for the browser test.
  scripts/fetch-map-data.sh
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --workspace --no-fail-fast
# Stops and restarts the shared broker: runs alone, after everything else.
echo "==> broker fault tests (serial)"
SAFECITY_BROKER_FAULT_TESTS=1 cargo test --workspace --test broker_fault -- --ignored --test-threads=1
