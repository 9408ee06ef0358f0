import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';

// The real units of a real config (ops/systemd-units.ts), printed or written into temp folders.
const cfg = tempConfig();
const me = os.userInfo().username;
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));
afterEach(() => delete process.env.PERMAFROST_TEST_PROC_DIR);

/** A /proc whose PID 1 is `comm`. */
function fakeProc(comm: string): string {
  const dir = path.join(cfg.dir, `proc-${comm}`);
  mkdirSync(path.join(dir, '1'), { recursive: true });
  writeFileSync(path.join(dir, '1', 'comm'), `${comm}\n`);
  return dir;
}

describe('permafrost systemd', () => {
  it('prints the timers and their services, each under a header, the backup on OnCalendar= of schedule.backup', async () => {
    const r = await runInProcess(['--config', cfg.file, 'systemd', '--user', me]);
    expect(r.code).toBe(0);
    const headers = r.out.filter((l) => l.startsWith('# ----- '));
    expect(headers).toEqual(
      expect.arrayContaining([
        '# ----- permafrost-backup.service -----',
        '# ----- permafrost-backup.timer -----',
        '# ----- permafrost-verify.timer -----',
        '# ----- permafrost-check.timer -----',
      ]),
    );
    expect(r.out.join('\n')).toContain(`--config ${cfg.file} backup`);
    expect(r.out.join('\n')).toMatch(/OnCalendar=\*-\*-\* \*:40:00/);
  });

  it('--daemon --output DIR: one daemon unit written, who runs it, and the systemctl line', async () => {
    const out = path.join(cfg.dir, 'units');
    mkdirSync(out);
    const r = await runInProcess(['--config', cfg.file, 'systemd', '--daemon', '--output', out, '--user', me]);
    expect(r.code).toBe(0);
    expect(readdirSync(out)).toEqual(['permafrost-daemon.service']);
    expect(readFileSync(path.join(out, 'permafrost-daemon.service'), 'utf8')).toContain(`User=${me}`);
    expect(r.out).toEqual([
      `wrote ${path.join(out, 'permafrost-daemon.service')}`,
      `the daemon runs as ${me}.`,
      'Copy them into /etc/systemd/system on the host that runs them, then run:',
      '  systemctl daemon-reload && systemctl enable --now permafrost-daemon.service',
    ]);
  });

  it('--install where PID 1 is not systemd: exit 2 naming it and --output; nothing written', async () => {
    process.env.PERMAFROST_TEST_PROC_DIR = fakeProc('tini');
    const unitDir = path.join(cfg.dir, 'unit-dir');
    mkdirSync(unitDir);
    const r = await runInProcess(['--config', cfg.file, 'systemd', '--install', '--unit-dir', unitDir, '--user', me]);
    expect(r.code).toBe(2);
    expect(r.err[0]).toBe(
      `permafrost: --install: PID 1 here is "tini", not systemd, so units in ${unitDir} would never run; run \`permafrost daemon\` under this host's own service manager, or pass --output DIR to write the units for a host that runs systemd.`,
    );
    expect(readdirSync(unitDir)).toEqual([]);
  });

  it('--install under systemd: the timers written into --unit-dir, "Now run:" and every timer enabled', async () => {
    process.env.PERMAFROST_TEST_PROC_DIR = fakeProc('systemd');
    const unitDir = path.join(cfg.dir, 'installed');
    mkdirSync(unitDir);
    const r = await runInProcess(['--config', cfg.file, 'systemd', '--install', '--unit-dir', unitDir, '--user', me]);
    expect(r.code).toBe(0);
    expect(readdirSync(unitDir)).toContain('permafrost-backup.timer');
    expect(r.out).toContain('Now run:');
    expect(r.out.at(-1)).toBe(
      '  systemctl daemon-reload && systemctl enable --now permafrost-backup.timer permafrost-verify.timer permafrost-check.timer',
    );
    expect(r.out.find((l) => l.startsWith('the jobs run as'))).toMatch(
      /^the jobs run as .*: backup on OnCalendar=.*, verify on OnCalendar=.*, check on OnCalendar=.*\.$/,
    );
  });

  it('--install and --output together is a usage error (exit 2)', async () => {
    const r = await runInProcess(['--config', cfg.file, 'systemd', '--install', '--output', cfg.dir]);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain("option '--install' cannot be used with option '--output <dir>'");
  });
});
