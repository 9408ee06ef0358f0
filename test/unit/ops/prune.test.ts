import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { runPrune } from '../../../src/ops/prune.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';

const root = mkdtempSync(path.join(tmpdir(), 'permafrost-prune-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A server's config for a vault in `dir` keeping the newest `last` snapshots. */
const config = (dir: string, last: number): Config =>
  ({ role: 'source', configPath: 'test', vault: { dir, keep: { last } }, schedule: {} }) as unknown as Config;

describe('prune (in process)', () => {
  it('removes what the policy does not keep, through its trash name, and leaves nothing of it behind', async () => {
    const dir = path.join(root, 'v');
    mkdirSync(dir);
    const ids = ['2026-11-01T05:00:00Z', '2026-11-02T05:00:00Z', '2026-11-03T05:00:00Z'].map((iso) => fakeSnapshot(dir, iso).id);
    const r = await runPrune(config(dir, 1));
    expect(r.removed.sort()).toEqual(ids.slice(0, 2).sort());
    expect(r.kept.map((k) => k.id)).toEqual([ids[2]]);
    // Only the kept snapshot is left: no trash folder (.partial-pruned-…), no lock.
    expect(readdirSync(dir)).toEqual([ids[2]]);
  });

  it('with --dry-run removes nothing', async () => {
    const dir = path.join(root, 'dry');
    mkdirSync(dir);
    for (const iso of ['2026-11-01T05:00:00Z', '2026-11-02T05:00:00Z']) fakeSnapshot(dir, iso);
    const before = readdirSync(dir).sort();
    const r = await runPrune(config(dir, 1), { dryRun: true });
    expect(r.removed).toHaveLength(1);
    expect(readdirSync(dir).sort()).toEqual(before);
  });
});
