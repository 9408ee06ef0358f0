#!/bin/sh
# restore.sh: written by permafrost beside its snapshots (next to RESTORE.md) so that a copy of the
# vault alone (the backup device's folder, a USB disk) is enough to bring the database back, with
# stock tools only: gpg, psql, pg_restore, sha256sum, awk and coreutils. No node, no permafrost.
#
#   sh restore.sh --passphrase-file FILE [--identity FILE] [--signer FINGERPRINT] [--database NAME]
#                 [--force [--drop-previous]] [--jobs N] [SNAPSHOT]
#
# Restores the newest snapshot of this folder (or SNAPSHOT, a folder name like 2026-11-26T07-40-00Z)
# onto the PostgreSQL server that libpq's variables point at (PGHOST, PGPORT, PGUSER, PGPASSFILE),
# as a superuser. Run by root (`sh restore.sh …`) against the local server, it reads the vault and the
# passphrase as root and runs psql and pg_restore as the postgres OS user (peer authentication, Debian's
# default); `--passphrase-file -` reads the passphrase from standard input:
#   0. checks that every manifest it reads (a delta-mode snapshot's: every one of its chain) was
#      signed by the key whose fingerprint --signer pins (gpg --verify with signer.pub.asc, the
#      signer's public key beside this script, in a throwaway GNUPGHOME; only the pinned
#      fingerprint is trusted, never the key file alone). A vault whose manifests are signed
#      (signer.pub.asc here, a manifest.json.sig, or "signedBy" in a manifest) is refused without
#      --signer; --insecure-no-signature-check restores it anyway, knowingly. A vault that is not
#      signed restores with a warning that nothing proves who wrote it;
#   1. checks every part's size and SHA-256 against manifest.json (of a delta-mode snapshot: of every
#      snapshot of its chain) before decrypting anything;
#   2. decrypts into a private folder (umask 077, mktemp -d under $TMPDIR), removed on every exit;
#   3. creates the roles the database needs that the server lacks (never alters an existing role);
#   4. restores into a new database <NAME>_incoming, created with the source's owner, template0,
#      encoding and locale, and checks it against the manifest (row counts, newest migration);
#      a delta-mode snapshot (its manifest has "chain") is restored from its whole chain, followed
#      by "reference" back to its base: the base's schema pre-data, the base's rows, each delta in
#      order (gpg -d FILE | psql, never decrypted to disk), the schema's post-data, then every
#      table's row count and content hash checked against the snapshot's manifest;
#   5. renames it to NAME in one step; an existing NAME (only with --force when it holds tables)
#      is kept as NAME_before_<YYYYMMDD>_<HHMMSS> (UTC) until you drop it (the command is printed),
#      or dropped right after the swap with --drop-previous.
# --identity FILE imports a secret key (for snapshots encrypted to a recipient) into a throwaway
# GNUPGHOME inside the private folder; --passphrase-file then unlocks that key if it has one.
#
# Exit codes:
#   0    restored
#   1    a program or the server failed (missing tool, server down, not a superuser, pg_restore
#        failed, check against the manifest failed, other sessions on the target, no disk space)
#   2    bad flags, no such snapshot (or a path instead of a snapshot name), a name PostgreSQL
#        cannot take, the target holds tables and --force was not given, or a signed vault and
#        neither --signer nor --insecure-no-signature-check
#   3    integrity: a manifest unsigned, signed by another key than --signer pins, or edited after
#        it was signed (nothing decrypted, nothing run), manifest.json unreadable, a part's size or SHA-256 differs from the manifest,
#        wrong passphrase or key, a part that does not decrypt, a snapshot of a delta's chain
#        missing or not continuing it, a restored table whose count or hash differs from the manifest
#   129, 130, 143  stopped by SIGHUP, SIGINT, SIGTERM (nothing decrypted is left behind)
set -u
umask 077

me=restore.sh
VAULT=$(cd "$(dirname "$0")" && pwd -P) || exit 1
WORK=
CHILD=
INCOMING_MADE=

say() { printf '%s: %s\n' "$me" "$*" >&2; }
die() {
  code=$1
  shift
  say "$*"
  exit "$code"
}

cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$CHILD" ]; then
    # shellcheck disable=SC2086 # one pid, or gpg's and psql's of a stream
    kill -TERM $CHILD 2>/dev/null
    # shellcheck disable=SC2086
    wait $CHILD 2>/dev/null
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    [ -d "$WORK/gnupg" ] && gpgconf --homedir "$WORK/gnupg" --kill all >/dev/null 2>&1
    [ -d "$WORK/verify" ] && gpgconf --homedir "$WORK/verify" --kill all >/dev/null 2>&1
    rm -rf -- "$WORK"
  fi
  # A half-restored copy was never swapped in; the next run would drop it anyway.
  if [ -n "$INCOMING_MADE" ]; then
    # shellcheck disable=SC2086 # PGAS is empty or setpriv's words
    printf 'DROP DATABASE IF EXISTS :"db" WITH (FORCE);\n' | $PGAS psql -X -q --no-password -d postgres -v db="$INCOMING_MADE" >/dev/null 2>&1
  fi
}

on_signal() {
  say "stopped by SIG$1 before the restore finished; the target database was not touched and nothing decrypted is left; run again."
  exit "$2"
}

trap cleanup EXIT
trap 'on_signal HUP 129' HUP
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# run ERRFILE CMD…: CMD in the background (stderr to ERRFILE) and wait, so that a signal is handled
# at once, not after CMD; a redirection on the call itself would also swallow the trap's message.
run() {
  err=$1
  shift
  "$@" 2>"$err" &
  CHILD=$!
  wait "$CHILD"
  rc=$?
  CHILD=
  return "$rc"
}

usage() {
  cat <<'EOF'
usage: sh restore.sh --passphrase-file FILE [--identity FILE] [--signer FINGERPRINT] [--database NAME] [--force [--drop-previous]] [--jobs N] [SNAPSHOT]

Restores the newest (or the named) snapshot of this folder onto the PostgreSQL server that libpq's
variables (PGHOST, PGPORT, PGUSER, PGPASSFILE) point at, roles and owner included, as a superuser.
Run as root against the local server, psql and pg_restore run as the postgres OS user (peer
authentication); "--passphrase-file -" reads the passphrase from standard input. E.g.:
  sh restore.sh --passphrase-file /root/passphrase                  # as root
  sh restore.sh --passphrase-file /root/passphrase --force 2026-11-26T07-40-00Z
  sh restore.sh --identity /root/secret.asc --signer 0123456789ABCDEF0123456789ABCDEF01234567
  runuser -u postgres -- sh restore.sh --passphrase-file - < /root/passphrase   # postgres reads this folder
--signer FINGERPRINT: the signing key's fingerprint (40 hex digits) that `permafrost init` and
`permafrost doctor` printed and you kept with your key; every manifest must be signed by it.
--insecure-no-signature-check: restore a signed vault without checking who signed it.
A delta-mode snapshot is restored from its chain back to its base, all of it in this folder.
Read RESTORE.md beside this script for the whole procedure (Redis, secrets, media, Mastodon).
EOF
}

