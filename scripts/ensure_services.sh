#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1; start local ones that are installed but
# stopped. Used by `make test`.
set -euo pipefail

pg_ok() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_ok; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "[services] starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_ok && break; sleep 1; done
fi
pg_ok || { echo "[services] PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }

if ! redis_ok; then
  if command -v redis-server >/dev/null; then
    echo "[services] starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  for _ in $(seq 1 30); do redis_ok && break; sleep 1; done
fi
redis_ok || { echo "[services] Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
echo "[services] PostgreSQL and Redis answer"
