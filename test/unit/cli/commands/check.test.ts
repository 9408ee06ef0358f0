import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { Config } from '../../../../src/config/schema.js';

const ops = vi.hoisted(() => ({ runCheckJob: vi.fn(), runBucketCheck: vi.fn() }));
vi.mock('../../../../src/ops/runs.js', () => ({ runCheckJob: ops.runCheckJob }));
vi.mock('../../../../src/ops/check-bucket.js', () => ({ runBucketCheck: ops.runBucketCheck }));

const cfg = tempConfig();
const copy = mkdtempSync(path.join(tmpdir(), 'permafrost-copy-'));
afterAll(() => {
  rmSync(cfg.dir, { recursive: true, force: true });
  rmSync(copy, { recursive: true, force: true });
});

function snap(id: string, over: Record<string, unknown> = {}) {
  return { id, ok: true, problems: [], goodCopies: [], arriving: false, waitsFor: null, ...over };
}

beforeEach(() => {
  ops.runCheckJob.mockReset();
  ops.runBucketCheck.mockReset();
});

describe('permafrost check', () => {
  it('checks every snapshot of vault.dir by default, one line each: ✓, ✗ with its problems and good copies, … arriving', async () => {
    ops.runCheckJob.mockResolvedValue({
      ok: true,
      snapshots: [
        snap('A'),
        snap('B', { arriving: true }),
        snap('C', { arriving: true, waitsFor: 'B' }),
        snap('D', { ok: true, goodCopies: ['a good copy: /dev/copy'] }),
      ],
    });
    const r = await runInProcess(['--config', cfg.file, 'check']);
    expect(r.code).toBe(0);
    const [config, , opts] = ops.runCheckJob.mock.calls[0] as [Config, unknown, unknown];
    expect(config.vault.dir).toBe(cfg.vault);
    expect(opts).toEqual({ snapshot: 'all' });
    expect(r.out).toEqual([
      '✓ A',
      '… B: still arriving (Syncthing is writing it), not checked',
      '… C: its chain needs B, which is still arriving (Syncthing is writing it), not checked',
      '✓ D',
      '    a good copy: /dev/copy',
    ]);
  });

  it('a damaged snapshot: its line and exit 3 naming it; no snapshots at all: says where it looked', async () => {
    ops.runCheckJob.mockResolvedValue({ ok: false, snapshots: [snap('A', { ok: false, problems: ['x.gpg: missing', 'y: extra'] })] });
    let r = await runInProcess(['--config', cfg.file, 'check', 'latest']);
    expect(r.code).toBe(3);
    expect(r.out).toEqual(['✗ A: x.gpg: missing; y: extra']);
    expect(r.err[0]).toMatch(/^permafrost: Snapshot A failed its check: x\.gpg: missing; y: extra;/);
    expect(ops.runCheckJob.mock.calls[0]![2]).toEqual({ snapshot: 'latest' });
    ops.runCheckJob.mockResolvedValue({ ok: true, snapshots: [] });
    r = await runInProcess(['--config', cfg.file, 'check']);
    expect(r.out).toEqual([`no snapshots in ${cfg.vault}`]);
  });

  it('--vault DIR: the folder copy stands for vault.dir; --json prints the result as is', async () => {
    const result = { ok: true, snapshots: [snap('A')] };
    ops.runCheckJob.mockResolvedValue(result);
    const r = await runInProcess(['--config', cfg.file, 'check', '--vault', copy, '--json']);
    expect(r.code).toBe(0);
    expect((ops.runCheckJob.mock.calls[0]![0] as Config).vault.dir).toBe(copy);
    expect(JSON.parse(r.out.join('\n'))).toEqual(result);
  });

  it('bucket flags without a bucket are a usage error (exit 2) and nothing is checked', async () => {
    let r = await runInProcess(['--config', cfg.file, 'check', '--read-data']);
    expect(r.code).toBe(2);
    expect(r.err[0]).toBe(
      'permafrost: --read-data and --signer go with a bucket (--vault s3://…, --target); a vault folder is always hashed whole, against vault.signerKeyFile.',
    );
    r = await runInProcess(['--config', cfg.file, 'check', '--endpoint', 'https://s3.example.com']);
    expect(r.code).toBe(2);
    expect(r.err[0]).toBe('permafrost: --endpoint and --path-style go with --vault s3://BUCKET/PREFIX.');
    expect(ops.runCheckJob).not.toHaveBeenCalled();
    expect(ops.runBucketCheck).not.toHaveBeenCalled();
  });

  it('--vault s3://…: the bucket check gets the bucket, --read-data and --signer; its warnings on stderr, its place in "no snapshots"', async () => {
    ops.runBucketCheck.mockResolvedValue({ ok: true, snapshots: [], warnings: ['slow listing'], describe: 's3://b/p (example)' });
    const signer = '0123456789ABCDEF0123456789ABCDEF01234567';
    const r = await runInProcess([
      '--config',
      cfg.file,
      'check',
      '--vault',
      's3://b/p',
      '--path-style',
      '--endpoint',
      'http://127.0.0.1:9',
      '--read-data',
      '--signer',
      signer,
    ]);
    expect(r.code).toBe(0);
    const [, bucket, snapshot, opts] = ops.runBucketCheck.mock.calls[0] as [Config, unknown, string, Record<string, unknown>];
    expect(bucket).toEqual({ vault: 's3://b/p', target: undefined, endpoint: 'http://127.0.0.1:9', pathStyle: true });
    expect(snapshot).toBe('all');
    expect(opts).toMatchObject({ readData: true, signer });
    expect(opts.signal).toBeInstanceOf(AbortSignal);
    expect(r.err).toEqual(['warning: slow listing']);
    expect(r.out).toEqual(['no snapshots in s3://b/p (example)']);
    expect(ops.runCheckJob).not.toHaveBeenCalled();
  });
});