PASSFILE=
IDENTITY=
DATABASE=
FORCE=
DROP_PREVIOUS=
JOBS=1
SNAPSHOT=
PIN=
INSECURE=
while [ $# -gt 0 ]; do
  case $1 in
    --passphrase-file)
      [ $# -ge 2 ] || die 2 "--passphrase-file needs a file; see --help."
      PASSFILE=$2
      shift 2
      ;;
    --identity)
      [ $# -ge 2 ] || die 2 "--identity needs a file; see --help."
      IDENTITY=$2
      shift 2
      ;;
    --database)
      [ $# -ge 2 ] || die 2 "--database needs a name; see --help."
      DATABASE=$2
      shift 2
      ;;
    --signer)
      [ $# -ge 2 ] || die 2 "--signer needs the signing key's fingerprint (40 hex digits); see --help."
      PIN=$2
      shift 2
      ;;
    --insecure-no-signature-check)
      INSECURE=1
      shift
      ;;
    --jobs)
      [ $# -ge 2 ] || die 2 "--jobs needs a number; see --help."
      JOBS=$2
      shift 2
      ;;
    --force)
      FORCE=1
      shift
      ;;
    --drop-previous)
      DROP_PREVIOUS=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*) die 2 "unknown option $1; see --help." ;;
    *)
      [ -z "$SNAPSHOT" ] || die 2 "more than one snapshot named ($SNAPSHOT, $1); name one."
      SNAPSHOT=$1
      shift
      ;;
  esac
done

[ -n "$PASSFILE" ] || [ -n "$IDENTITY" ] || die 2 "give --passphrase-file FILE (the vault's passphrase) or --identity FILE (a secret key); see --help."
[ -z "$PASSFILE" ] || [ "$PASSFILE" = - ] || [ -r "$PASSFILE" ] ||
  die 2 "cannot read the passphrase file $PASSFILE; check the path and that this user may read it (or run as root: the PostgreSQL tools then run as postgres), or pass it on standard input: --passphrase-file - < FILE."
[ -z "$IDENTITY" ] || [ -r "$IDENTITY" ] || die 2 "cannot read the identity file $IDENTITY; check the path and that this user may read it."
[ -z "$DROP_PREVIOUS" ] || [ -n "$FORCE" ] || die 2 "--drop-previous only goes with --force (it drops the database --force replaces); see --help."
case $JOBS in '' | *[!0-9]* | 0) die 2 "--jobs takes a positive number, not \"$JOBS\"." ;; esac
if [ -n "$PIN" ]; then
  [ -z "$INSECURE" ] || die 2 "--signer checks every signature and --insecure-no-signature-check skips them; pass one of them."
  # gpg prints fingerprints in groups of four: the spaces and the case do not matter.
  given=$PIN
  PIN=$(printf '%s' "$PIN" | tr -d ' ' | tr 'abcdef' 'ABCDEF')
  case $PIN in '' | *[!0-9A-F]*) die 2 "--signer takes the signing key's full fingerprint (40 hex digits), not \"$given\"." ;; esac
  [ "${#PIN}" = 40 ] || die 2 "--signer takes the signing key's full fingerprint (40 hex digits, as \`permafrost doctor\` prints it), not a shorter key id."
fi

for tool in gpg gpgconf psql pg_restore sha256sum awk mktemp mkfifo df date; do
  command -v "$tool" >/dev/null 2>&1 || die 1 "$tool is not installed; on Debian: apt-get install gnupg postgresql-client coreutils gawk, then run again."
done

# Run by root against the local server (PGUSER unset, PGHOST unset or a socket folder): root reads
# the vault and the passphrase, which postgres may not, and psql and pg_restore run as the postgres
# OS user, as peer authentication (Debian's default) requires.
PGAS=
if [ "$(id -u)" = 0 ] && [ -z "${PGUSER:-}" ] && case ${PGHOST:-/} in /*) true ;; *) false ;; esac && id -u postgres >/dev/null 2>&1; then
  command -v setpriv >/dev/null 2>&1 || die 1 "setpriv is not installed (it runs psql as postgres); on Debian: apt-get install util-linux, then run again."
  PGAS="setpriv --reuid=postgres --regid=postgres --init-groups --"
  case $PASSFILE in '' | - | /*) ;; *) PASSFILE="$PWD/$PASSFILE" ;; esac
  case $IDENTITY in '' | /*) ;; *) IDENTITY="$PWD/$IDENTITY" ;; esac
  # postgres may not enter root's working folder; every path from here on is absolute.
  cd / || exit 1
fi

# --- the snapshot and its manifest ----------------------------------------------------------------

ID_GLOB='[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]-[0-9][0-9]-[0-9][0-9]Z'
if [ -z "$SNAPSHOT" ] || [ "$SNAPSHOT" = latest ]; then
  # shellcheck disable=SC2086 # the glob is meant to expand
  SNAPSHOT=$(cd "$VAULT" && for d in $ID_GLOB; do [ -f "$d/manifest.json" ] && printf '%s\n' "$d"; done | sort | tail -n 1)
  [ -n "$SNAPSHOT" ] || die 2 "no snapshot in $VAULT (a folder like 2026-11-26T07-40-00Z with a manifest.json); run this script from the vault folder's copy."
  soon=$(date -u -d "@$(($(date +%s) + 300))" +%Y-%m-%dT%H-%M-%SZ)
  if [ "$(printf '%s\n%s\n' "$SNAPSHOT" "$soon" | sort | tail -n 1)" = "$SNAPSHOT" ]; then
    die 2 "the newest snapshot $SNAPSHOT is dated in the future (a clock that ran ahead), so \"newest\" is not clear; name the snapshot to restore."
  fi
fi
# A trailing slash is what tab completion adds; any other one makes a path, and this script restores
# only from the folder it sits in: taking the last part of /other/vault/ID would restore this vault's ID.
SNAPSHOT=${SNAPSHOT%/}
case $SNAPSHOT in */*) die 2 "\"$SNAPSHOT\" is a path, but restore.sh restores only snapshots of the folder it sits in ($VAULT); run the restore.sh of that other vault, or give a snapshot name (like 2026-11-26T07-40-00Z)." ;; esac
# shellcheck disable=SC2254 # ID_GLOB is a pattern
case $SNAPSHOT in $ID_GLOB) ;; *) die 2 "\"$SNAPSHOT\" is not a snapshot name (like 2026-11-26T07-40-00Z); list them with: ls $VAULT" ;; esac
SNAP="$VAULT/$SNAPSHOT"
[ -f "$SNAP/manifest.json" ] || die 2 "no snapshot $SNAPSHOT in $VAULT (no $SNAP/manifest.json); list them with: ls $VAULT"

base=${TMPDIR:-/tmp}
# A folder an earlier run left when it was killed with SIGKILL (no trap runs then) holds plaintext:
# remove every one of ours whose process is gone before making a new one.
for old in "$base"/permafrost-*-0-*; do
  if [ ! -d "$old" ] || { [ ! -O "$old" ] && [ -z "$PGAS" ]; }; then continue; fi
  oldpid=${old##*/permafrost-}
  oldpid=${oldpid%%-*}
  case $oldpid in '' | *[!0-9]*) continue ;; esac
  kill -0 "$oldpid" 2>/dev/null && continue
  rm -rf "$old" && say "removed $old, left with decrypted files by a run that was killed"
done
# The name matches permafrost's private temp folders, so its sweep removes one a SIGKILL left.
WORK=$(mktemp -d "$base/permafrost-$$-0-XXXXXX") || die 1 "cannot create a private folder in $base; set TMPDIR to a writable folder with room for the decrypted dump."
# pg_restore (as postgres) reads the decrypted dump in it; root still reads everything.
[ -z "$PGAS" ] || chown postgres "$WORK" || die 1 "cannot give $WORK to postgres; set TMPDIR to a local folder and run again."
if [ "$PASSFILE" = - ]; then
  [ ! -t 0 ] || die 2 "--passphrase-file - reads the passphrase from standard input, which is a terminal here; give it a file: --passphrase-file - < /root/passphrase."
  cat >"$WORK/passphrase" || die 2 "cannot read the passphrase from standard input."
  [ -s "$WORK/passphrase" ] || die 2 "standard input held no passphrase (--passphrase-file - reads its first line); give it a file: --passphrase-file - < /root/passphrase."
  PASSFILE="$WORK/passphrase"
