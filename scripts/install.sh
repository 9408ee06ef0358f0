#!/usr/bin/env bash
# Installs everything permafrost and its test suite need on a fresh Debian machine:
# the Debian packages (PostgreSQL, gpg, Redis, Syncthing, …) and the npm dependencies (which also builds dist/).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(postgresql postgresql-client gnupg isal time redis-server redis-tools syncthing iproute2 util-linux chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
npm ci
