/**
 * Issue 13 item 6: retention, prune and check understand delta chains. Real delta snapshots of
 * real PostgreSQL, pruned by a backup's own prune and by a GFS policy over several days (the
 * folders renamed to earlier dates afterwards, ids rewritten in the manifests); and hand-made
 * chains on a backup device, where what the server pruned waits in Syncthing's `.stversions`.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { PruneResult } from '../../../src/ops/prune.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { snapshotIdFor } from '../../../src/vault/store.js';
import { DELTA_EXTRA_SQL, stockChainRestore } from '../../harness/delta.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fakeChain, moveToVersions } from '../../harness/fake-snapshot.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile();

let ws: Workspace;
afterEach(() => ws?.cleanup());

interface Listed {
  id: string;
  kind: string | null;
  depth: number | null;
  reference: string | null;
  neededBy: string[];
  versionsOnly: boolean;
}

/** Every snapshot id a kept one's restore reads that is not kept: empty when prune left each chain whole. */
function brokenChains(kept: readonly string[], manifests: ReadonlyMap<string, Manifest>): string[] {
  const held = new Set(kept);
  const broken: string[] = [];
  for (const id of kept) {
    for (let ref = manifests.get(id)?.chain?.reference; ref; ref = manifests.get(ref)?.chain?.reference) {
      if (!held.has(ref)) broken.push(`${id} needs ${ref}`);
    }
  }
  return broken;
}

/**
 * A device holding two days of hourly snapshots, a base every 6 hours: the first day only in
 * `.stversions` (the server pruned it), the second in the folder.
 */
function deviceWithChains(): { chain: Manifest[]; byId: Map<string, Manifest> } {
  ws = makeWorkspace(null, 'unused');
  rmSync(ws.passFile);
  writeFileSync(ws.configFile, stringify({ vault: { dir: ws.vault, keep: { last: 2, daily: 3 } }, schedule: { timezone: 'UTC' } }));
  const day = new Date(Date.now() - 3 * 86_400_000);
  day.setUTCHours(0, 0, 0, 0);
  const chain = fakeChain(ws.vault, day.toISOString(), 48, 6);
  for (const m of chain.slice(0, 24)) moveToVersions(ws.vault, m.id);
  return { chain, byId: new Map(chain.map((m) => [m.id, m])) };
}

const cli = (...args: string[]) => runCli(['--config', ws.configFile, ...args]);

let dbCounter = 0;
/** A fresh fixture database (with the delta extras) and a workspace in delta mode on it. */
function deltaWorkspace(keep?: Record<string, number>): string {
  const db = `prune${++dbCounter}`;
  cluster.createDb(db);
  cluster.get().psql(db, DELTA_EXTRA_SQL);
  ws = makeWorkspace(cluster.get(), db);
  ws.writeConfig({ database: { delta: {} }, vault: keep ? { keep } : {}, extra: { schedule: { timezone: 'UTC' } } });
  return db;
}

/** Some churn, then a backup; `ddl` also changes the schema (a migration), which makes a base. */
async function round(db: string, i: number, ddl = false): Promise<{ manifest: Manifest; stdout: string }> {
  cluster.get().psql(
    db,
    `UPDATE statuses SET text = text || ' r${i}' WHERE id % 5 = ${i % 5};
     INSERT INTO settings VALUES ('round ${i}', 'v', NULL);
     DELETE FROM account_pins WHERE account_id = 2 AND ${i} % 2 = 0;
     INSERT INTO account_pins (account_id, target_account_id) VALUES (2, 1) ON CONFLICT DO NOTHING;
     ${ddl ? `ALTER TABLE statuses ADD COLUMN round_${i} integer DEFAULT ${i};` : ''}`,
  );
  const r = await cli('backup', '--json');
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  return { manifest: JSON.parse(r.stdout) as Manifest, stdout: r.stdout };
}

const vaultIds = (): string[] =>
  readdirSync(ws.vault)
    .filter((n) => /^\d{4}-/.test(n))
    .sort()
    .reverse();

/**
 * Moves each snapshot `from` → `to` (folder renamed; id, times, base and reference rewritten in
 * every manifest), as if the snapshots had been taken then.
 */