fi

# manifest.json as permafrost writes it (JSON.stringify with 2 spaces: one key per line) flattened
# to "path<TAB>type:value" lines; any other layout is refused rather than guessed at.
flatten() {
  awk '
    function fail() { bad = 1; exit 1 }
    function here(k,   p, i) { p = ""; for (i = 2; i <= depth; i++) p = p name[i] "."; return p k }
    function unescape(s,   out, i, c) {
      out = ""
      for (i = 1; i <= length(s); i++) { c = substr(s, i, 1); if (c == "\\") c = substr(s, ++i, 1); out = out c }
      return out
    }
    # JSON holds no raw control character (JSON.stringify escapes them); one would split these lines.
    /[\001-\037]/ { fail() }
    {
      line = $0
      sub(/^ +/, "", line)
      if (NR == 1) { if (line != "{") fail(); depth = 1; arr[1] = 0; next }
      if (depth == 0) fail()
      if (line ~ /^[]}],?$/) { depth--; next }
      if (arr[depth]) key = idx[depth]++
      else {
        if (!match(line, /^"[A-Za-z0-9_.-]+": /)) fail()
        key = substr(line, 2, RLENGTH - 4)
        line = substr(line, RLENGTH + 1)
      }
      sub(/,$/, "", line)
      if (line == "{" || line == "[") { depth++; name[depth] = key; arr[depth] = (line == "["); idx[depth] = 0; next }
      if (line == "{}" || line == "[]") next
      if (line ~ /^"[^"\\]*"$/) { print here(key) "\ts:" substr(line, 2, length(line) - 2); next }
      # \" and \\ are read here (a table name may hold a quote).
      if (line ~ /^"([^"\\]|\\["\\])*"$/) { print here(key) "\ts:" unescape(substr(line, 2, length(line) - 2)); next }
      # Any other escape (a table name with a tab, a line break): the JSON string as it is, for psql to read.
      if (line ~ /^"([^"\\]|\\["\\\/bfnrt]|\\u[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F])*"$/) { print here(key) "\tj:" line; next }
      if (line ~ /^".*"$/) { print here(key) "\te:"; next }
      if (line ~ /^-?[0-9][0-9.eE+-]*$/) { print here(key) "\tn:" line; next }
      if (line == "null") { print here(key) "\tz:"; next }
      if (line == "true" || line == "false") { print here(key) "\tb:" line; next }
      fail()
    }
    END { if (bad || depth != 0) exit 1 }
  ' "$1"
}
# --- who wrote it: the manifests' signatures against the pinned signer ----------------------------

SIGNER_FILE="$VAULT/signer.pub.asc"
# Why this vault says its manifests are signed ("" when nothing here says so). Anyone who can write
# to the folder can remove all of it: that is why the admin's --signer, not this guess, is the check.
signed_because() {
  if [ -f "$SIGNER_FILE" ]; then
    printf '%s' "it holds the signer's public key signer.pub.asc"
    return
  fi
  # shellcheck disable=SC2086 # the glob is meant to expand
  for d in "$VAULT"/$ID_GLOB; do
    if [ -f "$d/manifest.json.sig" ]; then
      printf '%s' "snapshot ${d##*/} has a manifest.json.sig"
      return
    fi
  done
}
unpinned() {
  die 2 "this vault's manifests are signed ($1), so restore.sh checks who wrote them before it decrypts anything: pass --signer FINGERPRINT, the signing key's fingerprint that \`permafrost init\` and \`permafrost doctor\` printed and you kept with your key (not one read from this folder, which anyone who can write here can change); or, knowingly, --insecure-no-signature-check to restore without that check."
}

if [ -n "$PIN" ]; then
  mkdir "$WORK/verify"
  [ -f "$SIGNER_FILE" ] ||
    die 3 "$VAULT holds no signer.pub.asc (the signer's public key a backup writes beside restore.sh), so the manifests cannot be checked against $PIN; copy that public key here as signer.pub.asc (signing.pub.asc in the server's config folder, or your own copy) and run again."
  gpg --homedir "$WORK/verify" --batch --no-tty --quiet --import "$SIGNER_FILE" >/dev/null 2>"$WORK/verify.err" ||
    die 3 "$SIGNER_FILE is not a public key gpg can import ($(tail -n 1 "$WORK/verify.err")); copy the signer's public key there again."
  gpg --homedir "$WORK/verify" --batch --no-tty --with-colons --list-keys 2>/dev/null | awk -F: -v pin="$PIN" '$1 == "fpr" && $10 == pin { found = 1 } END { exit !found }' ||
    die 3 "$SIGNER_FILE holds no key with the fingerprint $PIN you pinned: this vault is signed by another key, or the file was replaced; check the fingerprint, and restore from a copy of the vault you trust."
elif [ -n "$INSECURE" ]; then
  say "warning: --insecure-no-signature-check: no manifest's signature is checked, so whoever can write to $VAULT could have written what is restored now."
else
  why=$(signed_because)
  [ -z "$why" ] || unpinned "$why"
fi

# A phrase for why gpg did not find snapshot $1's manifest signed by the pinned key ($WORK/verify.status, .err).
signature_problem() {
  st="$WORK/verify.status"
  if grep -q '^\[GNUPG:\] BADSIG' "$st"; then
    printf '%s' "its manifest.json does not match manifest.json.sig (edited after it was signed)"
  elif other=$(awk '$1 == "[GNUPG:]" && $2 == "VALIDSIG" { print $12; exit }' "$st") && [ -n "$other" ]; then
    printf '%s' "its manifest.json.sig is signed by key $other, not by the signer you pinned ($PIN)"
  elif other=$(awk '$1 == "[GNUPG:]" && $2 == "ERRSIG" { print $3; exit }' "$st") && [ -n "$other" ]; then
    printf '%s' "its manifest.json.sig is signed by key $other, not by the signer you pinned ($PIN)"
  elif grep -q '^\[GNUPG:\] NODATA' "$st"; then
    printf '%s' "its manifest.json.sig is no OpenPGP signature"
  else
    printf '%s' "gpg --verify of its manifest.json.sig failed ($(tail -n 1 "$WORK/verify.err"))"
  fi
}

# Reads snapshot $1's manifest into $WORK/m-$1, naming it "$2" in errors: a private copy (what is
# checked is what is read), whose signature gpg verifies against the pinned signer first: only a
# VALIDSIG whose key or primary key has that fingerprint passes. Then flattened.
read_manifest() {
  rid=$1
  copy="$WORK/manifest-$rid.json"
  cp -- "$VAULT/$rid/manifest.json" "$copy" 2>/dev/null || die 3 "$2 cannot be read; restore another snapshot."
  if [ -n "$PIN" ]; then
    [ -f "$VAULT/$rid/manifest.json.sig" ] ||
      die 3 "snapshot $rid is not signed by the signer you pinned ($PIN): it has no manifest.json.sig; nothing was decrypted. Restore another snapshot, and find out who wrote this one."
    cp -- "$VAULT/$rid/manifest.json.sig" "$copy.sig" || die 3 "$VAULT/$rid/manifest.json.sig cannot be read; restore another snapshot."
    gpg --homedir "$WORK/verify" --batch --no-tty --no-auto-key-retrieve --status-fd 1 --verify "$copy.sig" "$copy" >"$WORK/verify.status" 2>"$WORK/verify.err"
    vrc=$?
    if [ "$vrc" != 0 ] || ! awk -v pin="$PIN" '$1 == "[GNUPG:]" && $2 == "VALIDSIG" && ($3 == pin || $12 == pin) { ok = 1 } END { exit !ok }' "$WORK/verify.status"; then
      die 3 "snapshot $rid is not signed by the signer you pinned: $(signature_problem "$rid"); nothing was decrypted. Restore another snapshot, and find out who wrote this one."
    fi
  fi
  flatten "$copy" >"$WORK/m-$rid" || return 1
  # A manifest that names its signer belongs to a signed vault, even when its signatures were removed.
  if [ -z "$PIN" ] && [ -z "$INSECURE" ]; then
    by=$(awk -F '\t' '$1 == "signedBy" { print substr($2, 3); exit }' "$WORK/m-$rid")
    [ -z "$by" ] || unpinned "snapshot $rid's manifest says it was signed by $by"
  fi
}

