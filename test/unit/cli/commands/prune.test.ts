import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { Config } from '../../../../src/config/schema.js';

const ops = vi.hoisted(() => ({ runPrune: vi.fn(), sweepAndReport: vi.fn() }));
vi.mock('../../../../src/ops/prune.js', () => ({ runPrune: ops.runPrune }));
vi.mock('../../../../src/recover/sweep.js', () => ({ sweepAndReport: ops.sweepAndReport }));

const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));
beforeEach(() => {
  ops.runPrune.mockReset();
  ops.sweepAndReport.mockReset();
});

const policy = { last: 2 };

describe('permafrost prune', () => {
  it('sweeps dead runs first, then prunes; lists kept (with why), deleted and unreadable, and the totals', async () => {
    ops.runPrune.mockResolvedValue({
      dryRun: false,
      timezone: 'Europe/Berlin',
      policy,
      kept: [
        { id: 'C', reasons: [{ rule: 'last', period: '1' }, { rule: 'verified' }] },
        { id: 'B', reasons: [{ rule: 'needed', period: 'C' }] },
      ],
      removed: ['A'],
      ignored: [{ id: 'X', problem: 'manifest.json unreadable' }],
    });
    const r = await runInProcess(['--config', cfg.file, 'prune']);
    expect(r.code).toBe(0);
    expect(ops.sweepAndReport).toHaveBeenCalledOnce();
    expect((ops.sweepAndReport.mock.calls[0]![0] as Config).vault.dir).toBe(cfg.vault);
    expect(ops.runPrune.mock.calls[0]![1]).toEqual({ dryRun: undefined });
    expect(ops.sweepAndReport.mock.invocationCallOrder[0]).toBeLessThan(ops.runPrune.mock.invocationCallOrder[0]!);
    expect(r.out).toEqual([
      'keep    C  last 1, newest verified-good',
      'keep    B  needed by C',
      'delete  A',
      'skip    X  (manifest.json unreadable)',
      '2 kept, 1 deleted, 1 unreadable left alone (periods in Europe/Berlin)',
    ]);
  });

  it('--dry-run: no sweep, the operation told so, "would delete"', async () => {
    ops.runPrune.mockResolvedValue({ dryRun: true, timezone: 'UTC', policy, kept: [], removed: ['A', 'B'], ignored: [] });
    const r = await runInProcess(['--config', cfg.file, 'prune', '--dry-run']);
    expect(ops.sweepAndReport).not.toHaveBeenCalled();
    expect(ops.runPrune.mock.calls[0]![1]).toEqual({ dryRun: true });
    expect(r.out).toEqual(['would delete  A', 'would delete  B', '0 kept, 2 would delete (periods in UTC)']);
  });

  it('without vault.keep: everything kept, and how to set a policy; --json prints the result', async () => {
    const none = { dryRun: false, timezone: 'UTC', policy: null, kept: [{ id: 'A', reasons: [] }], removed: [], ignored: [] };
    ops.runPrune.mockResolvedValue(none);
    let r = await runInProcess(['--config', cfg.file, 'prune']);
    expect(r.out).toEqual([
      'no policy: everything is kept (1 snapshot); set vault.keep, e.g. `keep: { last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 }`, before the disk fills.',
    ]);
    r = await runInProcess(['--config', cfg.file, 'prune', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual(none);
  });
});
