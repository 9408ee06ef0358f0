import { constants } from 'node:fs';
import { access, mkdtemp, opendir, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { SecretsConfig } from '../config/schema-parts.js';
import type { Config, DatabaseConfig } from '../config/schema.js';
import type { Secret } from '../config/secret-values.js';
import { errorMessage } from '../errors.js';
import { connect, pgBin, toolVersion, type PgServer } from '../tools/postgres.js';
import { checkRedisCli, pingRedis, type RedisServer } from '../tools/redis-cli.js';
import { describePolicy, type KeepPolicy } from '../vault/retention.js';
import { newestSnapshotSize } from '../vault/store.js';
import { readCheckState } from '../vault/check.js';
import { deviceFreshness } from '../replicate/device.js';
import { diskSpace } from '../vault/fs-durable.js';
import type { Vault } from '../vault/layout.js';
import { peerFixHere } from './peer.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One line of `permafrost doctor`: what was checked, how it went, and what to do about it. */
export interface CheckLine {
  check: string;
  status: CheckStatus;
  message: string;
  /** What to do; absent when nothing needs doing. */
  fix?: string;
}

const ok = (check: string, message: string): CheckLine => ({ check, status: 'ok', message });
const warn = (check: string, message: string, fix?: string): CheckLine => ({ check, status: 'warn', message, fix });
const fail = (check: string, message: string, fix: string): CheckLine => ({ check, status: 'fail', message, fix });

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}

/**
 * The passphrase file exists, grants nothing beyond 0600, belongs to this user and is not empty;
 * `passphrase` is its content as read at the start (ops/secrets.ts), judged as gpg will read it.
 */
export async function checkPassphrase(
  file: string,
  passphrase: Secret | undefined,
  uid: number | undefined = process.getuid?.(),
): Promise<CheckLine> {
  const name = 'passphrase';
  let st;
  try {
    st = await stat(file);
  } catch {
    return fail(name, `vault.passphraseFile ${file} does not exist`, `create it (\`permafrost init\` does) and keep a copy off the server`);
  }
  if (!st.isFile())
    return fail(name, `vault.passphraseFile ${file} is not a regular file`, 'point vault.passphraseFile at the passphrase file');
  const mode = st.mode & 0o777;
  if ((mode & ~0o600) !== 0) {
    return fail(
      name,
      `${file} has mode ${octal(mode)}, more than 0600 (others or group may read the key to every snapshot)`,
      `run \`chmod 600 ${file}\``,
    );
  }
  if (uid !== undefined && st.uid !== uid) {
    return fail(
      name,
      `${file} is owned by uid ${st.uid}, not by the user running permafrost (uid ${uid})`,
      `run \`chown ${uid} ${file}\`, or run permafrost as its owner`,
    );
  }
  try {
    // Ownership was judged above; the content as gpg will read it on the day of a restore.
    if (!passphrase) throw new Error('the passphrase was not read at the start of the run');
    passphrase.reveal();
  } catch (err) {
    return fail(name, errorMessage(err), 'fix the file so that its first line holds the passphrase');
  }
  return ok(name, `${file} exists, mode ${octal(mode)}, owned by this user`);
}

/** Server major version from `server_version_num` (e.g. 150018 → 15, 90624 → 9.6). */
export function majorOfVersionNum(num: number): string {
  return num >= 100000 ? String(Math.floor(num / 10000)) : `${Math.floor(num / 10000)}.${Math.floor(num / 100) % 100}`;
}

/** Major version of a `pg_dump --version` line's number ("15.18 (Debian …)" → 15, "9.6.24" → 9.6). */
export function majorOfToolVersion(version: string): string | null {
  const m = /^(\d+)(?:\.(\d+))?/.exec(version.trim());
  if (!m) return null;
  const major = Number(m[1]);
  return major >= 10 ? String(major) : `${major}.${m[2] ?? '0'}`;
}

function compareMajor(a: string, b: string): number {
  const [a1, a2 = 0] = a.split('.').map(Number);
  const [b1, b2 = 0] = b.split('.').map(Number);
  return a1! - b1! || a2 - b2;
}

