import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { commitPartial, createPartial, snapshotIdFor } from '../../../src/vault/store.js';

let vault: string;
afterEach(() => rmSync(vault, { recursive: true, force: true }));

async function commitAt(id: string): Promise<string> {
  const partial = await createPartial(vault, id);
  return commitPartial(partial, { id } as unknown as Manifest);
}

describe('commitPartial: snapshot ids only grow', () => {
  it('two runs within one second: the second takes the next second', async () => {
    vault = mkdtempSync(path.join(tmpdir(), 'permafrost-store-'));
    const t = new Date(Date.now() - 60_000);
    const first = await commitAt(snapshotIdFor(t));
    const second = await commitAt(snapshotIdFor(t));
    expect(second > first).toBe(true);
  });

  // The fast rounds of a delta chain: base B moved to second s+1 because s was taken, the snapshot
  // at s pruned; the next run, still in second s, must not be named before B (it is built on B, and
  // retention reads newest-first by id: named s, it was pruned and B's chain lost its newest link).
  it('a run in a second before the newest snapshot (moved there by an earlier clash) is named after it', async () => {
    vault = mkdtempSync(path.join(tmpdir(), 'permafrost-store-'));
    const t = new Date(Date.now() - 60_000);
    const s = snapshotIdFor(t);
    const later = snapshotIdFor(new Date(t.getTime() + 1000));
    mkdirSync(path.join(vault, later));
    const id = await commitAt(s);
    expect(id).toBe(snapshotIdFor(new Date(t.getTime() + 2000)));
    expect(readdirSync(vault).sort()).toEqual([later, id]);
  });

  it('a snapshot dated in the future (a clock that ran ahead) does not drag new ids after it', async () => {
    vault = mkdtempSync(path.join(tmpdir(), 'permafrost-store-'));
    mkdirSync(path.join(vault, snapshotIdFor(new Date(Date.now() + 30 * 86_400_000))));
    const s = snapshotIdFor(new Date(Date.now() - 60_000));
    expect(await commitAt(s)).toBe(s);
  });
});
