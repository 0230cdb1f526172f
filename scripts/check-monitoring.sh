#!/usr/bin/env bash
# The monitoring checks (manifests/README.md, "Checks"):
#
#   scripts/check-monitoring.sh               rules, dashboard, manifests (offline after the installs)
#   scripts/check-monitoring.sh --city [FILE] + every query against the running local city
#                                             (FILE: its discovery file, default $TMPDIR/safecity-city.json)
#   scripts/check-monitoring.sh --local-city  + starts a local city (scripts/up.sh) in its own
#                                             virtual host, proves every query on it, stops it
#
# Installs what it needs, idempotently: the Python peers (.venv), Debian's
# prometheus (promtool and the server), Node.js/npm if absent (Debian's); the
# npm packages go to .venv/grafana-schema (check_dashboard.py).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
city_file="${2:-${TMPDIR:-/tmp}/safecity-city.json}"
wait_seconds="${SAFECITY_MONITORING_WAIT:-80}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  if [ -z "${apt_updated:-}" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

scripts/python-peers.sh
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  echo "==> installing prometheus (Debian: promtool and the server)"
  apt_install prometheus
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "==> installing nodejs and npm (Debian)"
  apt_install nodejs npm
fi

echo "==> alerts and recording rules (promtool check rules, promtool test rules)"
.venv/bin/python manifests/tests/check_rules.py
echo "==> Grafana dashboard (Grafana's dashboard schema, PromQL, metric names)"
.venv/bin/python manifests/tests/check_dashboard.py
echo "==> manifests (kustomize, strict schemas, monitoring contract)"
.venv/bin/python manifests/tests/validate.py

case "$mode" in
  "") ;;
  --city)
    echo "==> every query against the running local city ($city_file)"
    .venv/bin/python manifests/tests/check_queries.py --city "$city_file" --wait "$wait_seconds"
    ;;
  --local-city)
    # A city of its own: its own temporary folder (discovery file) and
    # virtual host, so that it neither finds nor disturbs another running city.
    work=$(mktemp -d -t safecity-monitoring-XXXXXX)
    vhost="safecity-monitoring-$$"
    echo "==> starting a local city (vhost $vhost; log $work/up.log)"
    .venv/bin/python manifests/tests/check_queries.py --city "$work/safecity-city.json" \
      --wait-for-city 900 --wait "$wait_seconds" &
    check=$!
    TMPDIR="$work" scripts/up.sh --vhost "$vhost" >"$work/up.log" 2>&1 &
    city=$!
    status=0
    wait "$check" || status=$?
    kill -INT "$city" 2>/dev/null || true
    wait "$city" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
      echo "the local city's log: $work/up.log" >&2
      exit "$status"
    fi
    rm -rf "$work"
    ;;
  *)
    echo "usage: $0 [--city [FILE] | --local-city]" >&2
    exit 2
    ;;
esac
echo "==> monitoring: all checks passed"
