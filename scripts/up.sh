#!/usr/bin/env bash
# The local city: `safecity up` (cli/src/city). This wrapper only does what
# needs root or a package manager, then builds and hands over:
#   RabbitMQ (installed and started if needed, management plugin on), the
#   YOLO assets (sha256-checked), kubectl for kustomize, a release build.
# Arguments go to `safecity up` (e.g. --once).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-rabbitmq.sh
scripts/fetch-yolo-assets.sh
scripts/ensure-kubectl.sh
echo "==> building the city (release)"
cargo build --release --locked --quiet --bins \
  -p safecity-cli -p safecity-scaler -p safecity-motion-gate -p safecity-cctv-sim \
  -p safecity-detector -p safecity-map-pin -p safecity-fire-post -p safecity-caption
exec target/release/safecity up "$@"
