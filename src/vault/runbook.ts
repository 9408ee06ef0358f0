/**
 * The runbook beside the data: `RESTORE.md` (what to do, in order, on a fresh machine, with this
 * instance's names filled in) and `restore.sh` (scripts/restore.sh, stock tools only), written at
 * the vault root by every backup so that every copy of the vault carries them. A file is replaced
 * only when its content changes: a device's Syncthing versions every replaced file, so an hourly
 * rewrite would fill its `.stversions` with copies of the same text.
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { SourceConfig } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { VERSION } from '../version.js';
import { ATOMIC_TEMP_PREFIX, writeFileAtomic } from './fs-durable.js';
import type { Manifest } from './manifest.js';
import { packageFile } from '../package-file.js';
import { openVault, VAULT_NAMES } from './layout.js';
import { normalizePrefix } from '../offsite/target.js';

/** The files the runbook puts at the vault root; listing, check, prune, sweep and doctor leave them alone. */
const RUNBOOK_FILES = VAULT_NAMES.runbook;

/** scripts/restore.sh as shipped in the package. */
const SCRIPT_FILE = packageFile('scripts/restore.sh');

/** What RESTORE.md names: this instance's database, owner, folders and parts. */
export interface RunbookFacts {
  host: string;
  database: string;
  owner: string;
  encoding: string | null;
  collate: string | null;
  ctype: string | null;
  vaultDir: string;
  /** Null when the vault is encrypted to public keys only (vault.recipients). */
  passphraseFile: string | null;
  mediaDir: string | null;
  mastodonDir: string;
  redis: boolean;
  secrets: boolean;
  roles: boolean;
  /** The fingerprint manifests are signed by (the manifest's signedBy), for --signer; null when unsigned. */
  signer: string | null;
  version: string;
  /** The offsite targets the snapshots are pushed to (config offsite:), for the section on fetching from a bucket. */
  buckets?: readonly { url: string; endpoint: string | null; region: string; pathStyle: boolean }[];
}

/** The names RESTORE.md fills in, from the config and the snapshot just written. */
export function runbookFacts(config: SourceConfig, manifest: Manifest): RunbookFacts {
  const db = manifest.database;
  const secretsFile = config.secrets ? config.secrets.file : null;
  const mediaDir = config.media?.dir ?? null;
  // .env.production sits in Mastodon's folder, and media in its public/system.
  const mastodonDir = secretsFile
    ? path.dirname(secretsFile)
    : mediaDir?.endsWith('/public/system')
      ? mediaDir.slice(0, -'/public/system'.length)
      : '/home/mastodon/live';
  return {
    host: manifest.host,
    database: manifest.database.name,
    owner: db.owner ?? config.database.user ?? 'mastodon',
    encoding: db.encoding ?? null,
    collate: db.collate ?? null,
    ctype: db.ctype ?? null,
    vaultDir: config.vault.dir,
    passphraseFile: config.vault.passphraseFile ?? null,
    mediaDir,
    mastodonDir,
    redis: manifest.files.some((f) => f.part === 'redis'),
    secrets: manifest.files.some((f) => f.part === 'secrets'),
    roles: manifest.files.some((f) => f.part === 'roles'),
    signer: manifest.signedBy ?? null,
    version: VERSION,
    buckets: (config.offsite ?? []).map((t) => ({
      url: `s3://${t.bucket}/${normalizePrefix(t.prefix)}`,
      endpoint: t.endpoint ?? null,
      region: t.region,
      pathStyle: t.pathStyle,
    })),
  };
}

