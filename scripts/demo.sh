#!/usr/bin/env bash
# A five-minute tour of permafrost against a throwaway PostgreSQL with Mastodon-shaped sample data.
# Nothing outside a temporary folder is touched; the server listens only on a private unix socket.
#   bash scripts/demo.sh            # run the tour, then clean up
#   KEEP=1 bash scripts/demo.sh     # keep the folder, the server running and a good snapshot to play with
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bin/permafrost.js ] || npm run build
PF="node $PWD/dist/bin/permafrost.js"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
DEMO=$(mktemp -d /tmp/permafrost-demo-XXXXXX)
chmod 755 "$DEMO"
mkdir -p "$DEMO/pg" "$DEMO/sock"
AS=()
if [ "$(id -u)" -eq 0 ]; then AS=(runuser -u postgres --); chown postgres: "$DEMO/pg" "$DEMO/sock"; fi
PGUSER_NAME=$([ "$(id -u)" -eq 0 ] && echo postgres || id -un)
cleanup() {
  status=$?
  # KEEP=1 after a tour that went through: the server stays up and the snapshot is whole again.
  if [ -n "${KEEP:-}" ] && [ "$status" -eq 0 ]; then
    echo
    echo "kept $DEMO with its PostgreSQL running and a good snapshot; try the other commands:"
    echo "  export PERMAFROST_CONFIG=$DEMO/permafrost.yaml PGHOST=$DEMO/sock PGUSER=$PGUSER_NAME"
    echo "  $PF status; $PF check; $PF verify latest; $PF backup; $PF list"
    echo "when done: ${AS[*]} $BIN/pg_ctl -D $DEMO/pg/data stop && rm -rf $DEMO"
    return
  fi
  "${AS[@]}" "$BIN/pg_ctl" -D "$DEMO/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$DEMO"; else echo "kept $DEMO (the tour failed; the server is stopped)"; fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. A throwaway PostgreSQL on a unix socket, loaded with Mastodon-shaped sample data"
"${AS[@]}" "$BIN/initdb" -D "$DEMO/pg/data" -U "$PGUSER_NAME" --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
"${AS[@]}" "$BIN/pg_ctl" -D "$DEMO/pg/data" -l "$DEMO/pg/log" -w -o "-k $DEMO/sock -c listen_addresses=''" start >/dev/null
export PGHOST="$DEMO/sock" PGUSER="$PGUSER_NAME"
"$BIN/createdb" mastodon_production
"$BIN/psql" -X -q -d mastodon_production -f test/harness/mastodon-fixture.sql
"$BIN/psql" -X -A -t -d mastodon_production -c "SELECT count(*) || ' statuses, ' || (SELECT count(*) FROM accounts) || ' accounts' FROM statuses"

step "2. A passphrase file (mode 0600) and a config file"
head -c 32 /dev/urandom | base64 > "$DEMO/passphrase"; chmod 600 "$DEMO/passphrase"
cat > "$DEMO/permafrost.yaml" <<YAML
database:
  name: mastodon_production
  host: $DEMO/sock
  user: $PGUSER_NAME
  binDir: $BIN
vault:
  dir: $DEMO/snapshots
  passphraseFile: $DEMO/passphrase
YAML
cat "$DEMO/permafrost.yaml"
export PERMAFROST_CONFIG="$DEMO/permafrost.yaml"

step "3. permafrost backup"
$PF backup
step "4. permafrost list"
$PF list
SNAP=$(ls "$DEMO/snapshots" | grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' | tail -n 1)
ls -l "$DEMO/snapshots/$SNAP"

step "5. permafrost restore latest --database mastodon_restored"
$PF restore latest --database mastodon_restored
"$BIN/psql" -X -A -t -d mastodon_restored -c "SELECT count(*) || ' statuses restored' FROM statuses"

step "6. The same snapshot with stock tools only (no permafrost): gpg -d + pg_restore"
export GNUPGHOME="$DEMO/gnupg"; mkdir -m 700 "$GNUPGHOME"
gpg -d --batch --passphrase-file "$DEMO/passphrase" --output "$DEMO/db.pgdump" "$DEMO/snapshots/$SNAP/database.pgdump.gpg"
"$BIN/createdb" mastodon_stock
"$BIN/pg_restore" --clean --if-exists --dbname mastodon_stock "$DEMO/db.pgdump"
rm -f "$DEMO/db.pgdump"; gpgconf --kill all
"$BIN/psql" -X -A -t -d mastodon_stock -c "SELECT count(*) || ' statuses restored with gpg + pg_restore' FROM statuses"

step "7. A damaged snapshot is refused before the target is touched"
# Flip one byte (writing a fixed byte would be no damage at all when the byte already has that value).
PART="$DEMO/snapshots/$SNAP/database.pgdump.gpg"
BYTE=$(od -An -tu1 -j200 -N1 "$PART" | tr -d ' ')
printf "\\$(printf '%03o' $((BYTE ^ 1)))" | dd of="$PART" bs=1 seek=200 conv=notrunc status=none
$PF restore latest --database mastodon_restored --force || echo "(exit $? — as it should)"
# Put the byte back: the snapshot is whole again (what KEEP=1 leaves to play with).
printf "\\$(printf '%03o' "$BYTE")" | dd of="$PART" bs=1 seek=200 conv=notrunc status=none
$PF check latest >/dev/null && echo "byte put back: permafrost check passes again"
echo; echo "Done. See README.md and docs/ for the manual."
