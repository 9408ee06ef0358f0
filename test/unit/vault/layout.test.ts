import { describe, expect, it } from 'vitest';
import { openVault, VAULT_IGNORES, VAULT_NAMES } from '../../../src/vault/layout.js';

describe('vault layout', () => {
  it('names every path inside a vault from one place', () => {
    const v = openVault('/v');
    expect(v.snapshotDir('2026-11-26T07-40-00Z')).toBe('/v/2026-11-26T07-40-00Z');
    expect(v.snapshotFile('2026-11-26T07-40-00Z', 'manifest.json')).toBe('/v/2026-11-26T07-40-00Z/manifest.json');
    expect(v.partialDir('2026-11-26T07-40-00Z', 42)).toBe('/v/.partial-2026-11-26T07-40-00Z-42');
    expect(v.versionsDir()).toBe('/v/.stversions');
    expect(v.versionsDir('X')).toBe('/v/.stversions/X');
    expect(v.lockFile).toBe('/v/.permafrost.lock');
    expect(v.stateFile('check')).toBe('/v/.permafrost-check.json');
    expect(v.deltaNextDir(7)).toBe('/v/.permafrost-delta.next-7');
    expect(v.runbookFile('restore.sh')).toBe('/v/restore.sh');
    expect(v.stateFile('runs')).toBe('/v/.permafrost-runs.json');
    expect(v.deltaStateDir()).toBe('/v/.permafrost-delta');
    expect(v.deltaOldDir(7)).toBe('/v/.permafrost-delta.old-7');
    expect(v.pruningDir('X')).toBe('/v/.partial-pruned-X');
    expect(v.rekeyAsideDir('X')).toBe('/v/.rekey-old-X');
  });

  it('reads back the snapshot a rekey set aside, and nothing else', () => {
    const v = openVault('/v');
    expect(v.rekeyAsideId('.rekey-old-2026-11-26T07-40-00Z')).toBe('2026-11-26T07-40-00Z');
    expect(v.rekeyAsideId('2026-11-26T07-40-00Z')).toBeNull();
    expect(v.rekeyAsideId('.partial-rekey-2026-11-26T07-40-00Z-7')).toBeNull();
  });

  it('gives the path of a leftover of a run, and refuses any other root entry (a snapshot, the runbook, a state file)', () => {
    const v = openVault('/v');
    for (const name of [
      '.partial-X-1',
      '.partial-pruned-X',
      '.partial-rekey-X-1',
      '.permafrost-tmp-RESTORE.md-1',
      '.permafrost-delta.next-1',
      '.permafrost-delta.old-1',
      '.rekey-old-X',
    ])
      expect(v.leftover(name), name).toBe(`/v/${name}`);
    for (const name of [
      '2026-11-26T07-40-00Z',
      'RESTORE.md',
      '.permafrost-check.json',
      '.permafrost-delta',
      '.permafrost.lock',
      '.stversions',
      '.partial-',
      '.partial-/../x',
      '..',
    ])
      expect(() => v.leftover(name), name).toThrow(/is not an entry a permafrost run leaves/);
  });

  it('keeps the staging and trash names of prune and rekey partial folders (never replicated, swept by the next run)', () => {
    expect(VAULT_NAMES.pruningPrefix.startsWith(VAULT_NAMES.partialPrefix)).toBe(true);
    expect(openVault('/v').partialDir(`${VAULT_NAMES.rekey.stagingTag}X`, 1)).toBe('/v/.partial-rekey-X-1');
  });

  it('keeps everything that is this host own out of replication with its ignore patterns', () => {
    // Each of permafrost's own names must match an ignore pattern (anchored, * = any suffix).
    const matches = (name: string): boolean =>
      VAULT_IGNORES.some((p) => new RegExp(`^${p.slice(1).replace(/[.]/g, '\\.').replace(/\*/g, '.*')}$`).test(name));
    const own = [
      VAULT_NAMES.lock,
      `${VAULT_NAMES.partialPrefix}X-1`,
      `${VAULT_NAMES.atomicTempPrefix}RESTORE.md-1`,
      ...Object.values(VAULT_NAMES.state),
      VAULT_NAMES.delta.dir,
      `${VAULT_NAMES.delta.nextPrefix}1`,
      `${VAULT_NAMES.delta.oldPrefix}1`,
      `${VAULT_NAMES.pruningPrefix}X`,
      `${VAULT_NAMES.rekey.asidePrefix}2026-11-26T07-40-00Z`,
    ];
    for (const n of own) expect(matches(n), n).toBe(true);
    // What a restore needs is replicated.
    for (const n of ['2026-11-26T07-40-00Z', ...VAULT_NAMES.runbook]) expect(matches(n), n).toBe(false);
  });
});