/** RESTORE.md for `f`: the whole procedure on a fresh Debian machine, in order. */
export function renderRestoreMd(f: RunbookFacts): string {
  const createdbLocale = [
    f.encoding ? `-E ${f.encoding}` : null,
    f.collate ? `--lc-collate=${f.collate}` : null,
    f.ctype ? `--lc-ctype=${f.ctype}` : null,
  ]
    .filter(Boolean)
    .join(' ');
  const media = f.mediaDir ?? `${f.mastodonDir}/public/system`;
  const pin = f.signer ? ` --signer ${f.signer}` : '';
  return `# Restoring ${f.host} from this folder

Written by permafrost beside the snapshots; a backup rewrites it only when what it says changes
(it names no version or date, so a rebuilt server that keeps its names writes the same text).
This folder is a copy of the vault (on ${f.host}: \`${f.vaultDir}\`). Each snapshot folder
(\`2026-11-26T07-40-00Z\`, UTC) holds \`manifest.json\` and OpenPGP-encrypted parts; list them,
newest last, with \`ls -1d 20*Z\` (older versions a backup device kept are under \`.stversions/\`).

This instance: database **${f.database}** owned by role **${f.owner}**; Mastodon in
\`${f.mastodonDir}\`; media in \`${media}\`. Commands below run in a root shell (\`su -\`; a stock
Debian has no sudo, so they use \`runuser -u USER --\`) from this folder; \`SNAP\` is the snapshot
folder you restore, e.g. \`SNAP=$(ls -1d 20*Z | tail -n 1)\`. PostgreSQL as Debian installs it lets
the postgres OS user in as the superuser over its socket (peer authentication), and nobody else.
${renderBucketSection(f)}
## 1. Packages (Debian names)

    apt-get install gnupg postgresql postgresql-client redis-server coreutils gawk util-linux tar

then Mastodon itself in \`${f.mastodonDir}\` as its own install guide says (the same version as
before: the snapshot's \`manifest.json\` names the newest migration), without running
\`db:setup\`.

## 2. The passphrase

${
  f.passphraseFile === null
    ? `This vault is encrypted to public keys only (\`vault.recipients\`): you need a recipient's
secret key (the file \`permafrost init --generate-keys\` wrote, kept off ${f.host}). Use
\`--identity FILE\` wherever the commands below say \`--passphrase-file /root/passphrase\`
(with stock gpg: \`gpg --import FILE\`, then \`gpg -d\` without \`--passphrase-file\`). Snapshots
made while a passphrase was set decrypt with it too; put it in a file only root can read:`
    : `You need the vault's passphrase file (on ${f.host} it was \`${f.passphraseFile}\`): the copy you
keep offline (password manager, paper, USB stick). Put it in a file only root can read:`
}

    umask 077; cat > /root/passphrase    # paste it, then Ctrl-D

Snapshots encrypted to a public key need the secret key instead (\`--identity FILE\` below).

## 3. Roles and database

Stop Mastodon first if it runs (\`systemctl stop mastodon-web mastodon-sidekiq mastodon-streaming\`).
${
  f.signer
    ? `
Every manifest here is signed by the key **${f.signer}**: restore.sh and \`permafrost restore\`
check each one against the fingerprint you give with \`--signer\` before they decrypt or run
anything, and refuse a snapshot anyone else wrote. This file lives in the same untrusted folder,
so give the fingerprint you kept when \`permafrost init\` or \`permafrost doctor\` printed it,
having checked that it is this one.
`
    : `
This instance's manifests are not signed (\`vault.signingKeyFile\`), so nothing here proves who
wrote a snapshot: restore.sh warns about it, and only a copy you trust is safe to restore.
`
}
**With restore.sh** (beside this file; stock tools only), as root:

    sh restore.sh --passphrase-file /root/passphrase${pin}            # the newest snapshot
    sh restore.sh --passphrase-file /root/passphrase${pin} "$SNAP"    # a named one

Run by root, it reads this folder and the passphrase itself and runs psql and pg_restore as the
postgres OS user (peer authentication), so neither needs to be readable by postgres. With
\`PGUSER\` or a TCP \`PGHOST\` set it connects as they say instead. Where postgres can read this
folder, \`runuser -u postgres -- sh restore.sh --passphrase-file -${pin} < /root/passphrase\` works too
(\`-\`: the passphrase on standard input). It checks who signed each manifest (\`--signer\`), each part's SHA-256 against \`manifest.json\`, decrypts into a
private temp folder (\`$TMPDIR\`, removed on every exit), creates the missing roles, creates
**${f.database}** (owner ${f.owner}, template0, the source's encoding and locale), restores (a
delta-mode snapshot from its whole chain, below), checks row counts and the newest migration (and,
for a delta-mode snapshot, every table's row count and content hash) against the manifest, then
swaps it in. (A delta-mode snapshot whose manifest says \`"rowHash": "hashtext"\` or \`"hashrecord"\` is
checked with a hash whose value depends on the byte order: restore it on a little-endian machine, x86-64
or ARM64; \`hashrecord\` needs PostgreSQL 14 or later.)
An existing **${f.database}** with tables is replaced only with \`--force\` and kept as
\`${f.database}_before_<date>\` until you \`dropdb\` it (\`--force --drop-previous\` drops it after the swap).
\`--database NAME\` restores under another name; \`--identity FILE\` takes a secret key instead.

| exit | meaning |
| --- | --- |
| 0 | restored |
| 1 | a program or the server failed (missing tool, server down, not a superuser, pg_restore, check against the manifest, other sessions on the target, disk space) |
| 2 | bad flags, no such snapshot, a name PostgreSQL cannot take, the target holds tables without \`--force\`, or a signed vault without \`--signer\` |
| 3 | integrity: manifest unreadable, unsigned, signed by another key than \`--signer\` or edited (then nothing is decrypted or run), size or SHA-256 differs, wrong passphrase or key, a snapshot of the chain missing, a restored table unlike its manifest |
| 129, 130, 143 | stopped by a signal; nothing decrypted is left |

**With permafrost** (installed, no config needed). It connects as the OS user it runs as, so on
a peer-authentication server run it as postgres, on a copy of this folder postgres can read (made
as root: the first line; on a backup device's own Syncthing folder use restore.sh instead, since
a changed file there is a "locally changed" item), with the passphrase on standard input:

    chgrp -R postgres . && chmod -R g+rX .
    runuser -u postgres -- permafrost restore --vault "$PWD" --passphrase-file -${pin} < /root/passphrase

(\`--database NAME\` restores under another name; \`SNAPSHOT\` restores another snapshot than the newest;
like psql it connects to \`/var/run/postgresql\` unless \`PGHOST\` names another server.)

**By hand**, with stock commands${
    f.signer
      ? ` (first check the signature: \`gpg --import signer.pub.asc; gpg --verify "$SNAP/manifest.json.sig" "$SNAP/manifest.json"\`
must say "Good signature" and \`using … key ${f.signer}\`, or a subkey of it)`
      : ''
  }:

    umask 077
    gpg -d --batch --pinentry-mode loopback --passphrase-file /root/passphrase --output /root/roles.sql "$SNAP/roles.sql.gpg"
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d postgres < /root/roles.sql
    runuser -u postgres -- createdb -T template0 -O ${f.owner} ${createdbLocale ? `${createdbLocale} ` : ''}${f.database}
    gpg -d --batch --pinentry-mode loopback --passphrase-file /root/passphrase --output /root/db.pgdump "$SNAP/database.pgdump.gpg"
    runuser -u postgres -- pg_restore --exit-on-error -d ${f.database} < /root/db.pgdump
    rm -f /root/db.pgdump /root/roles.sql

A **delta-mode** snapshot (its \`manifest.json\` has \`"chain"\`; no \`database.pgdump.gpg\`) needs its
whole chain: follow \`"reference"\` from folder to folder back to the base (\`"kind": "base"\`, with
\`schema.pgdump.gpg\` and \`rows.sql.gpg\`); each delta holds \`delta.sql.gpg\`. After the roles and
\`createdb\` above, in this order (\`BASE\` the base's folder):

    GPG="gpg -d --batch --pinentry-mode loopback --passphrase-file /root/passphrase"
    $GPG --output /root/schema.pgdump "$BASE/schema.pgdump.gpg"
    runuser -u postgres -- pg_restore --exit-on-error --section=pre-data -d ${f.database} < /root/schema.pgdump
    $GPG "$BASE/rows.sql.gpg" | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d ${f.database} >/dev/null
    $GPG "$DELTA/delta.sql.gpg" | runuser -u postgres -- psql …    # the same for each delta, depth 1 first, "$SNAP" last
    runuser -u postgres -- pg_restore --exit-on-error --section=post-data -d ${f.database} < /root/schema.pgdump
    rm -f /root/schema.pgdump

If any \`gpg\` or \`psql\` of these fails, drop the database and start again from \`createdb\`.
${f.roles ? '' : `\nSnapshots made before roles travelled with them have no \`roles.sql.gpg\`: create the owner by hand\ninstead (\`runuser -u postgres -- createuser ${f.owner}\`), and any other role pg_restore names.\n`}
## 4. Redis
${
  f.redis
    ? `
    systemctl stop redis-server
    umask 077
    gpg -d --batch --pinentry-mode loopback --passphrase-file /root/passphrase --output /var/lib/redis/dump.rdb "$SNAP/redis.rdb.gpg"
    chown redis:redis /var/lib/redis/dump.rdb
    systemctl start redis-server

(\`/var/lib/redis\` is Debian's \`dir\`; \`redis-cli CONFIG GET dir\` names another. Or with
permafrost: \`permafrost restore --vault "$PWD" --passphrase-file /root/passphrase --redis FILE\`.)
`
    : `
This instance's snapshots hold no Redis part: start Redis empty (Mastodon rebuilds its home feeds
with \`RAILS_ENV=production bin/tootctl feeds build\`).
`
}
## 5. Secrets
${
  f.secrets
    ? `
    umask 077
    gpg -d --batch --pinentry-mode loopback --passphrase-file /root/passphrase --output ${f.mastodonDir}/.env.production "$SNAP/env.production.gpg"
    chown mastodon:mastodon ${f.mastodonDir}/.env.production
    chmod 0600 ${f.mastodonDir}/.env.production

Check \`DB_NAME\`, \`DB_HOST\`, \`REDIS_URL\` in it against the new machine.
`
    : `
This instance's snapshots hold no secrets part: bring \`${f.mastodonDir}/.env.production\` (mode
0600, owner mastodon) from where you keep it; without its SECRET_KEY_BASE and OTP secret, sessions
and two-factor logins are lost.
`
}
## 6. Media

The backup device's media folder (its config's \`media.dir\`) is a live copy of \`${media}\`
without \`cache/\` (remote media Mastodon fetches again). Bring it to this machine (a disk, or
\`scp -r\`), set \`DEVICE_MEDIA\` to it (e.g. \`DEVICE_MEDIA=/mnt/nas/media\`) and copy it back
without \`cache/\` and without Syncthing's own \`.stfolder\`, \`.stignore\` and \`.stversions\`
(the web server would serve them from \`public/system\`); tar does it, rsync is not needed:

    mkdir -p ${media}
    tar -C "\${DEVICE_MEDIA:?set DEVICE_MEDIA to the copy of the device's media folder}" --anchored --exclude=./cache --exclude=./.stfolder --exclude=./.stignore --exclude=./.stversions -cf - . | tar -C ${media} -xpf -
    chown -R mastodon:mastodon ${media}

## 7. Mastodon

    cd ${f.mastodonDir}
    runuser -u mastodon -- env RAILS_ENV=production bin/tootctl search deploy    # when Elasticsearch is used
    runuser -u mastodon -- env RAILS_ENV=production bin/tootctl cache clear
    systemctl restart mastodon-web mastodon-sidekiq mastodon-streaming

Then log in, post, and check that media load. Once it works: \`dropdb\` any \`${f.database}_before_…\`
copy restore.sh printed.

## 8. Back up again, with the same key

Set permafrost up on the new server with the key the old snapshots need, so that old and new
snapshots open with the same secret and the device keeps one vault (\`permafrost init\` refuses to
make a new passphrase where snapshots already are):

${
  f.passphraseFile === null
    ? `    permafrost init --mastodon ${f.mastodonDir} --vault ${f.vaultDir} --recipients RECIPIENT.asc    # the public key(s) of vault.recipients`
    : `    permafrost init --mastodon ${f.mastodonDir} --vault ${f.vaultDir} --passphrase-file /root/passphrase`
}

