#!/usr/bin/env bash
# Installs the Python test peers (tests/python-requirements.txt) into .venv,
# only when the requirements changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=tests/python-requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing Python test peers"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi
