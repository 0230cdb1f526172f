#!/usr/bin/env bash
# The local city demo, played once: the scenes to the end, the summary and
# its checks (exit 1 if one fails). See scripts/up.sh and docs/demo.md.
exec "$(dirname "$0")/up.sh" --once "$@"
