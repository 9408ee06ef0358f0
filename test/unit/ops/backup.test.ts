import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { requireSource } from '../../../src/config/normalize.js';
import { runBackup } from '../../../src/ops/backup.js';
import { runVaultCheck } from '../../../src/ops/check.js';
import { readJobSecrets } from '../../../src/ops/secrets.js';
import { runContext } from '../../../src/run-context.js';
import { listSnapshots } from '../../../src/vault/store.js';
import { makeWorkspace, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

// runBackup in process against the harness PostgreSQL (the Mastodon-shaped fixture); the CLI's own path is test/e2e/backup/.
const cluster = clusterPerFile('backupsrc');
const workspaces: Workspace[] = [];
afterAll(() => {
  for (const w of workspaces) w.cleanup();
});
const source = () => {
  const ws = makeWorkspace(cluster.get(), 'backupsrc');
  workspaces.push(ws);
  const config = requireSource(loadConfig(ws.configFile), 'backup');
  return { ws, config, secrets: readJobSecrets(config) };
};

describe('runBackup', () => {
  it('commits one whole snapshot: database and roles parts, the manifest last, the facts of the source, and check passes', async () => {
    const { ws, config, secrets } = source();
    const r = await runBackup(config, runContext(), secrets);
    expect(r.dir).toBe(path.join(ws.vault, r.manifest.id));
    expect(r.manifest.files.map((f) => f.part).sort()).toEqual(['database', 'roles']);
    expect(r.manifest.database.name).toBe('backupsrc');
    expect(r.manifest.mastodon?.rowCounts.accounts).toBeGreaterThan(0);
    expect(r.warnings).toEqual([]);
    expect(readdirSync(r.dir).sort()).toEqual(['database.pgdump.gpg', 'manifest.json', 'roles.sql.gpg']);
    // No partial folder or temp left beside it.
    expect(readdirSync(ws.vault).filter((n) => n !== r.manifest.id && !n.startsWith('.') && !/^[A-Z]|restore\.sh/.test(n))).toEqual([]);
    const listed = await listSnapshots(ws.vault);
    expect(listed.map((s) => s.id)).toEqual([r.manifest.id]);
    expect((await runVaultCheck(config, undefined)).ok).toBe(true);
  });

  it('a second run makes a second snapshot beside the first, never touching it', async () => {
    const { ws, config, secrets } = source();
    const a = await runBackup(config, runContext(), secrets);
    await new Promise((res) => setTimeout(res, 1100));
    const b = await runBackup(config, runContext(), secrets);
    expect(b.manifest.id).not.toBe(a.manifest.id);
    expect((await listSnapshots(ws.vault)).map((s) => s.id).sort()).toEqual([a.manifest.id, b.manifest.id].sort());
    expect((await runVaultCheck(config, undefined)).ok).toBe(true);
  });

  it('a database that is not there fails the run with one sentence and leaves no snapshot', async () => {
    const { ws, config, secrets } = source();
    const missing = { ...config, database: { ...config.database, name: 'no_such_db' } };
    const err = await runBackup(missing, runContext(), secrets).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(/no_such_db/);
    expect((await listSnapshots(ws.vault)).length).toBe(0);
    // Not even the partial folder it was writing into: the vault is as it was.
    expect(readdirSync(ws.vault)).toEqual([]);
  });

  it('a run stopped before it starts writes no snapshot and says so', async () => {
    const { ws, config, secrets } = source();
    const ac = new AbortController();
    ac.abort();
    const err = await runBackup(config, runContext({ signal: ac.signal }), secrets).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ kind: 'stopped', message: 'Backup was stopped before it finished; no snapshot was written.' });
    expect(existsSync(ws.vault) ? readdirSync(ws.vault) : []).toEqual([]);
  });
});
