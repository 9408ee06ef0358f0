/**
 * Issue 9 items 5 and 10 against real snapshots: retention keeps the newest verified-good snapshot
 * (verify results from a real `verify`), and a snapshot dated in the future (a clock that ran ahead)
 * is flagged, never taken as "latest", and never lets retention push out the real snapshots.
 */
import { cpSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PruneResult } from '../../../src/ops/prune.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { snapshotIdFor } from '../../../src/vault/store.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { parsePromText, sampleValue } from '../../harness/prom-text.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

const snapshots = (): string[] =>
  readdirSync(ws.vault)
    .filter((n) => /^\d{4}-/.test(n))
    .sort()
    .reverse();

async function backup(): Promise<string> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  const id = (JSON.parse(r.stdout) as Manifest).id;
  // Snapshot ids have one-second resolution: keep them apart.
  await new Promise((res) => setTimeout(res, 1100));
  return id;
}

/** Copies a real snapshot to a folder dated `iso`, with manifest.id and the times edited to match. */
function futureCopy(from: string, iso: string): string {
  const id = snapshotIdFor(new Date(iso));
  const dir = path.join(ws.vault, id);
  cpSync(path.join(ws.vault, from), dir, { recursive: true });
  const file = path.join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  writeFileSync(file, JSON.stringify({ ...m, id, startedAt: iso, finishedAt: iso }, null, 2));
  return id;
}

describe('retention trusts verified snapshots', () => {
  it('never prunes the newest verified-good snapshot, even when the newer ones are unverified or failed', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ extra: { redis: false, secrets: false } });
    const good = await backup();
    const middle = await backup();
    const damaged = await backup();
    expect((await runCli(['--config', ws.configFile, 'verify', good])).code).toBe(0);
    // The newest one is damaged on disk: a real verify records it as failed.
    truncateSync(path.join(ws.vault, damaged, 'database.pgdump.gpg'), 1000);
    const bad = await runCli(['--config', ws.configFile, 'verify', damaged]);
    expect(bad.code).toBe(3);

    ws.writeConfig({ vault: { keep: { last: 1 } }, extra: { redis: false, secrets: false } });
    const dry = await runCli(['--config', ws.configFile, 'prune', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as PruneResult;
    expect(plan.kept).toEqual([
      { id: damaged, reasons: [{ rule: 'last', period: '#1' }] },
      { id: good, reasons: [{ rule: 'verified', period: good }] },
    ]);
    expect(plan.removed).toEqual([middle]);
    const human = await runCli(['--config', ws.configFile, 'prune']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`keep    ${good}  newest verified-good`);
    expect(snapshots()).toEqual([damaged, good]);
  });

  it('within a day, the verified-good snapshot stands for the day rather than a newer unverified one', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ extra: { redis: false, secrets: false } });
    const older = await backup();
    const good = await backup();
    const newer = await backup();
    const newest = await backup();
    expect((await runCli(['--config', ws.configFile, 'verify', good])).code).toBe(0);
    ws.writeConfig({ vault: { keep: { last: 1, daily: 1 } }, extra: { redis: false, secrets: false } });
    const r = await runCli(['--config', ws.configFile, 'prune', '--json']);
    const result = JSON.parse(r.stdout) as PruneResult;
    expect(result.kept.map((k) => [k.id, k.reasons.map((x) => x.rule)])).toEqual([
      [newest, ['last']],
      [good, ['daily']],
    ]);
    expect(result.removed.sort()).toEqual([older, newer].sort());
  });
});

describe('a snapshot dated in the future', () => {
  it('is flagged by list and metrics, refused as "latest", and never lets retention prune the real snapshots', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ extra: { redis: false, secrets: false } });
    const first = await backup();
    const second = await backup();
    const ahead = futureCopy(first, '2099-06-01T12:00:00Z');

    const list = await runCli(['--config', ws.configFile, 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${ahead}\\tin the future \\(\\d+d ahead\\)\\t`, 'm'));
    expect(list.stderr).toContain(`warning: snapshot ${ahead} is dated in the future (the clock ran ahead?)`);
    const json = JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as Array<{ id: string; future: boolean }>;
    expect(json.map((s) => [s.id, s.future])).toEqual([
      [ahead, true],
      [second, false],
      [first, false],
    ]);

    const metrics = parsePromText((await runCli(['--config', ws.configFile, 'metrics'])).stdout);
    expect(sampleValue(metrics, 'permafrost_snapshots_future')).toBe(1);
    const secondManifest = JSON.parse(readFileSync(path.join(ws.vault, second, 'manifest.json'), 'utf8')) as Manifest;
    expect(sampleValue(metrics, 'permafrost_last_success_timestamp_seconds')).toBe(Date.parse(secondManifest.finishedAt) / 1000);

    for (const args of [['verify'], ['verify', 'latest'], ['restore', 'latest', '--database', 'restored_latest']]) {
      const r = await runCli(['--config', ws.configFile, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(errorSentence(r.stderr)).toMatch(
        new RegExp(
          `^Snapshot ${ahead} in .* is dated in the future .* so "latest" is not clear: name the snapshot to use \\(the newest from the past is ${second}\\)`,
        ),
      );
    }
    const byName = await runCli(['--config', ws.configFile, 'verify', second]);
    expect(byName.code, byName.stderr).toBe(0);

    // last: 1 would keep only the future-dated copy if it counted; the real newest stays too.
    ws.writeConfig({ vault: { keep: { last: 1 } }, extra: { redis: false, secrets: false } });
    const pruned = await runCli(['--config', ws.configFile, 'prune', '--json']);
    expect(pruned.code, pruned.stderr).toBe(0);
    const result = JSON.parse(pruned.stdout) as PruneResult;
    expect(result.kept.map((k) => [k.id, k.reasons.map((x) => x.rule)])).toEqual([
      [ahead, ['future']],
      [second, ['last']],
    ]);
    expect(snapshots()).toEqual([ahead, second]);
  });
});
