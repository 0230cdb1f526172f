#!/usr/bin/env bash
# The whole test suite on a fresh machine: broker, Python peers, lints, tests.
# Slow suites run only when SAFECITY_SLOW_TESTS=1 (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-rabbitmq.sh
scripts/python-peers.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --workspace
