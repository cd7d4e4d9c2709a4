#!/usr/bin/env bash
# Runs every test suite (the import-layer contracts, unit, functional, e2e in Chromium, the PCI scan) from
# scratch:
#
#   bash scripts/test.sh [pytest args...]      e.g.  bash scripts/test.sh tests/unit -x
#
# On a fresh Debian 12 machine, as root, it installs what is missing (redis-server, postgresql,
# chromium, fonts-liberation), creates .venv, starts a private Redis and PostgreSQL on free loopback
# ports with their files under a new /tmp state directory, runs pytest, and stops both servers on exit.
# Exit status: pytest's, with "no tests collected" (5) counted as success. The state directory is
# removed after a green run and kept (path printed) after a red one. It never runs `playwright install`:
# the e2e suite drives Debian's chromium (CHROMIUM_PATH).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PAYGATE_ROOT"
TOTAL_START=$(_now)

phase "system packages"
ensure_system_packages
phase_done

phase "python venv"
ensure_venv
phase_done

phase "redis + postgresql"
STATE="$(mktemp -d /tmp/paygate-test.XXXXXX)"
chmod 755 "$STATE"   # the postgres user must be able to reach its data directory
cleanup() {
  local rc=$?
  stop_redis || true
  stop_postgres || true
  if [ "$rc" -eq 0 ] && [ -z "${PAYGATE_KEEP_STATE:-}" ]; then
    rm -rf "$STATE"
  else
    log "test state kept in $STATE"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
REDIS_PORT="$(free_port)"
start_redis "$REDIS_PORT" "$STATE/redis"
PG_PORT="$(free_port)"
start_postgres "$PG_PORT" "$STATE/pg"
phase_done

export PAYGATE_TEST_STATE_DIR="$STATE"
export PAYGATE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export PAYGATE_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || echo /usr/bin/chromium)}"
export CHROMIUM_PATH

phase "import layers"
.venv/bin/lint-imports --no-cache >/dev/null || { .venv/bin/lint-imports --no-cache; exit 1; }
phase_done

phase "pytest"
rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?
phase_done
if [ "$rc" -eq 5 ]; then
  log "no tests collected: counted as success"
  rc=0
fi
log "$(awk -v a="$TOTAL_START" -v b="$(_now)" -v r="$rc" 'BEGIN { printf "%-24s %7.1f s (exit %d)", "total", b - a, r }')"
exit "$rc"
