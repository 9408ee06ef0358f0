import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openVault } from '../../../src/vault/layout.js';
import { readLastBackupRun, recordBackupRun, RUNS_STATE_NAME } from '../../../src/vault/runs-state.js';

let vault: string;
beforeEach(() => {
  vault = mkdtempSync(path.join(tmpdir(), 'pf-runs-'));
});
afterEach(() => {
  vi.restoreAllMocks();
  rmSync(vault, { recursive: true, force: true });
});

describe('runs state', () => {
  it('none recorded reads as null; a record replaces the previous one', async () => {
    expect(await readLastBackupRun(openVault(vault))).toBeNull();
    await recordBackupRun(openVault(vault), {
      outcome: 'failed',
      finishedAt: '2026-12-01T10:00:00Z',
      snapshot: null,
      error: 'pg_dump failed.',
    });
    const ok = { outcome: 'ok', finishedAt: '2026-12-01T11:00:00Z', snapshot: '2026-12-01T11-00-00Z', error: null } as const;
    await recordBackupRun(openVault(vault), ok);
    expect(await readLastBackupRun(openVault(vault))).toEqual(ok);
    expect(JSON.parse(readFileSync(path.join(vault, RUNS_STATE_NAME), 'utf8'))).toEqual({ formatVersion: 1, backup: ok });
  });

  it('a garbled or foreign record reads as none (with a warning), never as a success', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    for (const text of [
      '{',
      JSON.stringify({ formatVersion: 2, backup: {} }),
      JSON.stringify({ formatVersion: 1, backup: { outcome: 'great' } }),
    ]) {
      writeFileSync(path.join(vault, RUNS_STATE_NAME), text);
      expect(await readLastBackupRun(openVault(vault))).toBeNull();
    }
    expect(warn).toHaveBeenCalledTimes(3);
  });
});