then \`shred -u /root/passphrase\`, and \`permafrost sync apply\` with the devices' ids as before.
`;
}

/**
 * The section for the day only the bucket is left: fetch one snapshot folder (a delta-mode one: its
 * whole chain) and the runbook files with the AWS CLI or rclone, then go on in that folder.
 */
function renderBucketSection(f: RunbookFacts): string {
  const b = f.buckets?.[0];
  const url = b?.url ?? 's3://BUCKET/PREFIX/';
  const where = url.replace(/^s3:\/\//, '');
  const endpoint = b ? b.endpoint : 'https://ENDPOINT';
  const awsEndpoint = endpoint ? ` --endpoint-url ${endpoint}` : '';
  const rcloneRemote = endpoint
    ? `:s3,provider=Other,env_auth=true,endpoint='${endpoint}':`
    : `:s3,provider=AWS,env_auth=true,region=${b?.region ?? 'us-east-1'}:`;
  const named =
    f.buckets && f.buckets.length > 0 ? `: ${f.buckets.map((x) => `\`${x.url}\`${x.endpoint ? ` at ${x.endpoint}` : ''}`).join(', ')}` : '';
  return `
## 0. The snapshots are in a bucket

When the snapshots survive only in object storage${named}, fetch
one snapshot folder and these runbook files into an empty folder with stock tools, then follow the
steps below in that folder (restore.sh there takes the newest snapshot folder with a manifest.json).
The keys come from the environment (\`AWS_ACCESS_KEY_ID\`, \`AWS_SECRET_ACCESS_KEY\`) or \`AWS_PROFILE\`.
A snapshot is complete only with its \`manifest.json\` (uploaded last): list them with
\`aws s3 ls${awsEndpoint} ${url}\` and pick one whose folder holds it. A delta-mode snapshot needs its
chain too: fetch each folder its \`"reference"\` names, back to the base (or the whole prefix).

    SNAP=2026-11-26T07-40-00Z    # the snapshot you picked
    mkdir -p /root/vault && cd /root/vault
    aws s3 cp${awsEndpoint} --recursive ${url}"$SNAP" "$SNAP"
    for f in RESTORE.md restore.sh signer.pub.asc; do aws s3 cp${awsEndpoint} ${url}$f . ; done

or with rclone (\`apt-get install rclone\`, no config file needed):

    rclone copy "${rcloneRemote}${where}$SNAP" "$SNAP"
    rclone copy "${rcloneRemote}${where}" . --max-depth 1 --include RESTORE.md --include restore.sh --include signer.pub.asc

With permafrost installed, no copy is needed: \`permafrost restore latest --vault ${url}${endpoint ? ` --endpoint ${endpoint}` : ''}${b?.pathStyle ? ' --path-style' : ''} --passphrase-file - < /root/passphrase\`
(it fetches the snapshot into a private temp folder and checks it as below).
`;
}

