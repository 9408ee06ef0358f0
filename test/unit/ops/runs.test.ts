import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { IntegrityError, PermafrostError, UserError } from '../../../src/errors.js';
import { runBackupJob, runCheckJob, verificationFailed } from '../../../src/ops/runs.js';
import type { VerifyResult } from '../../../src/ops/verify.js';
import { runContext } from '../../../src/run-context.js';
import { readLastBackupRun } from '../../../src/vault/runs-state.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { makeWorkspace, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { openVault } from '../../../src/vault/layout.js';

const cluster = clusterPerFile();
const workspaces: Workspace[] = [];
afterAll(() => {
  for (const w of workspaces) w.cleanup();
});
function workspace(withDb: boolean): Workspace {
  const w = makeWorkspace(withDb ? cluster.get() : null, 'no_such_database');
  workspaces.push(w);
  return w;
}
const fail = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => null,
    (e: unknown) => e,
  );

describe('runBackupJob: what a backup run records for the overview', () => {
  it('a backup device makes no backups: one sentence naming its config (exit 2)', async () => {
    const ws = workspace(false);
    const err = await fail(runBackupJob(loadConfig(ws.configFile), runContext()));
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(new RegExp(`^permafrost backup needs a database, but ${ws.configFile} has no database section`));
  });

  it('a failed run is recorded once the vault holds a snapshot; an unused vault folder is left exactly as found', async () => {
    const ws = workspace(true);
    const config: Config = loadConfig(ws.configFile);
    const first = await fail(runBackupJob(config, runContext()));
    expect(first).toBeInstanceOf(PermafrostError);
    expect(await readLastBackupRun(openVault(ws.vault))).toBeNull();
    expect(readdirSync(ws.vault)).toEqual([]);

    fakeSnapshot(ws.vault, '2026-12-01T10:40:00Z');
    const second = await fail(runBackupJob(config, runContext()));
    expect(second).toBeInstanceOf(PermafrostError);
    const run = await readLastBackupRun(openVault(ws.vault));
    expect(run).toMatchObject({ outcome: 'failed', snapshot: null, error: (second as Error).message });
  });

  it('a run stopped on purpose does not count as failed: the last outcome stays as it was', async () => {
    const ws = workspace(true);
    const config: Config = loadConfig(ws.configFile);
    fakeSnapshot(ws.vault, '2026-12-01T10:40:00Z');
    const ac = new AbortController();
    ac.abort();
    await fail(runBackupJob(config, runContext({ signal: ac.signal })));
    expect(await readLastBackupRun(openVault(ws.vault))).toBeNull();
  });
});

describe('runCheckJob', () => {
  it('passes sound snapshots; a damaged file is ok: false (not a throw), and checkFailed names it', async () => {
    const ws = workspace(false);
    const config = loadConfig(ws.configFile);
    const good = fakeSnapshot(ws.vault, '2026-12-01T09:40:00Z');
    const bad = fakeSnapshot(ws.vault, '2026-12-01T10:40:00Z');
    expect((await runCheckJob(config, runContext())).ok).toBe(true);
    writeFileSync(path.join(ws.vault, bad.id, 'database.pgdump.gpg'), 'swapped in\n');
    const r = await runCheckJob(config, runContext());
    expect(r.ok).toBe(false);
    expect(r.snapshots.find((s) => s.id === good.id)?.ok).toBe(true);
    expect(r.snapshots.find((s) => s.id === bad.id)?.problems.join(' ')).toMatch(/database\.pgdump\.gpg/);
    // One snapshot by id: only that one.
    const one = await runCheckJob(config, runContext(), { snapshot: good.id });
    expect(one.snapshots.map((s) => s.id)).toEqual([good.id]);
    expect(one.ok).toBe(true);
  });
});

describe('verificationFailed', () => {
  it('exit 3, naming the snapshot and the first failing check, and what to do', () => {
    const r = { snapshot: '2026-12-01T10-40-00Z', ok: false, reason: 'the row counts differ from the manifest' } as VerifyResult;
    const err = verificationFailed(r);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toBe(
      'Snapshot 2026-12-01T10-40-00Z failed verification: the row counts differ from the manifest; use another snapshot and find out what damaged this one.',
    );
  });
});
