#!/usr/bin/env bash
# Runs the whole product locally and prints a working checkout link:
#
#   bash scripts/demo.sh [--port 8000] [--emulator-port 8010]
#
# Installs what is missing (as root), creates .venv, then hands over to `paygate demo`: a private Redis,
# the database migrations, a "demo" API client, the Genesys emulator, gunicorn and the delivery worker.
# Ctrl-C stops everything.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PAYGATE_ROOT"
ensure_system_packages
ensure_venv
exec .venv/bin/paygate demo "$@"
