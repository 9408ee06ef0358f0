import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  readLastVerifyRun,
  readVerifyState,
  recordVerify,
  recordVerifyRun,
  VERIFY_STATE_NAME,
  verifyStatePath,
  verifyStatus,
} from '../../../src/recover/verify-state.js';

const A = '2026-12-01T10-00-00Z';
const B = '2026-12-02T10-00-00Z';
const C = '2026-12-03T10-00-00Z';
let vault: string;
beforeEach(() => {
  vault = mkdtempSync(path.join(tmpdir(), 'pf-verify-state-'));
});
afterEach(() => {
  vi.restoreAllMocks();
  rmSync(vault, { recursive: true, force: true });
});

describe('verify state', () => {
  it('lives in the vault under its state name; nothing recorded reads as none', async () => {
    expect(verifyStatePath(vault)).toBe(path.join(vault, VERIFY_STATE_NAME));
    expect(VERIFY_STATE_NAME.startsWith('.permafrost-')).toBe(true);
    expect(await readVerifyState(vault)).toEqual({});
    expect(await readLastVerifyRun(vault)).toBeNull();
  });

  it('records a verdict per snapshot, drops snapshots no longer present, and keeps the last run', async () => {
    const ok = { ok: true, checkedAt: '2026-12-01T11:00:00Z', durationMs: 900 };
    const bad = { ok: false, checkedAt: '2026-12-02T11:00:00Z', durationMs: 1200, reason: 'statuses has 1 rows, the manifest says 2' };
    await recordVerify(vault, A, ok, [A]);
    await recordVerify(vault, B, bad, [A, B]);
    expect(await readVerifyState(vault)).toEqual({ [A]: ok, [B]: bad });
    expect(await readLastVerifyRun(vault)).toEqual({ ...bad, snapshot: B });
    // A was pruned meanwhile.
    await recordVerify(vault, C, ok, [B, C]);
    expect(Object.keys(await readVerifyState(vault)).sort()).toEqual([B, C]);
  });

  it('a run without a verdict changes the last run only', async () => {
    const ok = { ok: true, checkedAt: '2026-12-01T11:00:00Z', durationMs: 900 };
    await recordVerify(vault, A, ok, [A]);
    const down = { ok: false, checkedAt: '2026-12-01T12:00:00Z', durationMs: 5, reason: 'PostgreSQL refused', snapshot: null };
    await recordVerifyRun(vault, down);
    expect(await readLastVerifyRun(vault)).toEqual(down);
    expect(await readVerifyState(vault)).toEqual({ [A]: ok });
  });

  it('a garbled file reads as never verified, not as verified', async () => {
    vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    writeFileSync(verifyStatePath(vault), JSON.stringify({ formatVersion: 1, snapshots: { [A]: { ok: 'yes' } } }));
    const state = await readVerifyState(vault);
    expect(state).toEqual({});
    expect(verifyStatus(state[A])).toBe('never');
  });

  it('verifyStatus: never, verified, failed', () => {
    expect(verifyStatus(undefined)).toBe('never');
    expect(verifyStatus({ ok: true, checkedAt: 't', durationMs: 1 })).toBe('verified');
    expect(verifyStatus({ ok: false, checkedAt: 't', durationMs: 1 })).toBe('failed');
  });
});
