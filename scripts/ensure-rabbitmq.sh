#!/usr/bin/env bash
# Makes sure a local RabbitMQ broker is running with the management plugin:
# installs Debian's rabbitmq-server if absent, starts it if stopped.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "==> installing rabbitmq-server"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq rabbitmq-server >/dev/null
fi

if ! as_root rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
  echo "==> starting rabbitmq-server"
  as_root rabbitmq-plugins enable --offline rabbitmq_management >/dev/null
  as_root rabbitmq-server -detached
  for _ in $(seq 1 90); do
    as_root rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
    sleep 1
  done
  as_root rabbitmq-diagnostics -q check_running >/dev/null
fi

if ! as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -x rabbitmq_management >/dev/null; then
  echo "==> enabling rabbitmq_management"
  as_root rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
echo "==> RabbitMQ is running on 127.0.0.1:5672 (management on :15672)"