/** Removes temp files of runbook writes a dead run left (the caller holds the run lock). */
async function removeStaleTemps(vaultDir: string): Promise<void> {
  const stale = (await readdir(vaultDir)).filter((n) => RUNBOOK_FILES.some((f) => n.startsWith(`${ATOMIC_TEMP_PREFIX}${f}-`)));
  for (const name of stale) await rm(openVault(vaultDir).leftover(name), { force: true });
}

/**
 * Rewrites RESTORE.md and restore.sh at the vault root after a committed snapshot. Never throws:
 * the snapshot is safe already, so a failure is a warning (the next backup tries again).
 */
/** Replaces `file` atomically unless it already holds exactly `text` with `mode`. */
async function writeIfChanged(file: string, text: string, mode: number): Promise<void> {
  const now = await readFile(file, 'utf8').catch(() => null);
  if (now === text && ((await stat(file)).mode & 0o777) === mode) return;
  await writeFileAtomic(file, text, mode);
}

export async function writeRunbook(config: SourceConfig, manifest: Manifest, signerPublic?: string): Promise<string | null> {
  try {
    await removeStaleTemps(config.vault.dir);
    const script = await readFile(SCRIPT_FILE, 'utf8');
    // writeFileAtomic's temp names start with .permafrost, which Syncthing ignores: never replicated half-written.
    const vault = openVault(config.vault.dir);
    await writeIfChanged(vault.runbookFile('restore.sh'), script, 0o755);
    // The key material restore.sh checks signatures with; the admin's pinned fingerprint is what it trusts.
    if (signerPublic !== undefined) await writeIfChanged(vault.runbookFile('signer.pub.asc'), signerPublic, 0o644);
    await writeIfChanged(vault.runbookFile('RESTORE.md'), renderRestoreMd(runbookFacts(config, manifest)), 0o644);
    return null;
  } catch (err) {
    return `RESTORE.md and restore.sh could not be written in ${config.vault.dir} (${errorMessage(err)}); the snapshot is complete, and the next backup tries again`;
  }
}