function redate(moves: ReadonlyMap<string, string>): void {
  const to = (id: string): string => moves.get(id) ?? id;
  for (const [from, id] of moves) {
    renameSync(path.join(ws.vault, from), path.join(ws.vault, id));
    const file = path.join(ws.vault, id, 'manifest.json');
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    const iso = `${id.slice(0, 10)}T${id.slice(11, 19).replace(/-/g, ':')}Z`;
    const chain = m.chain && { ...m.chain, base: to(m.chain.base), reference: m.chain.reference && to(m.chain.reference) };
    writeFileSync(file, JSON.stringify({ ...m, id, startedAt: iso, finishedAt: iso, chain }, null, 2));
  }
}

describe('prune and check with real delta snapshots', () => {
  it("a backup's own prune (keep { last: 1 }) keeps the whole chain of the newest, drops an old chain once a new base stands alone, and check passes", async () => {
    const db = deltaWorkspace({ last: 1 });
    const pg = cluster.get();
    const chainA: Manifest[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await round(db, i);
      chainA.push(r.manifest);
      expect(JSON.parse(r.stdout)).toMatchObject({ chain: { kind: i === 0 ? 'base' : 'delta', depth: i } });
    }
    // Each delta keeps what it is built on: nothing was pruned.
    expect(vaultIds()).toEqual(chainA.map((m) => m.id).reverse());
    const dry = JSON.parse((await cli('prune', '--dry-run', '--json')).stdout) as PruneResult;
    expect(dry.kept.map((k) => [k.id, k.reasons])).toEqual([
      [chainA[3]!.id, [{ rule: 'last', period: '#1' }]],
      ...[2, 1, 0].map((i) => [chainA[i]!.id, [{ rule: 'needed', period: chainA[3]!.id }]]),
    ]);
    expect(dry.removed).toEqual([]);

    // A migration makes a base, which needs nothing: the old chain goes, in the same backup run.
    const base = await round(db, 4, true);
    expect(base.manifest.chain).toMatchObject({ kind: 'base', depth: 0 });
    expect(vaultIds()).toEqual([base.manifest.id]);
    const delta = await round(db, 5);
    expect(delta.manifest.chain).toMatchObject({ kind: 'delta', reference: base.manifest.id });
    expect(vaultIds()).toEqual([delta.manifest.id, base.manifest.id]);

    const check = await cli('check');
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toBe(`✓ ${delta.manifest.id}\n✓ ${base.manifest.id}\n`);
    stockChainRestore(pg, ws, delta.manifest.id, `${db}_newest`);
    expect(fingerprint(pg, `${db}_newest`)).toEqual(fingerprint(pg, db));
  }, 120_000);

  it('keep { last: 2, daily: 3 } over four days of chains never leaves a kept snapshot without its chain: check passes, and permafrost restore of every kept snapshot gives the source as it was', async () => {
    const db = deltaWorkspace();
    const pg = cluster.get();
    // Three chains of four (a migration before snapshots 4 and 8), three snapshots a day.
    const made: Manifest[] = [];
    const prints: Array<Record<string, string>> = [];
    for (let i = 0; i < 12; i++) {
      made.push((await round(db, i, i === 4 || i === 8)).manifest);
      prints.push(fingerprint(pg, db));
    }
    expect(made.map((m) => `${m.chain!.kind} ${m.chain!.depth}`)).toEqual(
      [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3].map((d) => (d === 0 ? 'base 0' : `delta ${d}`)),
    );
    const day0 = new Date(Date.now() - 5 * 86_400_000);
    day0.setUTCHours(0, 0, 0, 0);
    const ids = made.map((_, i) =>
      snapshotIdFor(new Date(day0.getTime() + Math.floor(i / 3) * 86_400_000 + (8 + (i % 3) * 4) * 3_600_000)),
    );
    redate(new Map(made.map((m, i) => [m.id, ids[i]!])));

    ws.writeConfig({ database: { delta: {} }, vault: { keep: { last: 2, daily: 3 } }, extra: { schedule: { timezone: 'UTC' } } });
    const dry = await cli('prune', '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as PruneResult;
    const at = (i: number): string => ids[i]!;
    const day = (i: number): string => at(i).slice(0, 10);
    // last 2: 11, 10; daily: 11, 8, 5; needed: 9 by 10 (8 is kept already), 4 by 5.
    expect(plan.kept.map((k) => [k.id, k.reasons.map((r) => `${r.rule} ${r.period}`)])).toEqual([
      [at(11), ['last #1', `daily ${day(11)}`]],
      [at(10), ['last #2']],
      [at(9), [`needed ${at(10)}`]],
      [at(8), [`daily ${day(8)}`]],
      [at(5), [`daily ${day(5)}`]],
      [at(4), [`needed ${at(5)}`]],
    ]);
    expect(plan.removed).toEqual([7, 6, 3, 2, 1, 0].map(at));
    const human = await cli('prune');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`keep    ${at(4)}  needed by ${at(5)}\n`);
    expect(human.stdout).toContain(`delete  ${at(6)}\n`);
    expect(vaultIds()).toEqual([11, 10, 9, 8, 5, 4].map(at));

    const manifests = new Map(
      vaultIds().map((id) => [id, JSON.parse(readFileSync(path.join(ws.vault, id, 'manifest.json'), 'utf8')) as Manifest]),
    );
    expect(brokenChains(vaultIds(), manifests)).toEqual([]);
    const check = await cli('check');
    expect(check.code, check.stderr).toBe(0);
    for (const i of [11, 10, 9, 8, 5, 4]) {
      const r = await cli('restore', at(i), '--database', `${db}_r${i}`);
      expect(r.code, r.stderr).toBe(0);
      expect(fingerprint(pg, `${db}_r${i}`), `snapshot ${i}`).toEqual(prints[i]);
    }

    // Removing a needed link by hand is what check reports.
    rmSync(path.join(ws.vault, at(9)), { recursive: true });
    const broken = await cli('check');
    expect(broken.code).toBe(3);
    expect(errorSentence(broken.stderr)).toMatch(
      new RegExp(`^Snapshot ${at(11)} failed its check: it needs ${at(9)}, which is missing; also damaged: ${at(10)};`),
    );
  }, 180_000);
});

