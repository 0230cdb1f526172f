#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (Playwright drives it; no
# browser is downloaded from anywhere else), and a Korean font (Debian's
# fonts-nanum) so that the map page's Korean labels render as text, not as
# empty boxes, in the screenshots.
set -euo pipefail
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -d /usr/share/fonts/truetype/nanum ] || missing+=(fonts-nanum)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
