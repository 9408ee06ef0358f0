import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runRekey } from '../../../src/ops/rekey.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';

const root = mkdtempSync(path.join(tmpdir(), 'permafrost-rekey-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('rekey (in process)', () => {
  it('first puts right what a killed rekey left: an aside copy back under its name, a stale aside and staging folders removed', async () => {
    const dir = path.join(root, 'v');
    mkdirSync(dir);
    const pass = path.join(root, 'pass');
    writeFileSync(pass, 'correct horse battery staple\n', { mode: 0o600 });
    chmodSync(pass, 0o600);
    // Killed between its two renames: the old copy is aside, nothing has the snapshot's name.
    const back = fakeSnapshot(dir, '2026-11-01T05:00:00Z').id;
    renameSync(path.join(dir, back), path.join(dir, `.rekey-old-${back}`));
    // Killed after the rekeyed copy took the name: the aside copy is stale.
    const done = fakeSnapshot(dir, '2026-11-02T05:00:00Z').id;
    mkdirSync(path.join(dir, `.rekey-old-${done}`));
    // A staging folder of a dead run, and something rekey does not own.
    mkdirSync(path.join(dir, `.partial-rekey-${done}-99999`));
    mkdirSync(path.join(dir, '.rekey-old-not-a-snapshot'));

    const report = await runRekey({ vault: { dir, passphraseFile: pass } }, 'all', {});

    expect(report.notes).toEqual([
      `put snapshot ${back} back from .rekey-old-${back}, where a killed rekey had set it aside before the rekeyed copy took its place`,
      `removed .rekey-old-${done}, the old copy of snapshot ${done} a killed rekey left after it had put the rekeyed one in place`,
    ]);
    expect(readdirSync(dir).sort()).toEqual(['.rekey-old-not-a-snapshot', back, done].sort());
    expect(JSON.parse(readFileSync(path.join(dir, back, 'manifest.json'), 'utf8'))).toMatchObject({ id: back });
    expect(existsSync(path.join(dir, `.partial-rekey-${done}-99999`))).toBe(false);
    // The fake snapshots hold no OpenPGP: each is reported as failed, left as it was.
    expect(report.failed.map((f) => f.snapshot).sort()).toEqual([back, done].sort());
  });
});
