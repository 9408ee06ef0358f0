import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { MediaCopyResult } from '../../../../src/ops/offsite-media.js';

const ops = vi.hoisted(() => ({ runMediaCopy: vi.fn(), runMediaRestore: vi.fn() }));
vi.mock('../../../../src/ops/offsite-media.js', () => ops);

const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));
beforeEach(() => {
  ops.runMediaCopy.mockReset();
  ops.runMediaRestore.mockReset();
});

function copy(over: Partial<MediaCopyResult> = {}): MediaCopyResult {
  return {
    from: 's3://files',
    to: 'b2 (s3://bk/p/media/)',
    mode: 'server-side',
    copied: 3,
    bytes: 2048,
    unchanged: 10,
    foreign: 0,
    ...over,
  };
}

describe('permafrost offsite media', () => {
  it('--target and --streamed passed on with the stop signal; one line per source → target, how it copied', async () => {
    ops.runMediaCopy.mockResolvedValue([
      copy(),
      copy({ from: '/home/mastodon/live/public/system', mode: 'upload', copied: 0, bytes: 0, foreign: 2 }),
      copy({ mode: 'streamed' }),
    ]);
    const r = await runInProcess(['--config', cfg.file, 'offsite', 'media', '--target', 'b2', '--streamed']);
    expect(r.code).toBe(0);
    const opts = ops.runMediaCopy.mock.calls[0]![1] as { target: string; streamed: boolean; signal: AbortSignal };
    expect(opts).toMatchObject({ target: 'b2', streamed: true });
    expect(opts.signal).toBeInstanceOf(AbortSignal);
    expect(r.out).toEqual([
      's3://files → b2 (s3://bk/p/media/): 3 copied (2.0 KiB, server-side copy), 10 already there',
      '/home/mastodon/live/public/system → b2 (s3://bk/p/media/): 0 copied (0 B, uploaded), 10 already there, 2 keys that are no media path left alone',
      's3://files → b2 (s3://bk/p/media/): 3 copied (2.0 KiB, streamed), 10 already there',
    ]);
  });

  it('--json prints the results; a failure is its sentence and exit code', async () => {
    ops.runMediaCopy.mockResolvedValueOnce([copy()]);
    let r = await runInProcess(['--config', cfg.file, 'offsite', 'media', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual([copy()]);
    const { UserError } = await import('../../../../src/errors.js');
    ops.runMediaCopy.mockRejectedValueOnce(new UserError('No offsite target named b9; the config has b2.'));
    r = await runInProcess(['--config', cfg.file, 'offsite', 'media', '--target', 'b9']);
    expect(r.code).toBe(2);
    expect(r.err).toEqual(['permafrost: No offsite target named b9; the config has b2.']);
  });
});

describe('permafrost offsite media-restore', () => {
  it('--target and --to passed on; the line says "downloaded"', async () => {
    ops.runMediaRestore.mockResolvedValue(copy({ from: 'b2', to: '/srv/system', mode: 'download' }));
    const r = await runInProcess(['--config', cfg.file, 'offsite', 'media-restore', '--target', 'b2', '--to', '/srv/system']);
    expect(r.code).toBe(0);
    expect(ops.runMediaRestore.mock.calls[0]![1]).toMatchObject({ target: 'b2', to: '/srv/system' });
    expect(r.out).toEqual(['b2 → /srv/system: 3 copied (2.0 KiB, downloaded), 10 already there']);
  });

  it('an unknown offsite subcommand or flag exits 2 and copies nothing', async () => {
    for (const args of [
      ['offsite', 'mediarestore'],
      ['offsite', 'media', '--to', '/x'],
    ]) {
      const r = await runInProcess(['--config', cfg.file, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect(ops.runMediaCopy).not.toHaveBeenCalled();
    expect(ops.runMediaRestore).not.toHaveBeenCalled();
  });
});
