# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/demo.sh. Source it; every function is idempotent.
#
#   ensure_system_packages     apt-get install what is missing of redis-server, postgresql, chromium,
#                              fonts-liberation (needs root; skipped when everything is present)
#   ensure_venv                .venv with the project installed editable with its dev extra (pytest, pytest-xdist,
#                              playwright...); re-installed whenever pyproject.toml's content changes
#   ensure_catalogs            compiles the translation catalogs (.po → .mo) that changed; ensure_venv runs it
#   free_port                  prints a free TCP port on 127.0.0.1
#   start_redis PORT DIR       a private redis-server on 127.0.0.1:PORT with its files under DIR and 64
#                              databases (the tests give each pytest-xdist worker two of them)
#   stop_redis
#   start_postgres PORT DIR    a throwaway PostgreSQL 15 cluster (trust auth, user postgres) under DIR,
#                              listening on 127.0.0.1:PORT; DIR must be traversable by the postgres user
#   stop_postgres
#   phase NAME / phase_done    timing lines: "[paygate] NAME ... done in 1.2 s"

PAYGATE_ROOT="${PAYGATE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
PGBIN="${PGBIN:-/usr/lib/postgresql/15/bin}"
_PHASE_NAME=""
_PHASE_START=0

log() { printf '[paygate] %s\n' "$*" >&2; }

_now() { LC_ALL=C printf '%s' "${EPOCHREALTIME:-$(date +%s)}"; }

phase() {
  _PHASE_NAME="$1"
  _PHASE_START=$(_now)
}

phase_done() {
  log "$(awk -v a="$_PHASE_START" -v b="$(_now)" -v n="$_PHASE_NAME" 'BEGIN { printf "%-24s %7.1f s", n, b - a }')"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else
    log "need root for: $*"; return 1
  fi
}

ensure_system_packages() {
  local need=()
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  [ -x "$PGBIN/postgres" ] && [ -x "$PGBIN/initdb" ] || need+=(postgresql)
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  dpkg-query -W -f='${Status}' fonts-liberation 2>/dev/null | grep -q 'ok installed' || need+=(fonts-liberation)
  if [ "${#need[@]}" -eq 0 ]; then
    return 0
  fi
  log "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q >/dev/null
  as_root apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
}

ensure_venv() {
  local venv="$PAYGATE_ROOT/.venv" stamp="$PAYGATE_ROOT/.venv/.paygate-installed"
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
    rm -f "$stamp"
  fi
  local want
  want="$(sha256sum "$PAYGATE_ROOT/pyproject.toml" | cut -d' ' -f1)"
  # the stamp holds the hash of the pyproject.toml last installed: any change to it (a new test dependency
  # such as pytest-xdist, whatever the files' times) re-installs
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing the project into .venv (pip install -e '.[dev]')"
    local out rc=0
    out="$(mktemp)"
    (cd "$PAYGATE_ROOT" && "$venv/bin/pip" install -q --disable-pip-version-check -e '.[dev]') >"$out" 2>&1 || rc=$?
    # the local wheel mirrors make pip print a harmless "Location ... is ignored" warning per package
    grep -v "^WARNING: Location 'file:" "$out" >&2 || true
    rm -f "$out"
    if [ "$rc" -ne 0 ]; then log "pip install failed (exit $rc)"; return "$rc"; fi
    printf '%s\n' "$want" >"$stamp"
  fi
  ensure_catalogs
}

ensure_catalogs() {
  # the translation catalogs (kernel/translations/*/LC_MESSAGES/messages.po) compiled into the messages.mo files
  # the app reads; rewrites only the stale ones (docs/api.md, "Languages")
  (cd "$PAYGATE_ROOT" && "$PAYGATE_ROOT/.venv/bin/python" -m paygate.cli i18n compile >/dev/null)
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_until() {  # wait_until SECONDS command...  (polls every 0.1 s)
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
    sleep 0.1
  done
}

_REDIS_DIR=""
start_redis() {  # start_redis PORT DIR
  local port="$1" dir="$2"
  mkdir -p "$dir"
  if [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
    _REDIS_DIR="$dir"; return 0
  fi
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$dir" --save '' \
    --appendonly yes --appendfsync no --databases 64 --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  _REDIS_DIR="$dir"
  wait_until 10 redis-cli -h 127.0.0.1 -p "$port" ping \
    || { log "redis did not start (see $dir/redis.log)"; return 1; }
}

stop_redis() {
  local dir="${1:-$_REDIS_DIR}" pid
  [ -n "$dir" ] && [ -f "$dir/redis.pid" ] || return 0
  pid="$(cat "$dir/redis.pid")"
  kill "$pid" 2>/dev/null || true
  wait_until 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}

_PG_DIR=""
start_postgres() {  # start_postgres PORT DIR
  local port="$1" dir="$2"
  local data="$dir/data" sock="$dir/sock"
  mkdir -p "$dir"
  chmod 755 "$dir"
  if [ ! -f "$data/PG_VERSION" ]; then
    if [ "$(id -u)" -eq 0 ]; then
      install -d -o postgres -g postgres -m 700 "$data"
      install -d -o postgres -g postgres -m 755 "$sock"
      runuser -u postgres -- "$PGBIN/initdb" -D "$data" -A trust -U postgres --no-sync >/dev/null
    else
      mkdir -p "$data" "$sock"
      "$PGBIN/initdb" -D "$data" -A trust -U postgres --no-sync >/dev/null
    fi
  fi
  _PG_DIR="$dir"
  if [ -f "$data/postmaster.pid" ] && _pg_ctl -D "$data" status >/dev/null 2>&1; then
    return 0
  fi
  _pg_ctl -D "$data" -l "$data/server.log" -w -t 30 \
    -o "-p $port -k $sock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null || { log "postgres did not start (see $data/server.log)"; return 1; }
}

_pg_ctl() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$PGBIN/pg_ctl" "$@"; else "$PGBIN/pg_ctl" "$@"; fi
}

stop_postgres() {
  local dir="${1:-$_PG_DIR}"
  [ -n "$dir" ] && [ -f "$dir/data/postmaster.pid" ] || return 0
  _pg_ctl -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}
