import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../../src/ops/doctor.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
let redis: RedisServer;
let openRedis: RedisServer;

beforeAll(() => {
  redis = startRedis({ password: 'init-redis-pw' });
  redis.cli('SET', 'k', 'v');
  openRedis = startRedis();
});
afterAll(() => {
  destroyRedis(redis);
  destroyRedis(openRedis);
});
afterEach(() => ws?.cleanup());

/** A Mastodon folder whose .env.production points at the harness servers, in one of the two database forms. */
function mastodonDir(form: 'DB_*' | 'DATABASE_URL', s3: boolean): { dir: string; env: string } {
  const pg = cluster.get();
  const dir = path.join(ws.dir, 'live');
  mkdirSync(path.join(dir, 'public', 'system', 'accounts'), { recursive: true });
  const db =
    form === 'DB_*'
      ? `DB_HOST=${pg.socketDir}\nDB_PORT=${pg.port}\nDB_NAME=source\nDB_USER=${pg.user}\nDB_PASS=not-needed-with-trust\n`
      : `DATABASE_URL=postgresql://${pg.user}:url%20secret@${encodeURIComponent(pg.socketDir)}:${pg.port}/source\n`;
  const env = [
    'LOCAL_DOMAIN=example.social',
    'SECRET_KEY_BASE=abc123',
    // The URL form carries Redis' password, the DB_* form talks to a Redis without one.
    form === 'DATABASE_URL' ? `REDIS_URL=unix://:init-redis-pw@localhost${redis.socket}` : `REDIS_URL=unix://${openRedis.socket}`,
    'REDIS_PASSWORD=ignored-by-mastodon-when-REDIS_URL-is-set',
    ...(s3 ? ['S3_ENABLED=true', 'S3_BUCKET=files.example.social'] : []),
  ].join('\n');
  writeFileSync(path.join(dir, '.env.production'), `${db}${env}\n`, { mode: 0o600 });
  return { dir, env: path.join(dir, '.env.production') };
}

async function doctor(configFile: string): Promise<{ code: number | null; report: DoctorReport; stdout: string }> {
  const json = await runCli(['--config', configFile, 'doctor', '--json']);
  return {
    code: json.code,
    report: JSON.parse(json.stdout) as DoctorReport,
    stdout: (await runCli(['--config', configFile, 'doctor'])).stdout,
  };
}

const line = (report: DoctorReport, check: string) => report.lines.find((l) => l.check === check);