const versions = (): string[] => readdirSync(path.join(ws.vault, '.stversions')).sort().reverse();

describe('prune and check with delta chains on a backup device', () => {
  it('keeps every kept snapshot’s chain, in the folder and in .stversions, says "needed by", and check passes afterwards', async () => {
    const { chain, byId } = deviceWithChains();
    const at = (i: number): string => chain[i]!.id;
    const dry = await cli('prune', '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout) as PruneResult;
    // last 2: 47, 46; daily: 47 (day 2), 23 (day 1), and 0 as the oldest (3 days wanted, 2 found).
    expect(plan.kept.map((k) => [k.id, k.reasons.map((r) => `${r.rule} ${r.period}`)])).toEqual([
      [at(47), ['last #1', `daily ${at(47).slice(0, 10)}`]],
      [at(46), ['last #2']],
      ...[45, 44, 43, 42].map((i) => [at(i), [`needed ${at(46)}`]]),
      // 24–41 are in the folder: the server prunes them, the device keeps them until Syncthing moves them.
      ...Array.from({ length: 18 }, (_, k) => [at(41 - k), []]),
      [at(23), [`daily ${at(23).slice(0, 10)}`]],
      ...[22, 21, 20, 19, 18].map((i) => [at(i), [`needed ${at(23)}`]]),
      [at(0), [`daily ${at(0).slice(0, 10)}`]],
    ]);
    expect(plan.removed).toEqual(Array.from({ length: 17 }, (_, k) => at(17 - k)));
    expect(brokenChains([...plan.kept.filter((k) => k.reasons.length > 0).map((k) => k.id)], byId)).toEqual([]);

    const human = await cli('prune', '--dry-run');
    expect(human.stdout).toContain(`keep    ${at(22)}  needed by ${at(23)}\n`);
    expect(human.stdout).toContain(`would delete  ${at(17)}\n`);

    const real = await cli('prune', '--json');
    expect(real.code, real.stderr).toBe(0);
    expect(versions()).toEqual([23, 22, 21, 20, 19, 18, 0].map(at));
    const check = await cli('check');
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).not.toContain('✗');

    const list = JSON.parse((await cli('list', '--json')).stdout) as Listed[];
    const row = (i: number) => list.find((r) => r.id === at(i));
    expect(row(23)).toMatchObject({ kind: 'delta', depth: 5, reference: at(22), neededBy: [], versionsOnly: true });
    expect(row(18)).toMatchObject({ kind: 'base', depth: 0, reference: null, neededBy: [23, 22, 21, 20, 19].map(at) });
    expect(row(0)).toMatchObject({ kind: 'base', neededBy: [] });
    const table = (await cli('list')).stdout.split('\n');
    expect(table[0]).toBe(['SNAPSHOT', 'AGE', 'SIZE', 'KIND', 'VERIFIED', 'CHECKED', 'CONTENTS', 'KEY'].join('\t'));
    expect(table.find((l) => l.startsWith(at(47)))!.split('\t')[3]).toBe('delta 5');
    expect(table.find((l) => l.startsWith(at(42)))!.split('\t')[3]).toBe(`base, needed by ${at(47)} +4`);
  });

  it('a link missing or damaged: check exits 3 naming, for each delta that needs it, the link and what is wrong with it', async () => {
    const { chain } = deviceWithChains();
    const at = (i: number): string => chain[i]!.id;
    // 20 is gone from .stversions; 45 (in the folder) has a changed byte.
    rmSync(path.join(ws.vault, '.stversions', at(20)), { recursive: true });
    const part = path.join(ws.vault, at(45), 'delta.sql.gpg');
    const bytes = readFileSync(part);
    bytes[0]! ^= 1;
    writeFileSync(part, bytes);

    const r = await cli('check');
    expect(r.code).toBe(3);
    expect(errorSentence(r.stderr)).toBe(
      `Snapshot ${at(47)} failed its check: it needs ${at(45)}, which is damaged; also damaged: ${[46, 45, 23, 22, 21].map(at).join(', ')}; ` +
        'restore from another snapshot, and replace the damaged ones from another copy (a backup device, or the server).',
    );
    expect(r.stdout).toContain(`✗ ${at(46)}: it needs ${at(45)}, which is damaged\n`);
    expect(r.stdout).toContain(`✗ ${at(45)}: delta.sql.gpg does not match the SHA-256 in the manifest\n`);
    expect(r.stdout).toContain(`✗ ${at(21)}: it needs ${at(20)}, which is missing\n`);
    expect(r.stdout).toContain(`✓ ${at(44)}\n`);
    expect(r.stdout).toContain(`✓ ${at(19)}\n`);
    // One snapshot by name is judged with its chain too.
    const one = await cli('check', at(23));
    expect(one.code).toBe(3);
    expect(errorSentence(one.stderr)).toMatch(
      new RegExp(`^Snapshot ${at(23)} failed its check: it needs ${at(20)}, which is missing; restore`),
    );
    // list shows the recorded verdict; nothing of the vault was changed by check.
    const list = (await cli('list')).stdout.split('\n');
    expect(list.find((l) => l.startsWith(at(22)))!.split('\t')[5]).toBe(`✗ it needs ${at(20)}, which is missing`);
    expect(existsSync(path.join(ws.vault, '.stversions', at(19)))).toBe(true);
  });

  it('a link Syncthing is still writing: the deltas on it are arriving, not damaged (exit 0, nothing recorded for them)', async () => {
    const { chain } = deviceWithChains();
    const at = (i: number): string => chain[i]!.id;
    writeFileSync(path.join(ws.vault, at(44), '.syncthing.delta.sql.gpg.tmp'), 'half');
    const r = await cli('check');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`… ${at(44)}: still arriving (Syncthing is writing it), not checked\n`);
    expect(r.stdout).toContain(`… ${at(47)}: its chain needs ${at(44)}, which is still arriving (Syncthing is writing it), not checked\n`);
    expect(r.stdout).toContain(`✓ ${at(43)}\n`);
    const state = JSON.parse(readFileSync(path.join(ws.vault, '.permafrost-check.json'), 'utf8')) as { snapshots: Record<string, unknown> };
    expect(Object.keys(state.snapshots)).not.toContain(at(47));
    expect(Object.keys(state.snapshots)).toContain(at(43));
  });
});
