import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import type { Manifest, ManifestFile } from '../../../src/vault/manifest.js';
import { commitPartial, createPartial, snapshotIdFor } from '../../../src/vault/store.js';
import { writeEncryptedPart } from '../../../src/crypto/write-part.js';
import { loadConfig } from '../../../src/config/load.js';
import { runVerify } from '../../../src/ops/verify.js';
import { runContext } from '../../../src/run-context.js';
import { readJobSecrets } from '../../../src/ops/secrets.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

function scratchDbs(): string[] {
  return cluster
    .get()
    .psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE 'permafrost_verify%' OR datname LIKE 'scratch%'`)
    .split('\n')
    .filter(Boolean);
}

async function backup(): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

async function verify(...args: string[]) {
  return runCli(['--config', ws.configFile, 'verify', ...args]);
}

async function listed(): Promise<Array<{ id: string; verified: string }>> {
  const r = await runCli(['--config', ws.configFile, 'list', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Array<{ id: string; verified: string }>;
}

function passphrase(): string {
  return readFileSync(ws.passFile, 'utf8').split('\n')[0]!;
}

/** Writes a snapshot the way the backup does, from a plaintext stream per part, with a chosen manifest. */
async function craftSnapshot(
  base: Manifest,
  parts: Array<{ name: ManifestFile['name']; part: ManifestFile['part']; plain: Readable }>,
  offsetSeconds: number,
): Promise<string> {
  const id = snapshotIdFor(new Date(Date.parse(base.startedAt) + offsetSeconds * 1000));
  const partial = await createPartial(ws.vault, id);
  const files = [];
  for (const p of parts)
    files.push(await writeEncryptedPart({ dir: partial.dir, part: p.part, keys: { passphrase: passphrase(), recipients: [] } }, p.plain));
  return commitPartial(partial, { ...base, id, files });
}

function pgDumpStream(extra: string[]): Readable {
  const pg = cluster.get();
  const child = spawn(
    path.join(pg.binDir, 'pg_dump'),
    ['--format=custom', ...extra, '--host', pg.socketDir, '--port', String(pg.port), '--username', pg.user, '--dbname', 'source'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return child.stdout;
}

describe('permafrost verify', () => {
  it('passes on a fresh snapshot, records it for list, and leaves no scratch database', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const m = await backup();
    expect((await listed())[0]!.verified).toBe('never');
    const r = await verify('latest', '--json');
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { ok: boolean; snapshot: string; checks: Array<{ name: string; ok: boolean; detail: string }> };
    expect(result.ok).toBe(true);
    expect(result.snapshot).toBe(m.id);
    expect(result.checks.map((c) => c.name)).toEqual([
      'decrypt-database',
      'archive',
      'restore',
      'tables',
      'row-counts',
      'schema-migration',
      'decrypt-roles',
    ]);
    expect(result.checks.find((c) => c.name === 'archive')!.detail).toContain('7 tables');
    expect(scratchDbs()).toEqual([]);
    expect(await listed()).toMatchObject([{ id: m.id, verified: 'verified' }]);

    const text = await verify(m.id);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`snapshot ${m.id} verified`);
    expect(text.stdout).toContain('✓ row-counts: row counts equal the manifest (accounts 4, statuses 200, media_attachments 40, users 2)');
    const table = await runCli(['--config', ws.configFile, 'list']);
    // Columns: id, age, size, verified, checked (never: `permafrost check` has not run), parts.
    expect(table.stdout.split('\n')[1]).toMatch(new RegExp(`^${m.id}\\t.*\\t✓\\tnever\\tdatabase,roles\\tpassphrase$`));
  });

  it('fails naming the checksum for a tampered snapshot, and records the failure', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const m = await backup();
    const file = path.join(ws.vault, m.id, 'database.pgdump.gpg');
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(file, bytes);
    const r = await verify();
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      `permafrost: Snapshot ${m.id} failed verification: database.pgdump.gpg does not match the SHA-256 in the manifest`,
    );
    expect(scratchDbs()).toEqual([]);
    expect(await listed()).toMatchObject([{ id: m.id, verified: 'failed' }]);
    expect((await runCli(['--config', ws.configFile, 'list'])).stdout).toContain('✗ failed');
  });

  it('fails naming the table when a row count in the manifest was edited', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const m = await backup();
    const manifestFile = path.join(ws.vault, m.id, 'manifest.json');
    const edited = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    edited.mastodon!.rowCounts.statuses = 201;
    writeFileSync(manifestFile, JSON.stringify(edited));
    const r = await verify();
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('failed verification: statuses has 200 rows, the manifest says 201');
    expect(scratchDbs()).toEqual([]);
  });

  it('fails naming the table when the archive lacks a table the manifest claims', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const m = await backup();
    const id = await craftSnapshot(
      m,
      [{ name: 'database.pgdump.gpg', part: 'database', plain: pgDumpStream(['--exclude-table=media_attachments']) }],
      60,
    );
    const r = await verify(id);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('failed verification: table "public"."media_attachments" of the manifest is missing after restore');
    expect(scratchDbs()).toEqual([]);
    // the honest snapshot still verifies
    expect((await verify(m.id)).code).toBe(0);
  });

  it('checks Redis and secrets parts: a part that is not RDB fails, real parts pass', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const m = await backup();
    // A minimal valid RDB (version 9, no keys): magic, version, EOF opcode, 8-byte checksum.
    const rdb = Buffer.concat([Buffer.from('REDIS0009', 'latin1'), Buffer.from([0xff]), Buffer.alloc(8)]);
    const good = await craftSnapshot(
      m,
      [
        { name: 'database.pgdump.gpg', part: 'database', plain: pgDumpStream([]) },
        { name: 'redis.rdb.gpg', part: 'redis', plain: Readable.from([rdb]) },
        { name: 'env.production.gpg', part: 'secrets', plain: Readable.from([Buffer.from('SECRET_KEY_BASE=abc\n')]) },
      ],
      120,
    );
    const ok = await verify(good, '--json');
    expect(ok.code, ok.stderr).toBe(0);
    const names = (JSON.parse(ok.stdout) as { checks: Array<{ name: string }> }).checks.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['decrypt-redis', 'redis', 'decrypt-secrets']));

    const bad = await craftSnapshot(
      m,
      [
        { name: 'database.pgdump.gpg', part: 'database', plain: pgDumpStream([]) },
        { name: 'redis.rdb.gpg', part: 'redis', plain: Readable.from([Buffer.from('not an rdb file at all')]) },
      ],
      180,
    );
    const r = await verify(bad);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('failed verification: the Redis part is not an RDB file');
    expect(scratchDbs()).toEqual([]);
  });

  it('uses verify.database, replaces its own leftover, and never drops a database it did not make', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ extra: { verify: { database: 'scratch_v' } } });
    await backup();
    // A leftover of a killed run carries permafrost's mark and is replaced.
    cluster
      .get()
      .psql('postgres', `CREATE DATABASE scratch_v; COMMENT ON DATABASE scratch_v IS 'permafrost verify scratch database; safe to drop'`);
    const r = await verify();
    expect(r.code, r.stderr).toBe(0);
    expect(scratchDbs()).toEqual([]);
    // A database of that name that permafrost did not make is refused and left alone.
    cluster.get().psql('postgres', 'CREATE DATABASE scratch_v');
    const refused = await verify();
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('database "scratch_v" already exists and was not made by permafrost');
    expect(scratchDbs()).toEqual(['scratch_v']);
    cluster.get().psql('postgres', 'DROP DATABASE scratch_v');
  });

  it('stopped mid-restore (daemon shutdown): throws, records nothing, leaves no scratch database', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    await backup();
    const ac = new AbortController();
    const cfg = loadConfig(ws.configFile);
    const run = runVerify(
      cfg,
      runContext({
        signal: ac.signal,
        events: { phase: (p) => (p === 'restore' ? ac.abort() : undefined) },
      }),
      readJobSecrets(cfg),
    );
    await expect(run).rejects.toThrow(/was stopped before it finished; nothing was recorded/);
    expect(scratchDbs()).toEqual([]);
    expect((await listed())[0]!.verified).toBe('never');
  });
});
