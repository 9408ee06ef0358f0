import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { TargetPush } from '../../../../src/ops/offsite.js';

const ops = vi.hoisted(() => ({ runOffsitePush: vi.fn() }));
vi.mock('../../../../src/ops/offsite.js', async (orig) => ({ ...(await orig()), runOffsitePush: ops.runOffsitePush }));

const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));
beforeEach(() => ops.runOffsitePush.mockReset());

function target(over: Partial<TargetPush> = {}): TargetPush {
  return {
    target: 'b2',
    describe: 'b2 (s3://bk/p)',
    pushed: [],
    uploaded: { files: 0, bytes: 0 },
    skippedFiles: 0,
    problems: [],
    foreign: 0,
    newestComplete: null,
    retention: null,
    error: null,
    ...over,
  };
}

describe('permafrost offsite push: the selection', () => {
  it.each([
    [[], 'new'],
    [['all'], 'all'],
    [['2026-12-01T10-40-00Z'], { id: '2026-12-01T10-40-00Z' }],
  ])('%j → selection %j, --target passed on', async (args, selection) => {
    ops.runOffsitePush.mockResolvedValue({ targets: [] });
    const r = await runInProcess(['--config', cfg.file, 'offsite', 'push', ...args, '--target', 'b2']);
    expect(r.code).toBe(0);
    expect(ops.runOffsitePush.mock.calls[0]![2]).toEqual({ selection, target: 'b2' });
    expect((ops.runOffsitePush.mock.calls[0]![1] as { signal: AbortSignal }).signal).toBeInstanceOf(AbortSignal);
  });
});

describe('permafrost offsite push: what it prints', () => {
  it('per target: what was pushed, the upload, the retention; damaged snapshots, foreign keys and refused deletes as warnings', async () => {
    ops.runOffsitePush.mockResolvedValue({
      targets: [
        target({
          pushed: ['A', 'B'],
          uploaded: { files: 6, bytes: 3 * 2 ** 20 },
          skippedFiles: 2,
          newestComplete: 'B',
          foreign: 3,
          retention: {
            kept: 4,
            removed: ['X'],
            waiting: [
              { id: 'Y', until: '2026-12-30T00:00:00Z' },
              { id: 'Z', until: '2026-12-20T00:00:00Z' },
            ],
            refused: [{ id: 'W', why: 'AccessDenied' }],
            ignored: [],
          },
        }),
        target({ target: 'b3', describe: 'b3 (s3://o/p)', newestComplete: 'B' }),
      ],
    });
    const r = await runInProcess(['--config', cfg.file, 'offsite', 'push']);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([
      'b2 (s3://bk/p): pushed 2 snapshots (A, B); 6 file(s), 3.0 MiB uploaded, 2 already there; newest complete: B',
      'b2 (s3://bk/p): keep: 4 kept, 1 deleted (X), 2 due but locked until 2026-12-20T00:00:00Z, 1 refused by the lock',
      'b3 (s3://o/p): nothing new to push; 0 file(s), 0 B uploaded, 0 already there; newest complete: B',
    ]);
    expect(r.err[0]).toBe("warning: b2 (s3://bk/p) holds 3 key(s) that are not permafrost's; they are left alone.");
    expect(r.err[1]).toMatch(/^warning: b2 \(s3:\/\/bk\/p\) refused to delete snapshot W \(an Object Lock still in force/);
  });

  it("a target that failed: no summary line, and the push exits with that failure's code; a damaged snapshot: exit 3", async () => {
    ops.runOffsitePush.mockResolvedValueOnce({
      targets: [
        target({ error: { kind: 'connection', message: 'b2: cannot connect to s3.example.com; check offsite.endpoint.', exitCode: 1 } }),
      ],
    });
    let r = await runInProcess(['--config', cfg.file, 'offsite', 'push']);
    expect(r.out).toEqual([]);
    expect(r.code).toBe(1);
    expect(r.err).toEqual(['permafrost: b2: cannot connect to s3.example.com; check offsite.endpoint.']);
    ops.runOffsitePush.mockResolvedValueOnce({
      targets: [target({ problems: [{ id: 'A', problem: 'database.pgdump.gpg: size differs' }] })],
    });
    r = await runInProcess(['--config', cfg.file, 'offsite', 'push']);
    expect(r.err[0]).toBe('warning: b2 (s3://bk/p): snapshot A was not pushed: database.pgdump.gpg: size differs');
    expect(r.code).toBe(3);
  });

  it('--json: the result as is on stdout, no warnings', async () => {
    const result = { targets: [target({ foreign: 2 })] };
    ops.runOffsitePush.mockResolvedValue(result);
    const r = await runInProcess(['--config', cfg.file, 'offsite', 'push', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual(result);
    expect(r.err).toEqual([]);
  });
});
