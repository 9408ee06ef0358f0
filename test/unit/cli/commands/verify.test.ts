import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { Config } from '../../../../src/config/schema.js';

const ops = vi.hoisted(() => ({ runVerifyJob: vi.fn(), withBucketSnapshot: vi.fn() }));
vi.mock('../../../../src/ops/runs.js', async (orig) => ({ ...(await orig()), runVerifyJob: ops.runVerifyJob }));
vi.mock('../../../../src/ops/bucket-vault.js', () => ({ withBucketSnapshot: ops.withBucketSnapshot }));

const cfg = tempConfig();
const copy = mkdtempSync(path.join(tmpdir(), 'permafrost-copy-'));
afterAll(() => {
  rmSync(cfg.dir, { recursive: true, force: true });
  rmSync(copy, { recursive: true, force: true });
});

const good = {
  ok: true,
  snapshot: '2026-12-01T10-40-00Z',
  durationMs: 12_340,
  reason: null,
  checks: [
    { name: 'integrity', ok: true, detail: 'pg_restore read the archive' },
    { name: 'rows', ok: true, detail: '12 tables' },
  ],
};

beforeEach(() => {
  ops.runVerifyJob.mockReset();
  ops.withBucketSnapshot.mockReset();
});

describe('permafrost verify', () => {
  it('verifies "latest" by default with the flags as the job takes them, one line per check and the time', async () => {
    ops.runVerifyJob.mockResolvedValue(good);
    const r = await runInProcess([
      '--config',
      cfg.file,
      'verify',
      '--identity',
      '/k/secret.asc',
      '--gpg-agent',
      '--insecure-no-signature-check',
    ]);
    expect(r.code).toBe(0);
    const [config, ctx, opts] = ops.runVerifyJob.mock.calls[0] as [Config, { signal: AbortSignal }, Record<string, unknown>];
    expect(config.vault.dir).toBe(cfg.vault);
    expect(ctx.signal).toBeInstanceOf(AbortSignal);
    expect(opts).toMatchObject({ snapshot: 'latest', identity: '/k/secret.asc', gpgAgent: true, insecureNoSignatureCheck: true });
    expect(opts.passphraseFile).toBeUndefined();
    expect(r.out).toEqual([
      '✓ integrity: pg_restore read the archive',
      '✓ rows: 12 tables',
      'snapshot 2026-12-01T10-40-00Z verified in 12.3s',
    ]);
  });

  it('a failed check: ✗ line, no "verified", exit 3 with the reason', async () => {
    ops.runVerifyJob.mockResolvedValue({
      ...good,
      ok: false,
      reason: 'row counts differ',
      checks: [{ name: 'rows', ok: false, detail: 'accounts: 3, manifest 4' }],
    });
    const r = await runInProcess(['--config', cfg.file, 'verify', 'X', '--passphrase-file', '/p', '--signer', 'ABC', '--json']);
    expect(r.code).toBe(3);
    expect(ops.runVerifyJob.mock.calls[0]![2]).toMatchObject({ snapshot: 'X', passphraseFile: '/p', signer: 'ABC' });
    expect(JSON.parse(r.out.join('\n')).checks[0].detail).toBe('accounts: 3, manifest 4');
    expect(r.err).toContain(
      'permafrost: Snapshot 2026-12-01T10-40-00Z failed verification: row counts differ; use another snapshot and find out what damaged this one.',
    );
  });

  it('--vault DIR replaces vault.dir; a bucket goes through withBucketSnapshot, its warnings on stderr', async () => {
    ops.runVerifyJob.mockResolvedValue(good);
    let r = await runInProcess(['--config', cfg.file, 'verify', '--vault', copy]);
    expect((ops.runVerifyJob.mock.calls[0]![0] as Config).vault.dir).toBe(copy);
    ops.withBucketSnapshot.mockImplementation(
      (c: Config, _b: unknown, id: string, _s: AbortSignal, run: (c: Config, id: string, w: string[]) => unknown) =>
        run(c, `${id}-resolved`, ['fetched over a slow link']),
    );
    r = await runInProcess(['--config', cfg.file, 'verify', 'latest', '--target', 'b2']);
    expect(r.code).toBe(0);
    expect(ops.withBucketSnapshot.mock.calls[0]![1]).toEqual({ vault: undefined, target: 'b2', endpoint: undefined, pathStyle: undefined });
    expect(ops.runVerifyJob.mock.calls[1]![2]).toMatchObject({ snapshot: 'latest-resolved' });
    expect(r.err).toContain('warning: fetched over a slow link');
  });

  it('usage errors exit 2 before anything runs: an unknown flag, --path-style without a bucket, --vault that is no folder', async () => {
    for (const args of [['--frobnicate'], ['--path-style'], ['--vault', path.join(copy, 'nope')]]) {
      const r = await runInProcess(['--config', cfg.file, 'verify', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect(ops.runVerifyJob).not.toHaveBeenCalled();
  });
});
