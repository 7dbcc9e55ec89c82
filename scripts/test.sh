#!/usr/bin/env bash
# The whole test suite: install what is missing, lint, type-check, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
.venv/bin/ruff check opsplane shop tests bench
.venv/bin/mypy opsplane shop
# Two workers: the tests that run the whole shop in real time on one, the rest beside them
# (tests/conftest.py); `-n 0` after the script's name runs everything in this process.
exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
