import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { parseConfig } from '../../../src/config/load.js';
import { requireSource } from '../../../src/config/normalize.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { pruneAfterBackup, type PruneResult } from '../../../src/ops/prune.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { snapshotIdFor } from '../../../src/vault/store.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

/** Every path under `dir` with its type and, for files, content: detects any change. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      const r = path.join(rel, name);
      if (st.isSymbolicLink()) out.push(`${r} -> link`);
      else if (st.isDirectory()) {
        out.push(`${r}/`);
        walk(p, r);
      } else out.push(`${r} = ${readFileSync(p, 'utf8')}`);
    }
  };
  walk(dir, '');
  return out;
}

const id = (iso: string): string => snapshotIdFor(new Date(iso));

describe('prune', () => {
  it('keeps by the policy in schedule.timezone, says why, --dry-run deletes nothing, and leaves non-snapshots alone', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ vault: { keep: { last: 1, daily: 3, monthly: 2 } }, extra: { schedule: { timezone: 'Europe/Berlin' } } });
    const times = [
      '2026-09-15T10:00:00Z',
      '2026-10-30T12:00:00Z',
      '2026-10-31T23:30:00Z', // 1 Nov 00:30 in Berlin (CET), still October in UTC
      '2026-11-01T08:00:00Z',
      '2026-11-02T08:00:00Z',
      '2026-11-02T09:00:00Z',
    ];
    for (const t of times) fakeSnapshot(ws.vault, t);
    // Things prune must never touch.
    mkdirSync(path.join(ws.vault, '.partial-2026-08-01T00-00-00Z-123'));
    writeFileSync(path.join(ws.vault, '.partial-2026-08-01T00-00-00Z-123', 'database.pgdump.gpg'), 'half');
    mkdirSync(path.join(ws.vault, 'notes'));
    writeFileSync(path.join(ws.vault, '2026-01-01T00-00-00Z'), 'a file with a snapshot name');
    mkdirSync(path.join(ws.vault, '2026-02-01T00-00-00Z')); // no manifest: unreadable, left alone
    // A symlink named like an old snapshot, to a folder with a valid manifest: the policy would drop it.
    fakeSnapshot(ws.dir, '2026-03-01T00:00:00Z');
    symlinkSync(path.join(ws.dir, '2026-03-01T00-00-00Z'), path.join(ws.vault, '2026-03-01T00-00-00Z'));
    const before = tree(ws.vault);

    const dry = await runCli(['--config', ws.configFile, 'prune', '--dry-run', '--json']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    const plan = JSON.parse(dry.stdout) as PruneResult;
    expect(plan.dryRun).toBe(true);
    expect(plan.timezone).toBe('Europe/Berlin');
    expect(plan.kept).toEqual([
      {
        id: id('2026-11-02T09:00:00Z'),
        reasons: [
          { rule: 'last', period: '#1' },
          { rule: 'daily', period: '2026-11-02' },
          { rule: 'monthly', period: '2026-11' },
        ],
      },
      { id: id('2026-11-01T08:00:00Z'), reasons: [{ rule: 'daily', period: '2026-11-01' }] },
      {
        id: id('2026-10-30T12:00:00Z'),
        reasons: [
          { rule: 'daily', period: '2026-10-30' },
          { rule: 'monthly', period: '2026-10' },
        ],
      },
    ]);
    expect(plan.removed).toEqual([id('2026-10-31T23:30:00Z'), id('2026-11-02T08:00:00Z'), id('2026-09-15T10:00:00Z')].sort().reverse());
    expect(plan.ignored.map((i) => i.id)).toEqual(['2026-03-01T00-00-00Z', '2026-02-01T00-00-00Z']);
    expect(tree(ws.vault)).toEqual(before);

    const human = await runCli(['--config', ws.configFile, 'prune', '--dry-run']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`keep    ${id('2026-11-02T09:00:00Z')}  last #1, daily 2026-11-02, monthly 2026-11`);
    expect(human.stdout).toContain(`would delete  ${id('2026-09-15T10:00:00Z')}`);
    expect(human.stdout).toContain('3 kept, 3 would delete, 2 unreadable left alone (periods in Europe/Berlin)');
    expect(tree(ws.vault)).toEqual(before);

    const real = await runCli(['--config', ws.configFile, 'prune', '--json']);
    expect(real.code).toBe(0);
    const done = JSON.parse(real.stdout) as PruneResult;
    expect(done.removed).toEqual(plan.removed);
    expect(tree(ws.vault)).toEqual(before.filter((line) => !plan.removed.some((r) => line.startsWith(`${r}/`))));
    expect(readdirSync(path.join(ws.dir, '2026-03-01T00-00-00Z')).sort()).toEqual(['database.pgdump.gpg', 'manifest.json']);
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.partial-pruned-'))).toEqual([]);
  });

  it('backup prunes after each good snapshot; real and hand-made snapshots count alike', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ vault: { keep: { last: 2 } } });
    fakeSnapshot(ws.vault, '2026-01-01T00:00:00Z');
    fakeSnapshot(ws.vault, '2026-02-01T00:00:00Z');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      ids.push((JSON.parse(r.stdout) as Manifest).id);
    }
    const list = await runCli(['--config', ws.configFile, 'list', '--json']);
    expect((JSON.parse(list.stdout) as Array<{ id: string }>).map((s) => s.id)).toEqual([ids[2], ids[1]]);
    const human = await runCli(['--config', ws.configFile, 'backup']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`pruned 1 old snapshot (vault.keep): ${ids[1]}\n`);
  });

  it('a live backup holding the vault lock makes prune refuse (exit 4)', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ vault: { keep: { last: 1 } } });
    fakeSnapshot(ws.vault, '2026-01-01T00:00:00Z');
    fakeSnapshot(ws.vault, '2026-02-01T00:00:00Z');
    // This test process is alive, so its pid in the lock file is a live holder.
    writeFileSync(path.join(ws.vault, '.permafrost.lock'), `${process.pid}\nbackup\n${new Date().toISOString()}\n`);
    const r = await runCli(['--config', ws.configFile, 'prune']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^permafrost: Another permafrost run \(pid \d+\) holds the lock/);
    expect(readdirSync(ws.vault).filter((n) => !n.startsWith('.')).length).toBe(2);
  });

  it('without vault.keep, prune and prune --dry-run say "no policy: everything is kept" (exit 0) and delete nothing', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    fakeSnapshot(ws.vault, '2026-01-01T00:00:00Z');
    fakeSnapshot(ws.vault, '2026-02-01T00:00:00Z');
    const before = tree(ws.vault);
    for (const args of [['prune', '--dry-run'], ['prune']]) {
      const r = await runCli(['--config', ws.configFile, ...args]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^no policy: everything is kept \(2 snapshots\); set vault\.keep, e\.g\. `keep: \{ last: 6/);
      expect(tree(ws.vault)).toEqual(before);
    }
    const json = JSON.parse((await runCli(['--config', ws.configFile, 'prune', '--dry-run', '--json'])).stdout) as PruneResult;
    expect(json.policy).toBeNull();
    expect(json.removed).toEqual([]);
    expect(json.kept.map((k) => k.id)).toEqual([id('2026-02-01T00:00:00Z'), id('2026-01-01T00:00:00Z')]);
  });

  it('a bad vault.keep is a config error naming the key', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ vault: { keep: { daily: 0, hours: 3 } }, extra: { schedule: { timezone: 'Europe/Berlinn' } } });
    const r = await runCli(['--config', ws.configFile, 'prune']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('vault.keep.hours: unknown key');
    expect(r.stderr).toContain('schedule.timezone: expected an IANA timezone name');
  });

  it('a failing prune after a backup is a warning, not a failure', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    // vault.dir is a file here, so listing the vault fails inside prune.
    const notADir = path.join(ws.dir, 'not-a-dir');
    writeFileSync(notADir, '');
    const config = requireSource(
      parseConfig(
        `database: { name: source }\nvault: { dir: ${ws.vault}, passphraseFile: ${ws.passFile}, keep: { last: 1 } }\n`,
        ws.configFile,
      ),
      'prune',
    );
    const result = await pruneAfterBackup({ ...config, vault: { ...config.vault, dir: notADir } });
    expect(result.result).toBeNull();
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/^the snapshot was written, but pruning old snapshots failed: .*Run `permafrost prune` to retry\.$/);
  });
});
