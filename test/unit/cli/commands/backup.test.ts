import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { Manifest } from '../../../../src/vault/manifest.js';
import type { Config } from '../../../../src/config/schema.js';
import type { RunContext } from '../../../../src/run-context.js';

const ops = vi.hoisted(() => ({ runBackupJob: vi.fn() }));
vi.mock('../../../../src/ops/runs.js', () => ops);

const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));

function manifest(over: Partial<Manifest> = {}): Manifest {
  return {
    id: '2026-12-01T10-40-00Z',
    startedAt: '2026-12-01T10:40:00.000Z',
    finishedAt: '2026-12-01T10:40:02.500Z',
    files: [
      { part: 'database', name: 'database.pgdump.gpg', bytes: 3 * 2 ** 20 },
      { part: 'redis', name: 'redis.rdb.gpg', bytes: 2 ** 20 },
    ],
    ...over,
  } as Manifest;
}

beforeEach(() => ops.runBackupJob.mockReset());

describe('permafrost backup', () => {
  it('runs the backup job on the loaded config in a run context, and prints the snapshot, its size and time', async () => {
    ops.runBackupJob.mockResolvedValue({ manifest: manifest(), dir: '/v/2026-12-01T10-40-00Z', warnings: [], pruned: null });
    const r = await runInProcess(['--config', cfg.file, 'backup']);
    expect(r.code).toBe(0);
    const [config, ctx] = ops.runBackupJob.mock.calls[0] as [Config, RunContext];
    expect(config.vault.dir).toBe(cfg.vault);
    expect(config.configPath).toBe(cfg.file);
    expect(ctx.signal).toBeInstanceOf(AbortSignal);
    expect(r.out).toEqual(['snapshot 2026-12-01T10-40-00Z written to /v/2026-12-01T10-40-00Z (4.0 MiB in 2.5s)']);
  });

  it('names a base and its reason, a delta and its reference and depth; lists what retention pruned', async () => {
    ops.runBackupJob.mockResolvedValueOnce({
      manifest: manifest({ chain: { kind: 'base', reason: 'the base is 25h old' } as Manifest['chain'] }),
      dir: '/v/x',
      warnings: [],
      pruned: { removed: ['2026-11-01T00-00-00Z', '2026-11-02T00-00-00Z'] },
    });
    let r = await runInProcess(['--config', cfg.file, 'backup']);
    expect(r.out[0]).toContain('2026-12-01T10-40-00Z (a base: the base is 25h old) written');
    expect(r.out[1]).toBe('pruned 2 old snapshots (vault.keep): 2026-11-01T00-00-00Z, 2026-11-02T00-00-00Z');
    ops.runBackupJob.mockResolvedValueOnce({
      manifest: manifest({ chain: { kind: 'delta', reference: '2026-12-01T09-40-00Z', depth: 3 } as Manifest['chain'] }),
      dir: '/v/x',
      warnings: [],
      pruned: { removed: ['2026-11-01T00-00-00Z'] },
    });
    r = await runInProcess(['--config', cfg.file, 'backup']);
    expect(r.out[0]).toContain('(a delta on 2026-12-01T09-40-00Z, 3 after its base)');
    expect(r.out[1]).toBe('pruned 1 old snapshot (vault.keep): 2026-11-01T00-00-00Z');
  });

  it('--json prints the manifest alone on stdout, warnings go to stderr', async () => {
    ops.runBackupJob.mockResolvedValue({ manifest: manifest(), dir: '/v/x', warnings: ['replication is unreachable'], pruned: null });
    const r = await runInProcess(['--config', cfg.file, 'backup', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.join('\n'))).toEqual(manifest());
    expect(r.err).toContain('warning: replication is unreachable');
  });

  it('a failing job: its sentence on stderr and its exit code; a bad flag: exit 2 and the job never runs', async () => {
    const { BusyError } = await import('../../../../src/errors.js');
    ops.runBackupJob.mockRejectedValue(new BusyError('the vault is locked by run 42; wait for it to finish.'));
    let r = await runInProcess(['--config', cfg.file, 'backup']);
    expect(r.code).toBe(4);
    expect(r.err).toContain('permafrost: the vault is locked by run 42; wait for it to finish.');
    ops.runBackupJob.mockReset();
    r = await runInProcess(['--config', cfg.file, 'backup', '--jsn']);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain("unknown option '--jsn'");
    expect(ops.runBackupJob).not.toHaveBeenCalled();
  });
});
