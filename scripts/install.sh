#!/usr/bin/env bash
# Installs everything permafrost and its test suite need on a fresh Debian machine:
# the Debian packages (PostgreSQL, gpg, Redis, Syncthing, …; in the tests nix-bin evaluates
# nix/module.nix, systemd-analyze checks its units, dash and shellcheck check restore.sh, strace
# kills a rekey at an exact rename, rclone copies a snapshot out of a bucket as the runbook says) and the
# npm dependencies (which also builds dist/),
# then links the CLI into /usr/local/bin so `permafrost` is on PATH (the systemd units run it from there).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(postgresql postgresql-client gnupg isal time redis-server redis-tools syncthing iproute2 util-linux chromium nix-bin systemd dash shellcheck strace rclone)
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
# `permafrost` on PATH for root, other users and systemd (whose default PATH has /usr/local/bin):
# a symlink to this checkout's built CLI, so a rebuild or `git pull && npm ci` needs no relinking.
BIN_DIR="${PERMAFROST_BIN_DIR:-/usr/local/bin}"
chmod 0755 dist/bin/permafrost.js
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO mkdir -p "$BIN_DIR"
$SUDO ln -sfn "$PWD/dist/bin/permafrost.js" "$BIN_DIR/permafrost"
echo "permafrost $("$BIN_DIR/permafrost" --version) installed as $BIN_DIR/permafrost -> $PWD/dist/bin/permafrost.js"
