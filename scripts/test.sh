#!/usr/bin/env bash
# Runs every test suite (the import-layer contracts, unit, functional, e2e in Chromium, the PCI scan) from
# scratch:
#
#   bash scripts/test.sh [pytest args...]      e.g.  bash scripts/test.sh tests/unit -x
#
# The suites run in parallel with pytest-xdist (-n $PAYGATE_TEST_JOBS, default 3: two cores, but most tests
# wait on Redis, PostgreSQL, subprocesses and Chromium; PAYGATE_TEST_JOBS=0 runs serially). Each xdist worker
# has its own Redis databases, PostgreSQL template and e2e stack (tests/conftest.py, tests/services.py). The
# PCI scan (tests/test_zz_pci_scan.py) must see what every worker left, so the parallel pass deselects it and
# a second, serial pytest pass runs it alone once every worker has finished, after whatever subset the
# arguments chose too.
#
# On a fresh Debian 12 machine, as root, it installs what is missing (redis-server, postgresql,
# chromium, fonts-liberation), creates .venv, starts a private Redis and PostgreSQL on free loopback
# ports with their files under a new /tmp state directory, runs pytest, and stops both servers on exit.
# Exit status: the parallel pass's if it failed, else the scan's; "no tests collected" (5) counts as
# success. The state directory is removed after a green run and kept (path printed) after a red one. It
# never runs `playwright install`: the e2e suite drives Debian's chromium (CHROMIUM_PATH).
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
  if [ -d "$STATE/screenshots" ]; then  # the e2e run's screenshots for review (e2e/accessibility.py)
    rm -rf build/screenshots && mkdir -p build && cp -r "$STATE/screenshots" build/screenshots
    log "screenshots of every page state (en, ar; 375 and 1280 px) in $PAYGATE_ROOT/build/screenshots"
  fi
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

JOBS="${PAYGATE_TEST_JOBS:-3}"
PCI_SCAN=tests/test_zz_pci_scan.py
XDIST=()
# xdist's default scheduling (--dist load): each test goes to a free worker. A worker that gets e2e tests
# starts its own e2e stack, and a module-scoped fixture is set up once per worker that runs that module.
# (--dist loadgroup would keep such tests together, but pytest-xdist 3.8 ignores xdist_group marks on
# pytest 9.2: https://github.com/pytest-dev/pytest-xdist/issues/1386)
if [ "$JOBS" != 0 ]; then XDIST=(-n "$JOBS"); fi

phase "pytest (-n $JOBS)"
rc=0
# the caller's arguments come last: their -n (e.g. -n 0) wins over ours
.venv/bin/python -m pytest -q "${XDIST[@]}" --deselect "$PCI_SCAN" "$@" || rc=$?
phase_done
if [ "$rc" -eq 5 ]; then
  log "no tests collected: counted as success"
  rc=0
fi

phase "PCI scan"
scan_rc=0
# after every worker has finished; no cache writes, so --lf/--ff still see the run above
.venv/bin/python -m pytest -q -p no:cacheprovider "$PCI_SCAN" || scan_rc=$?
phase_done
if [ "$rc" -eq 0 ]; then rc="$scan_rc"; fi
log "$(awk -v a="$TOTAL_START" -v b="$(_now)" -v r="$rc" 'BEGIN { printf "%-24s %7.1f s (exit %d)", "total", b - a, r }')"
exit "$rc"
