#!/usr/bin/env bash
# Install what opsplane needs on a Debian machine: Debian packages that are missing, a
# virtual environment in .venv and the Python packages. Safe to run again: it only does
# what is not done yet.
#   scripts/bootstrap.sh          for the demo
#   scripts/bootstrap.sh --test   also what the test suite needs
#   scripts/bootstrap.sh --bench  also what the benchmarks need
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0; want_bench=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --bench) want_test=1; want_bench=1 ;;
    *) echo "bootstrap: unknown option $arg" >&2; exit 3 ;;
  esac
done

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
need() {  # need PACKAGE TEST...: the Debian package is wanted unless TEST succeeds
  local pkg=$1; shift
  "$@" >/dev/null 2>&1 && return 0
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" && return 0
  missing+=("$pkg")
}
python=${PYTHON:-python3}
need python3 command -v "$python"
need python3-venv "$python" -c 'import ensurepip, venv'
need postgresql compgen -G '/usr/lib/postgresql/*/bin/initdb'
need redis-server command -v redis-server
need nginx test -x /usr/sbin/nginx  # the demo's proxy in front of the shop, through which deploys move traffic
need pgbackrest command -v pgbackrest  # PostgreSQL backups, WAL archiving and point-in-time recovery
need restic command -v restic  # Redis snapshots, file trees and logical dumps, encrypted, local and S3
need pgbouncer command -v pgbouncer  # the demo's pool in front of PostgreSQL; failover pauses and repoints it
# pg_stat_statements, the db report's slow queries (Debian's postgresql-15 provides postgresql-contrib-15)
need postgresql-contrib compgen -G '/usr/lib/postgresql/*/lib/pg_stat_statements.so'
if [ "$want_test" = 1 ]; then
  need chromium command -v chromium  # the dashboard's browser test drives it headless
  need prometheus test -x /usr/bin/promtool  # the PromQL differential tests; brings prometheus too
  need prometheus-alertmanager test -x /usr/bin/amtool  # amtool checks the exported alertmanager.yml
  need haproxy test -x /usr/sbin/haproxy  # the second traffic driver: weights through its runtime API
fi
if [ "$want_bench" = 1 ]; then
  need prometheus-blackbox-exporter command -v prometheus-blackbox-exporter
  need zstd command -v zstd  # bench/backup.py's baseline: pg_dump's files compressed with zstd
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the services it installs; opsplane starts its own private ones.
  for svc in redis-server prometheus prometheus-alertmanager prometheus-blackbox-exporter nginx haproxy \
             pgbouncer; do
    if [[ " ${missing[*]} " == *" $svc "* ]]; then
      as_root systemctl disable --now "$svc" >/dev/null 2>&1 || as_root service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: opsplane needs Python 3.11 or newer; $("$python" --version) found" >&2
  exit 3
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$python" -m venv .venv
fi
extras="[demo]"
[ "$want_test" = 1 ] && extras="[test]"
stamp=".venv/.opsplane-installed$extras"
digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
current() { [ -f "$1" ] && [ "$(cat "$1")" = "$digest" ]; }
# What the tests install includes what the demo needs.
if ! current "$stamp" && ! current ".venv/.opsplane-installed[test]"; then
  echo "bootstrap: installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  # setuptools tells every editable install, as a warning, that a folder named like the
  # package could shadow it; that is how this checkout is meant to work, so it is not shown.
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q -e ".$extras"
  echo "$digest" > "$stamp"
fi
