import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EMPTY_TARGET_STATE, readOffsiteState, recordOffsiteTarget } from '../../../src/offsite/state.js';
import { openVault, type Vault } from '../../../src/vault/layout.js';

let dir: string;
let vault: Vault;
let stateFile: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pf-offsite-state-'));
  vault = openVault(dir);
  stateFile = path.join(dir, '.permafrost-offsite.json');
});
afterEach(() => {
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

const pushed = {
  ...EMPTY_TARGET_STATE,
  newestComplete: { id: '2026-12-01T10-00-00Z', pushedAt: '2026-12-01T10:05:00.000Z' },
  lastAttemptAt: '2026-12-01T10:04:00.000Z',
  lastSuccessAt: '2026-12-01T10:05:00.000Z',
  bytes: 4096,
  objects: 5,
};

describe('offsite state', () => {
  it('reads as no targets when the file does not exist', async () => {
    expect(await readOffsiteState(vault)).toEqual({ targets: {} });
  });

  it('records one target at a time, merging with the others, in .permafrost-offsite.json', async () => {
    await recordOffsiteTarget(vault, 'b2', () => pushed);
    await recordOffsiteTarget(vault, 's3', (prev) => {
      expect(prev).toEqual(EMPTY_TARGET_STATE);
      return {
        ...prev,
        lastAttemptAt: '2026-12-01T11:00:00.000Z',
        lastError: 'The bucket refused.',
        failingSince: '2026-12-01T11:00:00.000Z',
      };
    });
    await recordOffsiteTarget(vault, 'b2', (prev) => {
      expect(prev).toEqual(pushed);
      return { ...prev, objects: 6 };
    });
    const state = await readOffsiteState(vault);
    expect(Object.keys(state.targets).sort()).toEqual(['b2', 's3']);
    expect(state.targets.b2).toEqual({ ...pushed, objects: 6 });
    expect(state.targets.s3?.lastError).toBe('The bucket refused.');
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).targets.b2.objects).toBe(6);
  });

  it('a state file from before lockedDeletes existed reads it as 0', async () => {
    const old: Record<string, unknown> = { ...pushed };
    delete old.lockedDeletes;
    writeFileSync(stateFile, JSON.stringify({ targets: { b2: old } }));
    expect((await readOffsiteState(vault)).targets.b2?.lockedDeletes).toBe(0);
  });

  it.each([
    ['not JSON', '{"targets": {'],
    ['a negative size', JSON.stringify({ targets: { b2: { ...pushed, bytes: -1 } } })],
    ['an unknown field', JSON.stringify({ targets: { b2: { ...pushed, evil: true } } })],
    ['a time that is not ISO', JSON.stringify({ targets: { b2: { ...pushed, lastSuccessAt: 'yesterday' } } })],
    ['an array', '[]'],
  ])('a garbled file (%s) is read as empty with a warning, and the next record replaces it', async (_why, text) => {
    writeFileSync(stateFile, text);
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    expect(await readOffsiteState(vault)).toEqual({ targets: {} });
    expect(String(warn.mock.calls[0]?.[0])).toContain(`permafrost state file ${stateFile} is ignored`);
    await recordOffsiteTarget(vault, 'b2', () => pushed);
    expect((await readOffsiteState(vault)).targets).toEqual({ b2: pushed });
  });
});