describe('init → doctor → backup', () => {
  it.each([
    ['DB_*', false],
    ['DATABASE_URL', false],
    ['DB_*', true],
    ['DATABASE_URL', true],
  ] as const)('%s form, S3 %s: init writes a config that doctor passes and backup uses', async (form, s3) => {
    ws = makeWorkspace(null, 'source');
    const m = mastodonDir(form, s3);
    const configFile = path.join(ws.dir, 'etc', 'permafrost.yaml');
    const vault = path.join(ws.dir, 'snapshots');
    const init = await runCli(['--config', configFile, 'init', '--mastodon', m.dir, '--vault', vault]);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/Created the passphrase file .*passphrase \(mode 0400\).*off this server/s);
    expect(init.stdout).toMatch(
      /^retention \(vault\.keep\): last 6, hourly 24, daily 7, weekly 4, monthly 12; older snapshots are deleted after each backup/m,
    );

    const text = readFileSync(configFile, 'utf8');
    expect(text).not.toMatch(/not-needed-with-trust|url secret|url%20secret|init-redis-pw|ignored-by-mastodon/);
    const cfg = parse(text) as Record<string, Record<string, unknown>>;
    expect(cfg.database).toMatchObject({
      name: 'source',
      host: cluster.get().socketDir,
      port: cluster.get().port,
      user: cluster.get().user,
    });
    expect(cfg.redis).toEqual(
      form === 'DATABASE_URL'
        ? { url: `unix://localhost${redis.socket}`, passwordFile: path.join(ws.dir, 'etc', 'redis.password') }
        : { url: `unix://${openRedis.socket}` },
    );
    expect(cfg.secrets).toEqual({ file: m.env });
    expect(cfg.vault!.keep).toEqual({ last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 });
    if (s3) {
      expect(cfg.media).toBeUndefined();
      // Offered for `permafrost offsite media`: no keys in .env.production, so none named (the AWS chain).
      expect(cfg.mediaBucket).toEqual({ bucket: 'files.example.social', region: 'us-east-1', pathStyle: false });
      expect(init.stdout).toMatch(/Media lives in the bucket files.example.social \(S3_ENABLED=true\)/);
    } else {
      expect(cfg.media).toEqual({ dir: path.join(m.dir, 'public', 'system'), ignore: ['cache/**'] });
    }
    const passFile = cfg.vault!.passphraseFile as string;
    expect(statSync(passFile).mode & 0o777).toBe(0o400);
    expect(readFileSync(passFile, 'utf8').trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const dbPw = cfg.database!.passwordFile as string;
    expect(statSync(dbPw).mode & 0o777).toBe(0o600);
    expect(readFileSync(dbPw, 'utf8')).toBe(form === 'DB_*' ? 'not-needed-with-trust\n' : 'url secret\n');

    const d = await doctor(configFile);
    expect(
      d.report.lines.filter((l) => l.status === 'fail'),
      d.stdout,
    ).toEqual([]);
    expect(d.code).toBe(0);
    for (const check of ['config', 'passphrase', 'database', 'pg_dump', 'redis', 'secrets', 'retention', 'vault', 'media']) {
      expect(line(d.report, check)?.status, check).toBe('ok');
    }
    expect(d.stdout).toMatch(/^OK {4}redis: unix:\/\/.* answers PING \(redis-cli \d+\.\d+\)$/m);

    const backup = await runCli(['--config', configFile, 'backup', '--json']);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    const manifest = JSON.parse(backup.stdout) as Manifest;
    expect(manifest.files.map((f) => f.part)).toEqual(['database', 'redis', 'secrets', 'roles']);
    expect(manifest.mastodon?.rowCounts.statuses).toBe(200);
    expect(existsSync(path.join(vault, manifest.id, 'redis.rdb.gpg'))).toBe(true);

    // Once a snapshot exists, doctor also weighs free space against it.
    expect(line((await doctor(configFile)).report, 'vault')?.message).toMatch(/newest snapshot/);
  });

  it('init --generate-keys: no passphrase on the server, the secret key written once (0600) where the admin was told, and backup → stock gpg -d with it / gpg --verify with the signer key work', async () => {
    ws = makeWorkspace(null, 'source');
    const m = mastodonDir('DB_*', true);
    const configFile = path.join(ws.dir, 'etc', 'permafrost.yaml');
    const moveMe = path.join(ws.dir, 'move-me');
    mkdirSync(moveMe);
    const init = await runCli([
      '--config',
      configFile,
      'init',
      '--mastodon',
      m.dir,
      '--vault',
      path.join(ws.dir, 'snapshots'),
      '--generate-keys',
      moveMe,
    ]);
    expect(init.code, init.stderr).toBe(0);
    const cfg = parse(readFileSync(configFile, 'utf8')) as { vault: Record<string, unknown> };
    expect(cfg.vault.passphraseFile).toBeUndefined();
    const [secret] = readdirSync(moveMe);
    const secretFile = path.join(moveMe, secret!);
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    expect(init.stdout).toContain(`Its secret half was written once to ${secretFile} (mode 0600): move it off this server NOW`);
    const fpr = /encrypted to the key ([0-9A-F]{40})/.exec(init.stdout)![1]!;
    expect(cfg.vault.recipients).toEqual([path.join(ws.dir, 'etc', 'recipient.pub.asc')]);

    const d = await doctor(configFile);
    expect(
      d.report.lines.filter((l) => l.status === 'fail'),
      d.stdout,
    ).toEqual([]);
    expect(d.report.lines.filter((l) => l.check === 'recipient' || l.check.endsWith(' key')).map((l) => l.status)).toEqual([
      'ok',
      'ok',
      'ok',
    ]);
    expect(d.stdout).toContain(`key ${fpr} can encrypt`);
    // The signer's fingerprint, for the admin to keep with the key: what a restore pins with --signer.
    const signerFpr = /Manifests are signed by ([0-9A-F]{40})/.exec(init.stdout)![1]!;
    expect(init.stdout).toContain(`Keep the signer's fingerprint ${signerFpr} with that secret key`);
    expect(init.stdout).toContain(`sh restore.sh --signer ${signerFpr}`);
    expect(d.stdout).toContain(
      `key ${signerFpr} is usable; keep this fingerprint with your keys: restores check manifests against it (restore.sh --signer ${signerFpr})`,
    );

    const backup = await runCli(['--config', configFile, 'backup', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const manifest = JSON.parse(backup.stdout) as Manifest;
    const snap = path.join(ws.dir, 'snapshots', manifest.id);
    const home = path.join(ws.dir, 'gnupg');
    mkdirSync(home, { mode: 0o700 });
    const gpg = (args: string[]) => spawnSync('gpg', ['--homedir', home, '--batch', ...args], { encoding: 'utf8' });
    expect(gpg(['--import', secretFile]).status).toBe(0);
    const dec = gpg(['-d', '--output', path.join(ws.dir, 'db.pgdump'), path.join(snap, 'database.pgdump.gpg')]);
    expect(dec.status, dec.stderr).toBe(0);
    expect(gpg(['--import', cfg.vault.signerKeyFile as string]).status).toBe(0);
    const verify = gpg(['--verify', path.join(snap, 'manifest.json.sig'), path.join(snap, 'manifest.json')]);
    expect(verify.status, verify.stderr).toBe(0);
    spawnSync('gpgconf', ['--homedir', home, '--kill', 'all']);
    // The vault carries the signer's public key for restore.sh, and RESTORE.md's commands pin its fingerprint.
    const vaultDir = path.join(ws.dir, 'snapshots');
    expect(readFileSync(path.join(vaultDir, 'signer.pub.asc'), 'utf8')).toContain('BEGIN PGP PUBLIC KEY BLOCK');
    expect(readFileSync(path.join(vaultDir, 'RESTORE.md'), 'utf8')).toContain(
      `sh restore.sh --passphrase-file /root/passphrase --signer ${signerFpr}`,
    );

    // Generating again never replaces the keys.
    const again = await runCli(['--config', configFile, 'init', '--mastodon', m.dir, '--force', '--generate-keys', moveMe]);
    expect(again.code).toBe(2);
    expect(errorSentence(again.stderr)).toMatch(/already exists; keys are never replaced/);
  });

  it('never overwrites a config without --force, and never replaces an existing passphrase', async () => {
    ws = makeWorkspace(null, 'source');
    const m = mastodonDir('DB_*', true);
    const configFile = path.join(ws.dir, 'conf', 'permafrost.yaml');
    expect((await runCli(['--config', configFile, 'init', '--mastodon', m.dir, '--vault', ws.vault])).code).toBe(0);
    const before = readFileSync(configFile, 'utf8');
    const pass = readFileSync(path.join(ws.dir, 'conf', 'passphrase'), 'utf8');
    const again = await runCli(['--config', configFile, 'init', '--mastodon', m.dir]);
    expect(again.code).toBe(2);
    expect(errorSentence(again.stderr)).toMatch(/already exists; pass --force/);
    expect(readFileSync(configFile, 'utf8')).toBe(before);
    const forced = await runCli(['--config', configFile, 'init', '--mastodon', m.dir, '--vault', ws.vault, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/Kept the existing passphrase file/);
    expect(readFileSync(path.join(ws.dir, 'conf', 'passphrase'), 'utf8')).toBe(pass);
  });

  it('a folder without .env.production is a one-sentence error', async () => {
    ws = makeWorkspace(null, 'source');
    const r = await runCli(['--config', path.join(ws.dir, 'x.yaml'), 'init', '--mastodon', ws.dir]);
    expect(r.code).toBe(2);
    expect(errorSentence(r.stderr)).toMatch(/\.env\.production does not exist: pass --mastodon the folder of your Mastodon install/);
  });
});

describe('doctor failures, one clear line each', () => {
  function workspace(): Workspace {
    ws = makeWorkspace(cluster.get(), 'source');
    return ws;
  }

  async function failing(check: string): Promise<{ line: string; report: DoctorReport }> {
    const human = await runCli(['--config', ws.configFile, 'doctor']);
    expect(human.code).toBe(1);
    expect(errorSentence(human.stderr)).toMatch(new RegExp(`doctor found problems \\(.*${check}.*\\)`));
    const json = await runCli(['--config', ws.configFile, 'doctor', '--json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as DoctorReport;
    expect(report.ok).toBe(false);
    const l = human.stdout.split('\n').find((x) => x.startsWith(`FAIL  ${check}:`));
    expect(l, human.stdout).toBeDefined();
    return { line: l!, report };
  }

  it('world-readable passphrase', async () => {
    workspace();
    chmodSync(ws.passFile, 0o644);
    const { line: l } = await failing('passphrase');
    expect(l).toMatch(/has mode 0644, more than 0600 .* fix: run `chmod 600 .*passphrase`/);
  });

  it('pg_dump older than the server (a fake pg_dump 12.0)', async () => {
    workspace();
    const bin = path.join(ws.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 12.0"\n', { mode: 0o755 });
    ws.writeConfig({ database: { binDir: bin } });
    const { line: l, report } = await failing('pg_dump');
    expect(l).toMatch(
      /pg_dump is version 12 but the server is 1\d; pg_dump refuses to dump a newer server — fix: install postgresql-client-1\d/,
    );
    expect(line(report, 'database')?.status).toBe('ok');
  });

  it('unreachable database', async () => {
    workspace();
    ws.writeConfig({ database: { port: 1 } });
    const { line: l, report } = await failing('database');
    expect(l).toMatch(
      /cannot reach database "source" on .*sock:1: connect ENOENT .* — fix: check database\.host\/port\/user\/passwordFile/,
    );
    expect(line(report, 'pg_dump')?.status).toBe('warn');
  });

  it('unwritable vault (a file where its parent folder should be)', async () => {
    workspace();
    const blocker = path.join(ws.dir, 'not-a-folder');
    writeFileSync(blocker, 'x');
    ws.writeConfig({ vault: { dir: path.join(blocker, 'vault') } });
    const { line: l } = await failing('vault');
    expect(l).toMatch(/vault\.dir .*not-a-folder\/vault cannot be created: .*not-a-folder is a file, not a folder — fix:/);
  });

  it('Redis unreachable is a FAIL, or a WARN when optional', async () => {
    workspace();
    const r = startRedis();
    r.stop();
    ws.writeConfig({ extra: { redis: { url: r.url } } });
    const { line: l } = await failing('redis');
    expect(l).toMatch(/cannot reach Redis at unix:\/\/.*Could not connect/);
    ws.writeConfig({ extra: { redis: { url: r.url, optional: true } } });
    const ok = await runCli(['--config', ws.configFile, 'doctor']);
    expect(ok.stdout).toMatch(/^WARN  redis: .*optional/m);
    destroyRedis(r);
  });

  it('a config without vault.keep is a WARN naming the policy to add (doctor still exits 0)', async () => {
    workspace();
    ws.writeConfig({ extra: { redis: false, secrets: false } });
    const r = await runCli(['--config', ws.configFile, 'doctor']);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(
      /^WARN  retention: vault\.keep is not set, so every snapshot is kept until the disk is full — fix: add under vault: `keep: \{ last: 6/m,
    );
    ws.writeConfig({ vault: { keep: { daily: 7 } }, extra: { redis: false, secrets: false } });
    expect((await runCli(['--config', ws.configFile, 'doctor'])).stdout).toMatch(/^OK {4}retention: vault\.keep: daily 7$/m);
  });

  it('a broken config is a FAIL line, not a crash', async () => {
    workspace();
    writeFileSync(ws.configFile, 'vault:\n  dir: /tmp/x\n  bogus: 1\n');
    const { line: l, report } = await failing('config');
    expect(l).toMatch(/vault\.bogus: unknown key/);
    expect(report.lines).toHaveLength(1);
    const missing = await runCli(['--config', path.join(ws.dir, 'missing.yaml'), 'doctor']);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/^FAIL  config: Cannot read config/m);
  });

  it('unreadable media folder', async () => {
    workspace();
    ws.writeConfig({ extra: { media: { dir: path.join(ws.dir, 'no-media-here') } } });
    const { line: l } = await failing('media');
    expect(l).toMatch(/cannot read media\.dir .*no-media-here: ENOENT/);
    expect(readdirSync(ws.vault)).toEqual([]);
  });
});
