/**
 * The first hour on a stock Debian Mastodon server, as a new admin lives it: a cluster with peer
 * authentication (Debian's and Mastodon's default), the OS users mastodon and postgres, a Mastodon
 * live folder whose .env.production reaches the database over the socket without a password.
 * init (as root) → doctor (as the user init names) → backup → status → PostgreSQL stops → backup
 * fails → status says so → PostgreSQL is back → backup → status is fine again.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../../src/ops/doctor.js';
import { FIXTURE_SQL, runCli } from '../../harness/env.js';
import { ensureOsUser, runCliAs } from '../../harness/os-user.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';

let pg: PgCluster;
let redis: RedisServer;
let dir: string;
let live: string;
let configFile: string;
let vault: string;
let mastodon: { uid: number; gid: number };

beforeAll(() => {
  mastodon = ensureOsUser('mastodon');
  pg = startCluster(5432, { peer: true });
  // As Mastodon's guide sets it up: a role mastodon (no password) owning mastodon_production.
  pg.psql('postgres', 'CREATE ROLE mastodon LOGIN CREATEDB');
  pg.psql('postgres', 'CREATE DATABASE mastodon_production OWNER mastodon TEMPLATE template0');
  pg.psql('mastodon_production', `SET ROLE mastodon;\n${FIXTURE_SQL}`);
  redis = startRedis({ args: ['--unixsocketperm', '777'] });
  chmodSync(path.dirname(redis.socket), 0o755);

  dir = mkdtempSync(path.join(tmpdir(), 'permafrost-first-hour-'));
  chmodSync(dir, 0o755);
  live = path.join(dir, 'live');
  mkdirSync(path.join(live, 'public', 'system', 'accounts'), { recursive: true });
  // What `mastodon:setup` writes for a local PostgreSQL: the socket folder, an empty DB_PASS.
  const env = [
    'LOCAL_DOMAIN=example.social',
    `DB_HOST=${pg.socketDir}`,
    `DB_PORT=${pg.port}`,
    'DB_NAME=mastodon_production',
    'DB_USER=mastodon',
    'DB_PASS=',
    `REDIS_URL=unix://${redis.socket}`,
    'SECRET_KEY_BASE=abc123',
  ].join('\n');
  writeFileSync(path.join(live, '.env.production'), `${env}\n`, { mode: 0o600 });
  for (const p of [live, path.join(live, 'public'), path.join(live, 'public', 'system'), path.join(live, 'public', 'system', 'accounts')])
    chownSync(p, mastodon.uid, mastodon.gid);
  chownSync(path.join(live, '.env.production'), mastodon.uid, mastodon.gid);
  configFile = path.join(dir, 'etc', 'permafrost', 'permafrost.yaml');
  vault = path.join(dir, 'var', 'snapshots');
}, 120_000);

afterAll(() => {
  if (pg) destroyCluster(pg);
  if (redis) destroyRedis(redis);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const asMastodon = (...args: string[]) => runCliAs('mastodon', ['--config', configFile, ...args]);

describe('first hour on a stock server (peer authentication, OS users mastodon and postgres)', () => {
  it('init (as root) sees peer authentication and hands the backups to the OS user mastodon', async () => {
    const init = await runCli(['--config', configFile, 'init', '--mastodon', live, '--vault', vault]);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(
      /peer authentication.*only the OS user mastodon connects as the role mastodon, so permafrost runs as mastodon/,
    );
    expect(init.stdout).toContain(`Next: \`runuser -u mastodon -- permafrost --config ${configFile} doctor\``);
    const config = parse(readFileSync(configFile, 'utf8')) as { database: Record<string, unknown>; vault: { passphraseFile: string } };
    expect(config.database).toEqual({ name: 'mastodon_production', host: pg.socketDir, port: pg.port, user: 'mastodon' });
    // The user that can connect owns what the backups need; root keeps the config folder, mastodon reads it.
    expect(statSync(config.vault.passphraseFile).uid).toBe(mastodon.uid);
    expect(statSync(vault).uid).toBe(mastodon.uid);
    expect(statSync(path.dirname(configFile)).gid).toBe(mastodon.gid);
    // The units `permafrost systemd --install` writes run as the vault's owner: the user that can connect.
    const units = await runCli(['--config', configFile, 'systemd']);
    expect(units.code, units.stderr).toBe(0);
    expect(units.stdout).toContain('User=mastodon');
  });

  it('doctor as root names the exact fix for peer authentication, not "check database.host/port/user"', async () => {
    const r = await runCli(['--config', configFile, 'doctor', '--json']);
    const db = (JSON.parse(r.stdout) as DoctorReport).lines.find((l) => l.check === 'database')!;
    expect(db.status).toBe('fail');
    expect(db.message).toContain('Peer authentication failed for user "mastodon"');
    expect(db.fix).toContain(`\`runuser -u mastodon -- permafrost --config ${configFile} doctor\``);
    expect(db.fix).toContain('`permafrost root mastodon`');
    expect(db.fix).toContain('`local mastodon_production mastodon peer map=permafrost`');
    expect(db.fix).not.toContain('check database.host');
  });

  it('doctor, run as the user init named, is all OK', async () => {
    const r = await asMastodon('doctor', '--json');
    const report = JSON.parse(r.stdout) as DoctorReport;
    // Syncthing is the next hour's work (a device to send to): its WARN says so; everything else is OK.
    const notOk = report.lines.filter((l) => l.status !== 'ok');
    expect(notOk.map((l) => `${l.check} ${l.status}`)).toEqual(['syncthing warn']);
    expect(report.lines.find((l) => l.check === 'database')?.message).toContain('connected to "mastodon_production"');
    expect(r.code).toBe(0);
  });

  it('backup, then status exit 0', async () => {
    const backup = await asMastodon('backup');
    expect(backup.stderr).not.toMatch(/error/i);
    expect(backup.code).toBe(0);
    const status = await asMastodon('status');
    expect(status.code).toBe(0);
  });

  it('PostgreSQL stopped: backup exit 1 with the sentence that names it', async () => {
    pg.stop();
    const backup = await asMastodon('backup');
    expect(backup.code).toBe(1);
    expect(backup.stderr).toMatch(/PostgreSQL|database/);
  });

  // ── NEEDS ISSUE 21 ITEM 4 (one judgement of health, another branch): passes after that merge. ──
  it('PostgreSQL stopped: status exit 1, naming the failed backup [needs item 4]', async () => {
    const status = await asMastodon('status');
    expect(status.code).toBe(1);
    expect(`${status.stdout}${status.stderr}`).toMatch(/backup/i);
  });

  it('PostgreSQL back: backup, then status exit 0', async () => {
    pg.start();
    const backup = await asMastodon('backup');
    expect(backup.code).toBe(0);
    const status = await asMastodon('status');
    expect(status.code).toBe(0);
  });
});

describe('init where no OS user has the role name', () => {
  it('says exactly what to add to pg_ident.conf and pg_hba.conf', async () => {
    const other = path.join(dir, 'other-live');
    mkdirSync(other);
    writeFileSync(
      path.join(other, '.env.production'),
      `DB_HOST=${pg.socketDir}\nDB_PORT=${pg.port}\nDB_NAME=mastodon_production\nDB_USER=pf_nobody_here\nDB_PASS=\nREDIS_URL=unix://${redis.socket}\n`,
      { mode: 0o600 },
    );
    const r = await runCli([
      '--config',
      path.join(dir, 'other', 'permafrost.yaml'),
      'init',
      '--mastodon',
      other,
      '--vault',
      path.join(dir, 'v2'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('there is no OS user pf_nobody_here on this host');
    expect(r.stdout).toContain('add `permafrost root pf_nobody_here` to ');
    expect(r.stdout).toContain('`local mastodon_production pf_nobody_here peer map=permafrost`');
  });
});
