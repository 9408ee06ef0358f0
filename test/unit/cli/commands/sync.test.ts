import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { Config } from '../../../../src/config/schema.js';

const ops = vi.hoisted(() => ({ applySync: vi.fn(), revertLocalChanges: vi.fn(), replicationStatus: vi.fn() }));
vi.mock('../../../../src/replicate/apply.js', () => ({ applySync: ops.applySync, revertLocalChanges: ops.revertLocalChanges }));
vi.mock('../../../../src/replicate/status.js', () => ({ replicationStatus: ops.replicationStatus }));

const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));
beforeEach(() => {
  for (const f of Object.values(ops)) f.mockReset();
});

describe('permafrost sync apply', () => {
  it('prints each change, "would make" with --dry-run (passed on), and the warnings with their fix on stderr', async () => {
    ops.applySync.mockResolvedValue({
      role: 'source',
      dryRun: true,
      changes: [{ summary: 'add device laptop' }, { summary: 'create folder permafrost-snapshots' }],
      warnings: [{ message: 'media.dir is not set', fix: 'set media.dir to replicate media' }],
    });
    const r = await runInProcess(['--config', cfg.file, 'sync', 'apply', '--dry-run']);
    expect(r.code).toBe(0);
    expect((ops.applySync.mock.calls[0]![0] as Config).vault.dir).toBe(cfg.vault);
    expect(ops.applySync.mock.calls[0]![2]).toEqual({ dryRun: true });
    expect(r.out).toEqual(['would make 2 changes (source):', '  add device laptop', '  create folder permafrost-snapshots']);
    expect(r.err).toEqual(['warning: media.dir is not set: set media.dir to replicate media.']);
  });

  it('one change made; no change at all; --json as is', async () => {
    ops.applySync.mockResolvedValueOnce({ role: 'receiver', dryRun: false, changes: [{ summary: 'x' }], warnings: [] });
    let r = await runInProcess(['--config', cfg.file, 'sync', 'apply']);
    expect(r.out[0]).toBe('made 1 change (receiver):');
    ops.applySync.mockResolvedValueOnce({ role: 'source', dryRun: false, changes: [], warnings: [] });
    r = await runInProcess(['--config', cfg.file, 'sync', 'apply']);
    expect(r.out).toEqual(['no change: Syncthing (source) already matches the config']);
    const result = { role: 'source', dryRun: false, changes: [], warnings: [{ message: 'm', fix: 'f' }] };
    ops.applySync.mockResolvedValueOnce(result);
    r = await runInProcess(['--config', cfg.file, 'sync', 'apply', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual(result);
    expect(r.err).toEqual([]);
  });
});

describe('permafrost sync revert / status', () => {
  it('revert names the folders reverted, or says there was nothing', async () => {
    ops.revertLocalChanges.mockResolvedValueOnce(['permafrost-snapshots', 'mastodon-media']);
    let r = await runInProcess(['--config', cfg.file, 'sync', 'revert']);
    expect(r.out).toEqual(['reverted local changes in permafrost-snapshots, mastodon-media']);
    ops.revertLocalChanges.mockResolvedValueOnce([]);
    r = await runInProcess(['--config', cfg.file, 'sync', 'revert']);
    expect(r.out).toEqual(['no local changes to revert']);
  });

  it('status: rendered, and exit 1 with the problems in one sentence when not ok', async () => {
    const status = {
      ok: false,
      syncthing: true,
      role: 'source',
      reachable: false,
      error: 'connect ECONNREFUSED',
      snapshot: null,
      device: null,
      devices: [],
      localFolders: [],
      problems: ['Syncthing is unreachable: start it.', 'no device holds the newest snapshot.'],
    };
    ops.replicationStatus.mockResolvedValue(status);
    let r = await runInProcess(['--config', cfg.file, 'sync', 'status']);
    expect(r.code).toBe(1);
    expect(r.out[0]).toBe('newest snapshot: none yet');
    expect(r.err).toEqual([
      'permafrost: Replication needs attention: Syncthing is unreachable: start it; no device holds the newest snapshot.',
    ]);
    r = await runInProcess(['--config', cfg.file, 'sync', 'status', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual(status);
  });

  it('an unknown subcommand is a usage error (exit 2)', async () => {
    const r = await runInProcess(['--config', cfg.file, 'sync', 'apply-all']);
    expect(r.code).toBe(2);
    expect(ops.applySync).not.toHaveBeenCalled();
  });
});
