/**
 * Issue 13 item 6: retention, prune and check understand delta chains. Hand-made chains (many
 * snapshots at chosen dates, which the CLI cannot make) on a backup device, where what the server
 * pruned waits in Syncthing's `.stversions`.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { PruneResult } from '../../src/jobs/prune.js';
import type { Manifest } from '../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../harness/env.js';
import { fakeChain, moveToVersions } from '../harness/fake-snapshot.js';

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
    expect(table[0]).toBe(['SNAPSHOT', 'AGE', 'SIZE', 'KIND', 'VERIFIED', 'CHECKED', 'CONTENTS'].join('\t'));
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
});
