import { beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess } from '../../../harness/cli-inproc.js';

const ops = vi.hoisted(() => ({ runDoctor: vi.fn() }));
vi.mock('../../../../src/ops/doctor.js', () => ({ runDoctor: ops.runDoctor }));
beforeEach(() => ops.runDoctor.mockReset());

const lines = [
  { check: 'config', status: 'ok', message: '/etc/p.yaml is valid' },
  { check: 'redis', status: 'warn', message: 'not configured', fix: 'add redis: { url: … }' },
  { check: 'database', status: 'fail', message: 'cannot reach "mastodon"', fix: 'start PostgreSQL' },
  { check: 'vault', status: 'fail', message: 'not writable', fix: 'chown the folder' },
];

describe('permafrost doctor', () => {
  it('hands the --config flag to the checks (it loads the config itself); one labelled line per check with its fix', async () => {
    ops.runDoctor.mockResolvedValue({ configPath: '/etc/p.yaml', device: false, lines, ok: false });
    const r = await runInProcess(['--config', '/etc/p.yaml', 'doctor']);
    expect(ops.runDoctor).toHaveBeenCalledWith({ configFlag: '/etc/p.yaml' });
    expect(r.out).toEqual([
      'OK    config: /etc/p.yaml is valid',
      'WARN  redis: not configured — fix: add redis: { url: … }',
      'FAIL  database: cannot reach "mastodon" — fix: start PostgreSQL',
      'FAIL  vault: not writable — fix: chown the folder',
      'doctor: 2 problems to fix',
    ]);
    expect(r.code).toBe(1);
    expect(r.err).toEqual(['permafrost: doctor found problems (database, vault); fix the FAIL lines and run doctor again.']);
  });

  it('no FAIL: exit 0 and the closing line for a server or a backup device; no --config: undefined', async () => {
    ops.runDoctor.mockResolvedValue({ configPath: null, device: true, lines: lines.slice(0, 2), ok: true });
    let r = await runInProcess(['doctor']);
    expect(ops.runDoctor).toHaveBeenCalledWith({ configFlag: undefined });
    expect(r.code).toBe(0);
    expect(r.out.at(-1)).toBe('doctor: everything a backup device needs is in place');
    ops.runDoctor.mockResolvedValue({ configPath: null, device: false, lines: [lines[2]], ok: false });
    r = await runInProcess(['doctor']);
    expect(r.out.at(-1)).toBe('doctor: 1 problem to fix');
  });

  it('--json prints the report as is and still exits 1 on a FAIL', async () => {
    const report = { configPath: null, device: false, lines, ok: false };
    ops.runDoctor.mockResolvedValue(report);
    const r = await runInProcess(['doctor', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual(report);
    expect(r.code).toBe(1);
  });
});