read_manifest "$SNAPSHOT" "$SNAP/manifest.json" ||
  die 3 "$SNAP/manifest.json is damaged or not in the layout this script reads; restore with \`permafrost restore --vault $VAULT\` or by hand (RESTORE.md)."
[ -n "$PIN" ] || [ -n "$INSECURE" ] ||
  say "warning: this vault's manifests are not signed, so nothing proves who wrote snapshot $SNAPSHOT (its SHA-256 sums are checked, but whoever can write to $VAULT can change them too); sign manifests (vault.signingKeyFile) and restore with --signer FINGERPRINT."

# A plain value at $2 of snapshot $1's manifest ("" when absent or null); exit 3 when it has another type.
mget() {
  v=$(awk -F '\t' -v k="$2" '$1 == k { print $2; exit }' "$WORK/m-$1")
  case $v in
    '' | z:) printf '' ;;
    s:* | n:* | b:*) printf '%s' "${v#??}" ;;
    *) die 3 "$VAULT/$1/manifest.json holds an unexpected value at $2; restore by hand (RESTORE.md)." ;;
  esac
}

# A plain value of the restored snapshot's manifest.
mf() { mget "$SNAPSHOT" "$1"; }

# The index of part $2 in snapshot $1's manifest "files", or "" when the snapshot lacks it.
part_index() {
  awk -F '\t' -v want="s:$2" '$1 ~ /^files\.[0-9]+\.part$/ && $2 == want { split($1, p, "."); print p[2]; exit }' "$WORK/m-$1"
}

[ "$(mf id)" = "$SNAPSHOT" ] || die 3 "$SNAP/manifest.json names snapshot \"$(mf id)\", not its folder $SNAPSHOT; it cannot be trusted."

# A delta-mode snapshot (its manifest has "chain") restores from its chain: the snapshots its
# "reference" names, one depth less each, back to the base, all of the same base and schema (ddl).
# CHAIN lists them base first, ending with SNAPSHOT; it is empty for a full snapshot.
CHAIN=
BASE=
# How the chain's table hashes were made (src/capture/delta-sql.ts RowHashKind): md5 when the manifest does not say.
ROWHASH=md5
DEPTH=$(mf chain.depth) || exit $?
if [ -n "$(mf chain.kind)" ]; then
  BASE=$(mf chain.base) || exit $?
  DDL=$(mf chain.ddl) || exit $?
  ROWHASH=$(mf chain.rowHash) || exit $?
  case $ROWHASH in
    '') ROWHASH=md5 ;;
    md5 | hashtext | hashrecord) ;;
    *) die 3 "$SNAP/manifest.json names a row hash \"$ROWHASH\" this script does not know; it cannot be trusted, or a newer permafrost made it: restore with that one." ;;
  esac
  # Each table's hashRecord mark is true, and only under hashrecord (as manifest.ts allows): refused
  # here, before anything is decrypted, not after the whole restore when the tables are checked.
  awk -F '\t' -v rh="$ROWHASH" '
    $1 ~ /^chain\.tables\.[0-9]+\.hashRecord(\.|$)/ && !(rh == "hashrecord" && $1 ~ /\.hashRecord$/ && $2 == "b:true") { bad = 1 }
    END { exit bad }
  ' "$WORK/m-$SNAPSHOT" ||
    die 3 "$SNAP/manifest.json marks how a table is hashed in a way permafrost never writes; it cannot be trusted."
  case $DEPTH in '' | *[!0-9]*) die 3 "$SNAP/manifest.json holds an unusual chain depth \"$DEPTH\"; it cannot be trusted." ;; esac
  [ "$DEPTH" -le 24 ] || die 3 "$SNAP/manifest.json says its chain is $DEPTH deltas deep, more than permafrost ever makes (24); it cannot be trusted."
  id=$SNAPSHOT
  depth=$DEPTH
  while :; do
    CHAIN="$id${CHAIN:+ $CHAIN}"
    what="snapshot $SNAPSHOT needs $id, whose manifest.json"
    [ "$id" != "$SNAPSHOT" ] || what="$SNAP/manifest.json"
    link=$(mget "$id" chain.kind)/$(mget "$id" chain.depth)/$(mget "$id" chain.base)/$(mget "$id" chain.ddl) || exit $?
    ref=$(mget "$id" chain.reference) || exit $?
    want='delta'
    [ "$depth" != 0 ] || want='base'
    [ "$link" = "$want/$depth/$BASE/$DDL" ] ||
      die 3 "$what does not continue its chain (it should be a $want at depth $depth of base $BASE, with the same schema); restore another snapshot."
    if [ "$depth" = 0 ]; then
      if [ "$id" != "$BASE" ] || [ -n "$ref" ]; then
        die 3 "$what does not continue its chain (a base is its own base and has no reference); restore another snapshot."
      fi
      break
    fi
    # shellcheck disable=SC2254 # ID_GLOB is a pattern
    case $ref in $ID_GLOB) ;; *) die 3 "$what names an unusual reference \"$ref\"; it cannot be trusted." ;; esac
    [ -f "$VAULT/$ref/manifest.json" ] ||
      die 3 "snapshot $SNAPSHOT needs $ref (its chain goes back to base $BASE), which is missing from $VAULT; restore another snapshot (ls $VAULT), or copy $ref back from another copy of the vault."
    read_manifest "$ref" "snapshot $SNAPSHOT needs $ref, whose manifest.json" ||
      die 3 "snapshot $SNAPSHOT needs $ref, whose manifest.json is damaged or not in the layout this script reads; restore another snapshot."
    [ "$(mget "$ref" id)" = "$ref" ] || die 3 "snapshot $SNAPSHOT needs $ref, whose manifest.json names another snapshot; it cannot be trusted."
    id=$ref
    depth=$((depth - 1))
  done
else
  DB_INDEX=$(part_index "$SNAPSHOT" database)
  [ -n "$DB_INDEX" ] || die 3 "$SNAP/manifest.json lists no database part; this snapshot cannot be restored."
fi
ROLES_INDEX=$(part_index "$SNAPSHOT" roles)

plain_name() { case $1 in '' | [!A-Za-z0-9_]* | *[!A-Za-z0-9_.-]*) return 1 ;; esac }
TARGET=${DATABASE:-$(mf database.name)} || exit $?
plain_name "$TARGET" || die 2 "\"$TARGET\" is not a plain database name (letters, digits, _ . -); pass --database NAME."
# The maintenance database this script connects to and the templates every new database is copied from.
case $TARGET in postgres | template0 | template1) die 2 "restore never replaces \"$TARGET\"; pass --database NAME with another database name." ;; esac
OWNER=$(mf database.owner) || exit $?
[ -z "$OWNER" ] || plain_name "$OWNER" || die 3 "$SNAP/manifest.json names an unusual database owner; create the database by hand (RESTORE.md)."
ENCODING=$(mf database.encoding) || exit $?
COLLATE=$(mf database.collate) || exit $?
CTYPE=$(mf database.ctype) || exit $?
PROVIDER=$(mf database.localeProvider) || exit $?
ICULOCALE=$(mf database.iculocale) || exit $?

