#!/usr/bin/env bash
# Makes sure a local RabbitMQ broker is running with the management and
# prometheus plugins (:15672, :15692): installs Debian's rabbitmq-server if absent, starts it if stopped.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "==> installing rabbitmq-server"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq rabbitmq-server >/dev/null
fi

if ! as_root rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
  echo "==> starting rabbitmq-server"
  as_root rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus >/dev/null
  as_root rabbitmq-server -detached
  for _ in $(seq 1 90); do
    as_root rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
    sleep 1
  done
  as_root rabbitmq-diagnostics -q check_running >/dev/null
fi

for plugin in rabbitmq_management rabbitmq_prometheus; do
  if ! as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -x "$plugin" >/dev/null; then
    echo "==> enabling $plugin"
    as_root rabbitmq-plugins enable "$plugin" >/dev/null
  fi
done
echo "==> RabbitMQ is running on 127.0.0.1:5672 (management on :15672, metrics on :15692)"
