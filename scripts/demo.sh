#!/usr/bin/env bash
# The demo: install what is missing, then run `opsplane demo` (Ctrl-C stops everything).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/opsplane demo "$@"