INCOMING="${TARGET}_incoming"
# The kept name carries the time of the swap; its length is known now.
BEFORE="${TARGET}_before_YYYYMMDD_HHMMSS"
[ "$(printf '%s' "$BEFORE" | wc -c)" -le 63 ] ||
  die 2 "\"$TARGET\" is too long to keep the current database beside the new one as ${TARGET}_before_<date> (PostgreSQL names are at most 63 bytes); pass a shorter --database NAME."

# --- the server ---------------------------------------------------------------------------------

# SQL on stdin against database $1; the remaining arguments are psql variables (-v name=value).
sql() {
  db=$1
  shift
  # shellcheck disable=SC2086 # PGAS is empty or setpriv's words
  $PGAS psql -X -q -A -t --no-password -v ON_ERROR_STOP=1 -d "$db" "$@"
}

super=$(printf 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user;\n' | sql postgres 2>"$WORK/psql.err") ||
  die 1 "cannot reach the PostgreSQL server ($(tail -n 1 "$WORK/psql.err")); start it, or set PGHOST/PGPORT/PGUSER, and run again."
[ "$super" = t ] || die 1 "the PostgreSQL user this script connects as is not a superuser, so it cannot create roles or set owners; run it as root (it then connects as postgres) or as postgres, or set PGUSER."
# Whether the server computes hashtextextended as every little-endian one does (delta-sql.ts HASHTEXT_PROBE_SQL).
hashtext_probe_sql() {
  cat <<'EOF'
SELECT CASE WHEN to_regprocedure('pg_catalog.hashtextextended(text,bigint)') IS NULL THEN NULL
  ELSE pg_catalog.hashtextextended('permafrost', 0) = -3370357417224711864 END AS ok;
EOF
}

# The same, and that it has hash_record_extended (PostgreSQL 14+; delta-sql.ts HASHRECORD_PROBE_SQL).
hashrecord_probe_sql() {
  cat <<'EOF'
SELECT CASE WHEN to_regprocedure('pg_catalog.hash_record_extended(record,bigint)') IS NULL
  OR to_regprocedure('pg_catalog.hashtextextended(text,bigint)') IS NULL THEN NULL
  ELSE pg_catalog.hashtextextended('permafrost', 0) = -3370357417224711864 END AS ok;
EOF
}

if [ "$ROWHASH" != md5 ]; then
  # Checked before anything is restored: a server that hashes rows otherwise could only refuse the copy at the end.
  probe=$("${ROWHASH}_probe_sql" | sql postgres 2>"$WORK/psql.err") ||
    die 1 "cannot ask the PostgreSQL server how it hashes text ($(tail -n 1 "$WORK/psql.err")); run again."
  if [ "$ROWHASH" = hashrecord ]; then older=14 need=14; else older=11 need=12; fi
  [ "$probe" = t ] ||
    die 1 "this PostgreSQL server hashes text differently from a little-endian one, or is older than $older, so it cannot check the table hashes of this snapshot; restore it on PostgreSQL $need or later on a little-endian machine (x86-64, ARM64)."
fi

exists() {
  found=$(sql postgres -v d="$1" <<'EOF'
SELECT 1 FROM pg_database WHERE datname = :'d';
EOF
  )
  [ "$found" = 1 ]
}

# The other sessions on database $1, as "pid (user, application)" joined by commas.
sessions() {
  sql postgres -v d="$1" <<'EOF' | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $0 }'
SELECT pid || ' (' || coalesce(usename, '?') || ', ' || coalesce(nullif(application_name, ''), '?') || ')'
  FROM pg_stat_activity WHERE datname = :'d' AND pid <> pg_backend_pid();
EOF
}

TARGET_EXISTS=
if exists "$TARGET"; then
  TARGET_EXISTS=1
  tables=$(sql "$TARGET" <<'EOF'
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r','p','v','m','S','f')
   AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%';
EOF
  ) || die 1 "cannot look into database \"$TARGET\"; check the server log, then run again."
  if [ "$tables" -gt 0 ] && [ -z "$FORCE" ]; then
    die 2 "database \"$TARGET\" already holds $tables tables; pass --force to replace it (it is kept as ${TARGET}_before_<date> until you drop it), or --database NAME for another one."
  fi
  busy=$(sessions "$TARGET")
  [ -z "$busy" ] || die 1 "database \"$TARGET\" has other sessions: $busy; stop Mastodon (systemctl stop mastodon-web mastodon-sidekiq mastodon-streaming) and run again."
fi

# --- check, then decrypt ------------------------------------------------------------------------

# Size and SHA-256 of the part at index $2 of snapshot $1's manifest against it; prints its file name.
check_part() {
  dir="$VAULT/$1"
  file=$(mget "$1" "files.$2.name") || exit $?
  case $file in *[!A-Za-z0-9_.-]* | '' | .*) die 3 "$dir/manifest.json names an unusual part file; it cannot be trusted." ;; esac
  [ -f "$dir/$file" ] || die 3 "$dir/$file is missing; restore another snapshot (ls $VAULT)."
  size=$(($(wc -c <"$dir/$file")))
  [ "$size" = "$(mget "$1" "files.$2.bytes")" ] ||
    die 3 "$dir/$file is $size bytes, the manifest says $(mget "$1" "files.$2.bytes") (cut short or still arriving?); restore another snapshot."
  sum=$(sha256sum <"$dir/$file" | awk '{ print $1 }')
  [ "$sum" = "$(mget "$1" "files.$2.sha256")" ] ||
    die 3 "$dir/$file does not match the SHA-256 in its manifest (damaged or altered); restore another snapshot."
  printf '%s' "$file"
}

# check_part for part $2 of chain snapshot $1, which must be there and stored in file $3.
chain_part() {
  i=$(part_index "$1" "$2")
  [ -n "$i" ] || die 3 "$VAULT/$1/manifest.json lists no $2 part, which snapshot $SNAPSHOT needs from it; restore another snapshot."
  f=$(check_part "$1" "$i") || exit $?
  [ "$f" = "$3" ] || die 3 "$VAULT/$1/manifest.json stores its $2 part in $f, not $3; it cannot be trusted."
}

if [ -z "$CHAIN" ]; then
  DB_FILE=$(check_part "$SNAPSHOT" "$DB_INDEX") || exit $?
  PLAIN=$(mf "files.$DB_INDEX.plainBytes") || exit $?
else
  for id in $CHAIN; do
    if [ "$id" = "$BASE" ]; then
      chain_part "$id" schema schema.pgdump.gpg
      chain_part "$id" rows rows.sql.gpg
    else
      chain_part "$id" delta delta.sql.gpg
    fi
  done
  # Only the schema is decrypted to disk; rows and deltas stream into psql.
  PLAIN=$(mget "$BASE" "files.$(part_index "$BASE" schema).plainBytes") || exit $?
fi
ROLES_FILE=
[ -z "$ROLES_INDEX" ] || ROLES_FILE=$(check_part "$SNAPSHOT" "$ROLES_INDEX") || exit $?

need=$((PLAIN / 1024 + 1024))
free=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
[ "$free" -ge "$need" ] ||
  die 1 "$base has ${free} KiB free but the decrypted dump needs about ${need} KiB; set TMPDIR to a folder on a bigger disk and run again."

mkdir "$WORK/gnupg"
if [ -n "$IDENTITY" ]; then
  gpg --homedir "$WORK/gnupg" --batch --quiet --import "$IDENTITY" 2>"$WORK/gpg.err" ||
    die 3 "$IDENTITY is not a secret key gpg can import ($(tail -n 1 "$WORK/gpg.err")); give the key the snapshot was encrypted to."
