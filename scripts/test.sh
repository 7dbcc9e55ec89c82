#!/usr/bin/env bash
# The whole test suite: install what is missing, lint, type-check, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
.venv/bin/ruff check opsplane shop tests bench
.venv/bin/mypy opsplane shop
exec .venv/bin/python -m pytest "$@"
