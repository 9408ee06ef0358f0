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
    ];
    for (const n of own) expect(matches(n), n).toBe(true);
    // What a restore needs is replicated.
    for (const n of ['2026-11-26T07-40-00Z', ...VAULT_NAMES.runbook]) expect(matches(n), n).toBe(false);
  });
});