fi

# Dies with the one sentence for gpg failing to decrypt part file $1 of snapshot $2 (stderr in $WORK/gpg.err).
undecryptable() {
  if grep -qi 'bad session key\|bad passphrase\|no secret key\|no passphrase given' "$WORK/gpg.err"; then
    if [ -n "$IDENTITY" ]; then
      die 3 "snapshot $2 cannot be decrypted with the key in $IDENTITY (wrong key, or a wrong passphrase for it); give the right --identity or --passphrase-file."
    fi
    die 3 "the passphrase in $PASSFILE does not decrypt snapshot $2 (wrong passphrase?); give the vault's passphrase file."
  fi
  die 3 "$1 does not decrypt ($(tail -n 1 "$WORK/gpg.err")); restore another snapshot."
}

# Decrypts part file $1 of snapshot $2 into $WORK/$3; gpg checks the message's integrity (MDC) itself.
decrypt() {
  in=$1
  snap=$2
  out=$3
  shift 3
  [ -z "$PASSFILE" ] || set -- --pinentry-mode loopback --passphrase-file "$PASSFILE"
  if ! run "$WORK/gpg.err" gpg --homedir "$WORK/gnupg" --batch --no-tty --quiet --no-permission-warning --no-symkey-cache "$@" --output "$WORK/$out" --decrypt "$in"; then
    rm -f -- "$WORK/$out"
    undecryptable "$in" "$snap"
  fi
  [ -z "$PGAS" ] || chown postgres "$WORK/$out"
}

# Decrypts part file $1 of snapshot $2 into $WORK/$3 and checks its size against index $4 of that manifest.
decrypt_sized() {
  decrypt "$1" "$2" "$3"
  [ "$(($(wc -c <"$WORK/$3")))" = "$(mget "$2" "files.$4.plainBytes")" ] ||
    die 3 "$1 decrypts to another size than its manifest says; restore another snapshot."
}

if [ -z "$CHAIN" ]; then
  say "decrypting snapshot $SNAPSHOT …"
else
  say "decrypting snapshot $SNAPSHOT: base $BASE and $DEPTH deltas …"
fi
if [ -n "$ROLES_FILE" ]; then decrypt "$SNAP/$ROLES_FILE" "$SNAPSHOT" roles.sql; fi
if [ -z "$CHAIN" ]; then
  decrypt_sized "$SNAP/$DB_FILE" "$SNAPSHOT" database.pgdump "$DB_INDEX"
else
  decrypt_sized "$VAULT/$BASE/schema.pgdump.gpg" "$BASE" schema.pgdump "$(part_index "$BASE" schema)"
fi

# --- roles, the new database, the restore --------------------------------------------------------

if [ -n "$ROLES_FILE" ]; then
  say "creating the roles the database needs that this server lacks …"
  # shellcheck disable=SC2086 # PGAS is empty or setpriv's words
  run "$WORK/psql.err" $PGAS psql -X -q -o /dev/null --no-password -v ON_ERROR_STOP=1 --single-transaction -d postgres -f "$WORK/roles.sql" ||
    die 1 "creating the roles failed ($(tail -n 1 "$WORK/psql.err")); fix that, then run again."
else
  say "note: snapshot $SNAPSHOT has no roles part (made by an older permafrost); roles it needs must exist already (createuser NAME)."
fi
if [ -n "$OWNER" ] && [ "$(echo "SELECT 1 FROM pg_roles WHERE rolname = :'r';" | sql postgres -v r="$OWNER")" != 1 ]; then
  die 1 "role \"$OWNER\", the database's owner, does not exist on this server; create it (createuser $OWNER) and run again."
fi

if exists "$INCOMING"; then
  say "dropping $INCOMING, left by an earlier restore that never finished …"
  printf 'DROP DATABASE :"d" WITH (FORCE);\n' | sql postgres -v d="$INCOMING" 2>"$WORK/psql.err" ||
    die 1 "cannot drop the leftover database \"$INCOMING\" ($(tail -n 1 "$WORK/psql.err")); drop it by hand (dropdb $INCOMING) and run again."
fi

create='CREATE DATABASE :"d" TEMPLATE template0'
set -- -v d="$INCOMING"
if [ -n "$OWNER" ]; then
  create="$create OWNER :\"o\""
  set -- "$@" -v o="$OWNER"
fi
if [ -n "$ENCODING" ]; then
  create="$create ENCODING :'e'"
  set -- "$@" -v e="$ENCODING"
fi
if [ -n "$COLLATE" ]; then
  create="$create LC_COLLATE :'c'"
  set -- "$@" -v c="$COLLATE"
fi
if [ -n "$CTYPE" ]; then
  create="$create LC_CTYPE :'t'"
  set -- "$@" -v t="$CTYPE"
fi
if [ "$PROVIDER" = icu ]; then
  create="$create LOCALE_PROVIDER icu ICU_LOCALE :'i'"
  set -- "$@" -v i="$ICULOCALE"
fi
INCOMING_MADE=$INCOMING
printf '%s;\n' "$create" | sql postgres "$@" 2>"$WORK/psql.err" ||
  die 1 "cannot create database \"$INCOMING\" ($(tail -n 1 "$WORK/psql.err")); fix that (a missing locale: apt-get install locales-all) and run again."

# The first error psql wrote to file $1 (its last line when none says ERROR): the line that names
# the cause, not the CONTEXT line after it that quotes the row.
first_error() {
  awk '/ERROR/ { print; found = 1; exit } { last = $0 } END { if (!found) print last }' "$1"
}

# Streams part file $1 of snapshot $2, decrypted, into psql on $INCOMING in one transaction: no
# plaintext on disk. POSIX sh has no pipefail, so gpg and psql run as two jobs joined by a FIFO,
# each with its own exit status: either failing fails the restore (the half-made copy is dropped).
apply_sql() {
  in=$1
  snap=$2
  shift 2
  [ -z "$PASSFILE" ] || set -- --pinentry-mode loopback --passphrase-file "$PASSFILE"
  rm -f -- "$WORK/stream"
  mkfifo "$WORK/stream" || die 1 "cannot make a FIFO in $WORK; set TMPDIR to a local folder that takes one and run again."
  gpg --homedir "$WORK/gnupg" --batch --no-tty --quiet --no-permission-warning --no-symkey-cache "$@" --output - --decrypt "$in" \
    >"$WORK/stream" 2>"$WORK/gpg.err" &
  gpg_pid=$!
  # shellcheck disable=SC2086 # PGAS is empty or setpriv's words
  $PGAS psql -X -q --no-password -v ON_ERROR_STOP=1 --single-transaction -d "$INCOMING" <"$WORK/stream" >/dev/null 2>"$WORK/psql.err" &
  psql_pid=$!
  CHILD="$gpg_pid $psql_pid"
  wait "$gpg_pid"
  gpg_rc=$?
  wait "$psql_pid"
  psql_rc=$?
  CHILD=
  rm -f -- "$WORK/stream"
  # When psql stops first, gpg dies of the broken pipe: psql's error is then the cause.
  if [ "$gpg_rc" != 0 ]; then
    if [ "$psql_rc" = 0 ] || { [ "$gpg_rc" != 141 ] && ! grep -qi 'broken pipe' "$WORK/gpg.err"; }; then
      undecryptable "$in" "$snap"
    fi
  fi
  [ "$psql_rc" = 0 ] ||
    die 1 "psql failed applying $in ($(first_error "$WORK/psql.err")); \"$TARGET\" was not touched; fix that and run again."
}