/** Connects to the database; returns its line and the server's major version when reachable. */
export async function checkDatabase(db: PgServer, configPath = 'CONFIG'): Promise<{ line: CheckLine; serverMajor: string | null }> {
  const name = 'database';
  let client;
  try {
    client = await connect(db);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    const why = cause instanceof Error ? cause.message : errorMessage(err);
    const where = `${db.host ?? process.env.PGHOST ?? 'default host'}${db.port ? `:${db.port}` : ''}`;
    const peer = await peerFixHere(why, db.name, configPath);
    if (peer !== null) {
      return { line: fail(name, `cannot connect to database "${db.name}" on ${where}: ${why}`, peer), serverMajor: null };
    }
    return {
      line: fail(
        name,
        `cannot reach database "${db.name}" on ${where}: ${why}`,
        'check database.host/port/user/passwordFile and that PostgreSQL is running',
      ),
      serverMajor: null,
    };
  }
  try {
    const r = await client.query<{ num: string; v: string }>(
      `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS v`,
    );
    const row = r.rows[0]!;
    const major = majorOfVersionNum(Number(row.num));
    return { line: ok(name, `connected to "${db.name}" (PostgreSQL ${row.v})`), serverMajor: major };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Whether the backup's role reads pg_authid, so that the roles part carries the password hashes.
 * Only a superuser does, or a role a superuser granted SELECT on it (no predefined role covers it).
 * It matters when the server logs in with a password (database.passwordFile, Mastodon's DB_PASS):
 * a restored role without one then locks Mastodon out until it is set again.
 */
export async function checkRolePasswords(db: PgServer): Promise<CheckLine> {
  const name = 'role passwords';
  let client;
  try {
    client = await connect(db);
  } catch {
    return warn(name, 'not checked: the database is unreachable', 'fix the database line first');
  }
  try {
    const r = await client.query<{ ok: boolean; u: string }>(
      `SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT') AS ok, current_user AS u`,
    );
    const { ok: readable, u } = r.rows[0]!;
    if (readable) return ok(name, `role ${u} reads pg_authid: snapshots carry the roles' password hashes`);
    const q = `"${u.replace(/"/g, '""')}"`;
    if (db.passwordFile === undefined) {
      return ok(
        name,
        `not captured (role ${u} cannot read pg_authid, only a superuser can); this server logs in without a password (peer), so a restored role needs none, and restore names any role that comes back without one`,
      );
    }
    return warn(
      name,
      `role ${u} cannot read pg_authid (only a superuser can), so snapshots carry no role passwords and a restored ${u} has none, while this server logs in with a password (database.passwordFile)`,
      `let a superuser grant it in this database (a catalog's grants are per database): \`runuser -u postgres -- psql -d ${db.name} -c 'GRANT SELECT ON pg_catalog.pg_authid TO ${q}'\` (it lets ${u} read every role's password hash; no predefined role such as pg_read_all_data covers pg_authid), or run the backups as postgres; otherwise set the password again after a restore (restore prints the ALTER ROLE)`,
    );
  } catch (err) {
    return warn(name, `cannot tell: ${errorMessage(err)}`, 'check the database line');
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** pg_dump must be at least the server's major version, or it refuses to dump. */
export async function checkPgDump(db: DatabaseConfig, serverMajor: string | null): Promise<CheckLine> {
  const name = 'pg_dump';
  const bin = pgBin(db, 'pg_dump');
  let version: string;
  try {
    version = await toolVersion(bin);
  } catch {
    return fail(name, `cannot run ${bin}`, "install PostgreSQL client tools of the server's major version, or set database.binDir");
  }
  const major = majorOfToolVersion(version);
  if (major === null)
    return warn(name, `cannot tell the version of ${bin} from "${version}"`, 'check that database.binDir holds the real pg_dump');
  if (serverMajor === null)
    return warn(name, `${bin} is version ${version}; not compared, the database is unreachable`, 'fix the database line first');
  if (compareMajor(major, serverMajor) < 0) {
    return fail(
      name,
      `${bin} is version ${major} but the server is ${serverMajor}; pg_dump refuses to dump a newer server`,
      `install postgresql-client-${serverMajor} and set database.binDir to its bin folder (e.g. /usr/lib/postgresql/${serverMajor}/bin)`,
    );
  }
  return ok(name, `${bin} is version ${major}, server is ${serverMajor}`);
}

/** Redis answers PING over the configured connection. */
export async function checkRedis(redis: RedisServer | false | undefined): Promise<CheckLine> {
  const name = 'redis';
  if (redis === false) return ok(name, 'turned off (redis: false); snapshots hold no Redis part');
  if (redis === undefined)
    return warn(
      name,
      'not configured; snapshots hold no Redis part',
      'add redis: { url: redis://127.0.0.1:6379 } (or redis: false to turn this off)',
    );
  const cli = await checkRedisCli(redis);
  const r = cli.ok ? await pingRedis(redis) : cli;
  if (r.ok) return ok(name, `${redis.url} answers PING (redis-cli ${cli.ok ? cli.version : '?'})`);
  const line = cli.ok ? `cannot reach Redis at ${redis.url}: ${r.reason}` : r.reason;
  const fix = cli.ok
    ? 'check redis.url and redis.passwordFile and that Redis is running'
    : 'install redis-tools 7 or newer, or set redis.cli';
  return redis.optional ? warn(name, `${line} (optional: snapshots would go on without it)`, fix) : fail(name, line, fix);
}

/** The secrets file can be read by this user. */
export async function checkSecrets(secrets: SecretsConfig | false | undefined): Promise<CheckLine> {
  const name = 'secrets';
  if (secrets === false) return ok(name, 'turned off (secrets: false); snapshots hold no .env.production');
  if (secrets === undefined)
    return warn(
      name,
      'not configured; snapshots hold no .env.production (2FA and sessions are lost without it)',
      'add secrets: { file: /home/mastodon/live/.env.production }',
    );
  try {
    await access(secrets.file, constants.R_OK);
    if (!(await stat(secrets.file)).isFile()) throw new Error('not a regular file');
    return ok(name, `${secrets.file} is readable`);
  } catch (err) {
    const line = `cannot read ${secrets.file}: ${errorMessage(err)}`;
    const fix = 'check secrets.file and run permafrost as a user that can read it';
    return secrets.optional ? warn(name, line, fix) : fail(name, line, fix);
  }
}

/** The nearest existing folder at or above `dir`, or the file that blocks it. */
async function nearestExisting(dir: string): Promise<{ path: string; isDir: boolean }> {
  let p = path.resolve(dir);
  for (;;) {
    try {
      const st = await stat(p);
      return { path: p, isDir: st.isDirectory() };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      const parent = path.dirname(p);
      if (parent === p) throw err;
      p = parent;
    }
  }
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * The vault folder (or the folder backup would create it in) really takes a new entry — probed
 * by creating and removing one, since permission bits say nothing for root — and has free space
 * of at least twice the newest snapshot.
 */
export async function checkVault(vaultDir: string): Promise<CheckLine> {
  const name = 'vault';
  let where: { path: string; isDir: boolean };
  try {
    where = await nearestExisting(vaultDir);
  } catch (err) {
    return fail(name, `cannot inspect ${vaultDir}: ${errorMessage(err)}`, 'check vault.dir');
  }
  if (!where.isDir) {
    return fail(
      name,
      `vault.dir ${vaultDir} cannot be created: ${where.path} is a file, not a folder`,
      'point vault.dir at a folder on a disk with room for the snapshots',
    );
  }
  try {
    const probe = await mkdtemp(path.join(where.path, '.permafrost-doctor-'));
    await rmdir(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return fail(
      name,
      `cannot write in ${where.path} (${code})`,
      `make ${where.path} writable for this user (e.g. \`chown\` it to the user running backups) or pick another vault.dir`,
    );
  }
  const { free } = await diskSpace(where.path);
  const last = (await newestSnapshotSize(vaultDir).catch(() => null))?.bytes ?? null;
  const created = where.path === path.resolve(vaultDir) ? '' : ` (backup will create ${vaultDir})`;
  if (last !== null && free < 2 * last) {
    return fail(
      name,
      `only ${mib(free)} free in ${where.path}, less than twice the newest snapshot (${mib(last)})`,
      'free some space, prune old snapshots, or move vault.dir to a bigger disk',
    );
  }
  const room = last === null ? 'no snapshot yet' : `newest snapshot ${mib(last)}`;
  return ok(name, `${where.path} is writable${created}, ${mib(free)} free (${room})`);
}

/** A retention policy is set: without vault.keep every snapshot is kept until the disk is full. */
export function checkRetention(keep: KeepPolicy | undefined): CheckLine {
  const name = 'retention';
  if (!keep) {
    return warn(
      name,
      'vault.keep is not set, so every snapshot is kept until the disk is full',
      `add under vault: \`keep: { last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 }\``,
    );
  }
  return ok(name, `vault.keep: ${describePolicy(keep)}`);
}

/** Mastodon's media folder can be listed (Syncthing replicates it from there). */
export async function checkMedia(media: Config['media']): Promise<CheckLine> {
  const name = 'media';
  if (!media) return ok(name, 'not configured (object storage, or media not replicated)');
  try {
    const dir = await opendir(media.dir);
    await dir.read();
    await dir.close();
    return ok(name, `${media.dir} is readable`);
  } catch (err) {
    return fail(
      name,
      `cannot read media.dir ${media.dir}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`,
      "check media.dir (Mastodon's public/system) and that this user may read it",
    );
  }
}

/**
 * A backup device's folder: it exists and can be read (Syncthing writes it; a device never creates
 * it), and has room for the next snapshot to arrive (at least the newest one's size free).
 */
export async function checkDeviceFolder(vaultDir: string): Promise<CheckLine> {
  const name = 'device folder';
  try {
    const dir = await opendir(vaultDir);
    await dir.close();
  } catch (err) {
    return fail(
      name,
      `cannot read vault.dir ${vaultDir} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`,
      'point vault.dir at the folder Syncthing receives the snapshots in (`permafrost sync apply` sets it up) and let this user read it',
    );
  }
  const { free } = await diskSpace(vaultDir);
  const last = (await newestSnapshotSize(vaultDir).catch(() => null))?.bytes ?? null;
  if (last !== null && free < last) {
    return fail(
      name,
      `only ${mib(free)} free in ${vaultDir}, less than the newest snapshot (${mib(last)}), so the next one cannot arrive`,
      'free some space (`permafrost prune` applies vault.keep to .stversions) or move the folder to a bigger disk',
    );
  }
  return ok(name, `${vaultDir} is readable, ${mib(free)} free (${last === null ? 'no snapshot yet' : `newest snapshot ${mib(last)}`})`);
}

/** The last `permafrost check` on this device: when, and whether every snapshot passed. */
export async function checkCheckResults(vault: Vault): Promise<CheckLine> {
  const name = 'check results';
  const last = (await readCheckState(vault)).lastRun;
  if (!last) return warn(name, 'no `permafrost check` has run here yet', 'run `permafrost check` (the daemon runs it on schedule.check)');
  if (last.failed.length > 0) {
    return fail(
      name,
      `the check at ${last.checkedAt} found ${last.failed.join(', ')} damaged`,
      'run `permafrost check` to see what is wrong, and replace the damaged snapshots from the server',
    );
  }
  return ok(name, `${last.checked} snapshot(s) passed at ${last.checkedAt}`);
}

/** The device's newest complete snapshot is younger than syncthing.staleAfter: the server still sends. */
export async function checkFreshness(config: Config): Promise<CheckLine> {
  const f = await deviceFreshness(config);
  if (f.problem) return fail('freshness', f.problem, 'look at the server (`permafrost status` there) and at `permafrost status` here');
  return ok('freshness', `newest complete snapshot ${f.newest!.id}, ${f.newest!.ageSeconds}s old (staleAfter ${f.staleAfterSeconds}s)`);
}
