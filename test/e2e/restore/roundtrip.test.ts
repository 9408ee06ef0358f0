import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprint } from '../../harness/fingerprint.js';
import { makeWorkspace, runCli, stockGpgDecrypt, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { spawnSync } from 'node:child_process';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

async function backup(): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

describe('database round trip', () => {
  it('backup → permafrost restore into a new database gives an equal fingerprint', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const manifest = await backup();
    expect(manifest.id).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/);
    expect(manifest.database.name).toBe('source');
    expect(manifest.mastodon).toEqual({
      rowCounts: { accounts: 4, statuses: 200, media_attachments: 40, users: 2 },
      schemaMigration: '20241014010506',
    });
    expect(readdirSync(path.join(ws.vault, manifest.id)).sort()).toEqual(['database.pgdump.gpg', 'manifest.json', 'roles.sql.gpg']);

    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'restored1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`restored snapshot ${manifest.id} into database "restored1"`);
    expect(fingerprint(pg, 'restored1')).toEqual(fingerprint(pg, 'source'));
    // nothing decrypted is left behind
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  });

  it('backup → stock gpg -d + pg_restore --clean --if-exists gives an equal fingerprint', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const manifest = await backup();
    const out = path.join(ws.dir, 'db.pgdump');
    const gpg = stockGpgDecrypt(ws.passFile, path.join(ws.vault, manifest.id, 'database.pgdump.gpg'), out, path.join(ws.dir, 'gnupg'));
    expect(gpg.status, gpg.stderr).toBe(0);
    pg.psql('postgres', 'CREATE DATABASE stock1');
    const restore = spawnSync(path.join(pg.binDir, 'pg_restore'), ['--clean', '--if-exists', '--dbname', 'stock1', out], {
      encoding: 'utf8',
      env: { ...process.env, PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.user },
    });
    expect(restore.status, restore.stderr).toBe(0);
    expect(fingerprint(pg, 'stock1')).toEqual(fingerprint(pg, 'source'));
    spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: path.join(ws.dir, 'gnupg') } });
  });

  it('list shows snapshots newest first', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const first = await backup();
    const second = await backup();
    const r = await runCli(['--config', ws.configFile, 'list', '--json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<{ id: string; parts: string[] }>;
    expect(rows.map((x) => x.id)).toEqual([second.id, first.id]);
    expect(rows[0]!.parts).toEqual(['database', 'roles']);
    expect(existsSync(path.join(ws.vault, second.id))).toBe(true);
  });
});