if [ -z "$CHAIN" ]; then
  say "restoring into $INCOMING …"
  # shellcheck disable=SC2086 # PGAS is empty or setpriv's words
  run "$WORK/restore.err" $PGAS pg_restore --exit-on-error --no-password --jobs "$JOBS" -d "$INCOMING" "$WORK/database.pgdump" ||
    die 1 "pg_restore failed ($(tail -n 1 "$WORK/restore.err")); \"$TARGET\" was not touched; fix that and run again."
  rm -f -- "$WORK/database.pgdump"
else
  say "restoring into $INCOMING: the schema of base $BASE …"
  # shellcheck disable=SC2086 # PGAS is empty or setpriv's words
  run "$WORK/restore.err" $PGAS pg_restore --exit-on-error --no-password --section=pre-data -d "$INCOMING" "$WORK/schema.pgdump" ||
    die 1 "pg_restore of the schema (pre-data) failed ($(tail -n 1 "$WORK/restore.err")); \"$TARGET\" was not touched; fix that and run again."
  say "the rows of base $BASE …"
  apply_sql "$VAULT/$BASE/rows.sql.gpg" "$BASE"
  for id in $CHAIN; do
    [ "$id" = "$BASE" ] && continue
    say "delta $id …"
    apply_sql "$VAULT/$id/delta.sql.gpg" "$id"
  done
  say "indexes, constraints and the rest of the schema …"
  # shellcheck disable=SC2086 # PGAS is empty or setpriv's words
  run "$WORK/restore.err" $PGAS pg_restore --exit-on-error --no-password --section=post-data --jobs "$JOBS" -d "$INCOMING" "$WORK/schema.pgdump" ||
    die 1 "pg_restore of the schema (post-data) failed ($(tail -n 1 "$WORK/restore.err")); \"$TARGET\" was not touched; fix that and run again."
  rm -f -- "$WORK/schema.pgdump"
fi

# --- check against the manifest, then swap ------------------------------------------------------

# The session settings and the per-table count + content hash of src/capture/delta-sql.ts
# (HASH_SESSION_SQL, tableHashSql for each RowHashKind, HASHTEXT_PROBE_SQL), verbatim: psql's
# :"s".:"t" quotes the names as its qualified() does. test/unit/vault/runbook-chain.test.ts holds them equal.
hash_session_sql() {
  cat <<'EOF'
SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex';
EOF
}

hash_sql_md5() {
  cat <<'EOF'
SELECT count(*) AS rows, mod(mod(coalesce(sum(('x' || left(md5(_pf_row::text), 16))::bit(64)::bigint::numeric), 0), 18446744073709551616) + 18446744073709551616, 18446744073709551616)::text AS hash FROM ONLY :"s".:"t" _pf_row;
EOF
}

hash_sql_hashtext() {
  cat <<'EOF'
SELECT count(*) AS rows, mod(mod(coalesce(sum(hashtextextended(_pf_row::text, 0)), 0), 18446744073709551616) + 18446744073709551616, 18446744073709551616)::text AS hash FROM ONLY :"s".:"t" _pf_row;
EOF
}

hash_sql_hashrecord() {
  cat <<'EOF'
SELECT count(*) AS rows, mod(mod(coalesce(sum(hashtextextended(hash_record_extended(_pf_row, 0)::text, 0)), 0), 18446744073709551616) + 18446744073709551616, 18446744073709551616)::text AS hash FROM ONLY :"s".:"t" _pf_row;
EOF
}

# The hash of one table: $1 is its chain.tables[].hashRecord as flattened ("b:true"), or "-" when absent.
hash_sql() {
  hash_session_sql
  case $ROWHASH:$1 in
    hashrecord:b:true) hash_sql_hashrecord ;;
    hashtext:* | hashrecord:*) hash_sql_hashtext ;;
    *) hash_sql_md5 ;;
  esac
}

# A table's two names as psql variables, and SQL that reads them back: flatten left each as
# "s:NAME", or as "j:" and its JSON string when the name holds a tab, a line break or another
# escape, which PostgreSQL's JSON parser reads. No name is spliced into SQL or split on a dot:
# :s and :t hold the names, :e whether the restored copy has that table, and the query prints
# "t NAME" or "f NAME" (NAME quoted as SQL would, a tab or line break shown as \t, \n).
names_sql() {
  cat <<'EOF'
SELECT coalesce(nullif(:'sj', '')::json #>> '{}', :'sp') AS s, coalesce(nullif(:'tj', '')::json #>> '{}', :'tp') AS t \gset
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :'s' AND c.relname = :'t' AND c.relkind IN ('r', 'p')) AS e \gset
SELECT :'e' || ' ' || replace(replace(replace(format('%I.%I', :'s', :'t'), E'\t', '\t'), E'\n', '\n'), E'\r', '\r');
EOF
}

# Runs SQL on stdin against $INCOMING with the names $1 and $2 (flattened values) as names_sql's
# variables; prints what psql printed. Exit 3 for a name that is neither form, or that psql cannot
# read while the server answers (a forged manifest: \u0000 is no name); exit 1 when the server fails.
with_names() {
  sp=
  sj=
  tp=
  tj=
  case $1 in s:?*) sp=${1#s:} ;; j:?*) sj=${1#j:} ;; *) return 3 ;; esac
  case $2 in s:?*) tp=${2#s:} ;; j:?*) tj=${2#j:} ;; *) return 3 ;; esac
  if ! sql "$INCOMING" -v sp="$sp" -v sj="$sj" -v tp="$tp" -v tj="$tj" 2>"$WORK/psql.err"; then
    printf 'SELECT 1;\n' | sql "$INCOMING" >/dev/null 2>&1 || return 1
    return 3
  fi
}

# Dies for with_names' status $1 on table $2.$3 of the manifest.
names_failed() {
  # hash_record_extended of a table marked hashRecord whose column has no such hash (a hand-edited manifest).
  ! grep -q 'could not identify an extended hash function' "$WORK/psql.err" 2>/dev/null ||
    die 3 "$SNAP/manifest.json marks the table ${2#?:}.${3#?:} as hashed by hash_record_extended, which its columns' types do not allow (permafrost never writes that); it cannot be trusted."
  [ "$1" = 3 ] ||
    die 1 "cannot check the restored table ${2#?:}.${3#?:} ($(first_error "$WORK/psql.err")); \"$TARGET\" was not touched; run again."
  die 3 "$SNAP/manifest.json lists a table name this script cannot read (${2#?:}.${3#?:}); it cannot be trusted; restore another snapshot, or with \`permafrost restore --vault $VAULT\`."
}

TAB=$(printf '\t')

# The tables of names $1 (lines of "SCHEMA<TAB>TABLE", each name as flatten left it) that the
# restored copy lacks, one a line, quoted as SQL would (a tab or line break shown as \t, \n). The
# lines reach psql as one variable and PostgreSQL splits and reads them: no name is spliced into SQL.
missing_sql() {
  cat <<'EOF'
WITH l AS (SELECT split_part(x, E'\t', 1) AS s, split_part(x, E'\t', 2) AS t FROM regexp_split_to_table(:'names', E'\n') AS x),
n AS (SELECT CASE WHEN left(s, 2) = 's:' THEN substr(s, 3) ELSE substr(s, 3)::json #>> '{}' END AS s,
             CASE WHEN left(t, 2) = 's:' THEN substr(t, 3) ELSE substr(t, 3)::json #>> '{}' END AS t FROM l)
SELECT replace(replace(replace(format('%I.%I', s, t), E'\t', '\t'), E'\n', '\n'), E'\r', '\r') FROM n
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
                    WHERE ns.nspname = n.s AND c.relname = n.t AND c.relkind IN ('r', 'p'));
EOF
}

