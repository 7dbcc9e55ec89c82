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

# package:command-or-path that shows it is installed
packages=(python3:python3 python3-venv:/usr/lib/python3/dist-packages/../../python3*/venv
          postgresql:/usr/lib/postgresql redis-server:redis-server)
if [ "$want_test" = 1 ]; then packages+=(openssl:openssl); fi
if [ "$want_bench" = 1 ]; then
  packages+=(prometheus-blackbox-exporter:prometheus-blackbox-exporter)
fi

missing=()
for entry in "${packages[@]}"; do
  pkg=${entry%%:*}; probe=${entry#*:}
  if [[ "$probe" == /* ]]; then
    compgen -G "$probe" >/dev/null && continue
  else
    command -v "$probe" >/dev/null 2>&1 && continue
  fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" && continue
  missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the services it installs; opsplane starts its own private ones.
  for svc in redis-server prometheus-blackbox-exporter; do
    if [[ " ${missing[*]} " == *" $svc "* ]]; then
      as_root systemctl disable --now "$svc" >/dev/null 2>&1 || as_root service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: opsplane needs Python 3.11 or newer; $("$python" --version) found" >&2
  exit 3
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$python" -m venv .venv
fi
extras=""
[ "$want_test" = 1 ] && extras="[test]"
stamp=".venv/.opsplane-installed$extras"
digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "bootstrap: installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$extras"
  echo "$digest" > "$stamp"
fi
