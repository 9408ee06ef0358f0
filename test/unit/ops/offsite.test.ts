import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { choosePushes } from '../../../src/ops/offsite.js';
import type { StorageListing } from '../../../src/vault/storage.js';
import { listSnapshots } from '../../../src/vault/store.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-choose-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const full = fakeSnapshot(dir, '2026-12-01T08:40:00Z');
const base = fakeSnapshot(dir, '2026-12-01T09:40:00Z', null);
const d1 = fakeSnapshot(dir, '2026-12-01T10:40:00Z', base);
const d2 = fakeSnapshot(dir, '2026-12-01T11:40:00Z', d1);
const now = new Date('2026-12-01T12:00:00Z');

const remote = (complete: string[], incomplete: string[] = []): StorageListing => ({
  snapshots: [
    ...complete.map((id) => ({ id, files: [{ name: 'manifest.json', bytes: 1 }], complete: true })),
    ...incomplete.map((id) => ({ id, files: [{ name: 'delta.sql.gpg', bytes: 1 }], complete: false })),
  ],
  rootFiles: [],
  foreign: [],
});

describe('choosePushes', async () => {
  const local = (await listSnapshots(dir)).filter((s) => s.manifest !== null) as Parameters<typeof choosePushes>[0];
  const ids = (...a: Parameters<typeof choosePushes>): string[] => choosePushes(...a).map((s) => s.id);

  it.each([
    ['an empty bucket, default: everything, oldest first', remote([]), 'new' as const, [full.id, base.id, d1.id, d2.id]],
    ['default: only what is newer than the newest complete one', remote([full.id, base.id]), 'new' as const, [d1.id, d2.id]],
    ['an incomplete newer snapshot is pushed again (resume)', remote([full.id, base.id, d1.id], [d2.id]), 'new' as const, [d2.id]],
    ['all: every snapshot the bucket lacks', remote([d2.id, d1.id]), 'all' as const, [full.id, base.id]],
    ['a delta by id brings the part of its chain the bucket lacks', remote([base.id]), { id: d2.id }, [d1.id, d2.id]],
    [
      'a future-dated snapshot in the bucket does not hold the others back',
      remote(['2099-01-01T00-00-00Z', base.id]),
      'new' as const,
      [d1.id, d2.id],
    ],
    ['nothing when the bucket has it all', remote([full.id, base.id, d1.id, d2.id]), 'all' as const, []],
  ])('%s', (_what, listing, sel, want) => {
    expect(ids(local, listing, sel, now)).toEqual(want);
  });

  it('a delta pushed by default never goes without its chain, even when the bucket lost the base', () => {
    expect(ids(local, remote([d1.id]), 'new', now)).toEqual([base.id, d2.id]);
  });

  it('an unknown id is a user error', () => {
    expect(() => choosePushes(local, remote([]), { id: '2020-01-01T00-00-00Z' }, now)).toThrow(/is not in the vault/);
  });
});