# "tables": every table of the snapshot (manifests made before it existed have none: pg_restore's
# --exit-on-error is then the check), each looked up by its two names in the restored catalog.
awk -F '\t' '
  $1 ~ /^tables\.[0-9]+\.(schema|table)$/ { split($1, p, "."); v[p[2] "." p[3]] = $2; if (p[2] + 1 > n) n = p[2] + 1 }
  END {
    for (i = 0; i < n; i++) {
      if (v[i ".schema"] !~ /^[sj]:./ || v[i ".table"] !~ /^[sj]:./) { print "bad"; exit 1 }
      print v[i ".schema"] "\t" v[i ".table"]
    }
  }
' "$WORK/m-$SNAPSHOT" >"$WORK/tables" ||
  die 3 "$SNAP/manifest.json lists a table name this script cannot read; it cannot be trusted; restore another snapshot, or with \`permafrost restore --vault $VAULT\`."
if [ -s "$WORK/tables" ]; then
  say "checking that every table of the manifest exists in the restored copy …"
  # 100 tables a query: a psql variable is one argument, and one argument is at most 128 KiB.
  total=$(($(wc -l <"$WORK/tables")))
  first=1
  while [ "$first" -le "$total" ]; do
    if ! gone=$(missing_sql | sql "$INCOMING" -v names="$(sed -n "$first,$((first + 99))p" "$WORK/tables")" 2>"$WORK/psql.err"); then
      printf 'SELECT 1;\n' | sql "$INCOMING" >/dev/null 2>&1 ||
        die 1 "cannot check the restored copy's tables ($(first_error "$WORK/psql.err")); \"$TARGET\" was not touched; run again."
      die 3 "$SNAP/manifest.json lists a table name this script cannot read ($(first_error "$WORK/psql.err")); it cannot be trusted; restore another snapshot, or with \`permafrost restore --vault $VAULT\`."
    fi
    [ -z "$gone" ] ||
      die 3 "the restored copy has no table $(printf '%s' "$gone" | head -n 1), which its manifest lists, so it does not match its manifest; \"$TARGET\" was not touched; restore another snapshot."
    first=$((first + 100))
  done
fi

if [ -n "$CHAIN" ]; then
  say "checking every table's row count and content hash against the manifest …"
  # chain.tables as "SCHEMA<TAB>TABLE<TAB>n:ROWS<TAB>s:HASH<TAB>HASHRECORD" lines (names as flatten left them;
  # HASHRECORD "b:true", or "-" when absent), in the manifest's order.
  awk -F '\t' '
    $1 ~ /^chain\.tables\.[0-9]+\.(schema|table|rows|hash|hashRecord)$/ { split($1, p, "."); v[p[3] "." p[4]] = $2; if (p[3] + 1 > n) n = p[3] + 1 }
    END { for (i = 0; i < n; i++) print v[i ".schema"] "\t" v[i ".table"] "\t" v[i ".rows"] "\t" v[i ".hash"] "\t" (v[i ".hashRecord"] == "" ? "-" : v[i ".hashRecord"]) }
  ' "$WORK/m-$SNAPSHOT" >"$WORK/tables"
  # (Each mark was checked before anything was decrypted: "-", or "b:true" under hashrecord.)
  while IFS=$TAB read -r s t n h r; do
    case "$n$TAB$h" in
      n:[0-9]*"$TAB"s:[0-9]*) ;;
      *) die 3 "$SNAP/manifest.json lists a table with a count or hash that is no number; it cannot be trusted." ;;
    esac
    n=${n#n:}
    h=${h#s:}
    case $n$h in *[!0-9]*) die 3 "$SNAP/manifest.json holds a count or hash of ${s#?:}.${t#?:} that is no number; it cannot be trusted." ;; esac
    # The hash only of a table that is there: its name printed first, then "ROWS|HASH".
    got=$({
      names_sql
      printf '\\if :e\n'
      hash_sql "$r"
      printf '\\endif\n'
    } | with_names "$s" "$t") || names_failed $? "$s" "$t"
    name=$(printf '%s\n' "$got" | sed -n '1s/^. //p')
    [ "${got%% *}" = t ] ||
      die 3 "the restored copy has no table $name, which its manifest lists, so it does not match its manifest; \"$TARGET\" was not touched; restore another snapshot."
    got=$(printf '%s\n' "$got" | sed -n 2p)
    [ "$got" = "$n|$h" ] ||
      die 3 "the restored table $name (${got%%|*} rows, hash ${got#*|}) does not match its manifest ($n rows, hash $h); \"$TARGET\" was not touched; restore another snapshot."
  done <"$WORK/tables"
fi

counted=$(awk -F '\t' '$1 ~ /^mastodon\.rowCounts\./ { sub(/^mastodon\.rowCounts\./, "", $1); print $1 }' "$WORK/m-$SNAPSHOT")
for t in $counted; do
  case $t in *[!a-z0-9_]*) die 3 "$SNAP/manifest.json counts rows of an unusual table; it cannot be trusted." ;; esac
  want=$(mf "mastodon.rowCounts.$t") || exit $?
  got=$(printf 'SELECT count(*) FROM public.:"t";\n' | sql "$INCOMING" -v t="$t") || die 1 "cannot count the rows of $t in \"$INCOMING\"."
  [ "$got" = "$want" ] || die 1 "the restored $t has $got rows, the manifest says $want; \"$TARGET\" was not touched; restore another snapshot."
done
if [ -n "$counted" ]; then
  want=$(mf mastodon.schemaMigration) || exit $?
  got=$(sql "$INCOMING" <<'EOF'
SELECT version::text FROM public.schema_migrations ORDER BY length(version::text) DESC, version::text DESC LIMIT 1;
EOF
  ) || got=
  [ "$got" = "$want" ] || die 1 "the restored newest schema migration is \"$got\", the manifest says \"$want\"; \"$TARGET\" was not touched; restore another snapshot."
fi

if [ -n "$TARGET_EXISTS" ]; then
  BEFORE="${TARGET}_before_$(date -u +%Y%m%d_%H%M%S)"
  busy=$(sessions "$TARGET")
  [ -z "$busy" ] || die 1 "database \"$TARGET\" has other sessions again: $busy; stop Mastodon and run again."
  printf 'ALTER DATABASE :"t" RENAME TO :"b";\nALTER DATABASE :"i" RENAME TO :"t";\n' |
    sql postgres --single-transaction -v t="$TARGET" -v b="$BEFORE" -v i="$INCOMING" 2>"$WORK/psql.err" ||
    die 1 "swapping the restored copy in failed ($(tail -n 1 "$WORK/psql.err")); \"$TARGET\" was not touched; run again."
else
  printf 'ALTER DATABASE :"i" RENAME TO :"t";\n' | sql postgres -v t="$TARGET" -v i="$INCOMING" 2>"$WORK/psql.err" ||
    die 1 "renaming \"$INCOMING\" to \"$TARGET\" failed ($(tail -n 1 "$WORK/psql.err")); run again."
fi
INCOMING_MADE=

say "restored snapshot $SNAPSHOT into database \"$TARGET\"."
if [ -n "$TARGET_EXISTS" ] && [ -n "$DROP_PREVIOUS" ]; then
  printf 'DROP DATABASE :"b";\n' | sql postgres -v b="$BEFORE" 2>"$WORK/psql.err" ||
    die 1 "the restore is in place, but dropping the replaced database \"$BEFORE\" failed ($(tail -n 1 "$WORK/psql.err")); remove it with: dropdb $BEFORE"
  say "the database it replaced was dropped (--drop-previous)."
elif [ -n "$TARGET_EXISTS" ]; then
  say "the database it replaced is kept as \"$BEFORE\"; once Mastodon works, remove it with: dropdb $BEFORE"
fi
say "next: Redis, secrets, media and Mastodon itself, as RESTORE.md beside this script says."
