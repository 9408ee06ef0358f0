import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

const systemdAnalyze = spawnSync('which', ['systemd-analyze'], { encoding: 'utf8' }).stdout.trim();
if (!systemdAnalyze) console.warn('SKIPPED: systemd-analyze is not installed (apt-get install systemd): unit verification skipped');

function workspace(schedule?: Record<string, unknown>): Workspace {
  ws = makeWorkspace(null, 'x');
  ws.writeConfig({ extra: { database: { name: 'mastodon_production' }, ...(schedule ? { schedule } : {}) } });
  return ws;
}

/** A PATH whose first folder holds `permafrost` (as scripts/install.sh links it), the rest without one. */
function pathWithPermafrost(): { PATH: string; bin: string } {
  const dir = path.join(ws.dir, 'bin');
  mkdirSync(dir);
  symlinkSync(CLI, path.join(dir, 'permafrost'));
  return { PATH: `${dir}:${path.dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin`, bin: path.join(dir, 'permafrost') };
}

/** A fake /proc whose PID 1 is `comm`, for the --install check (PERMAFROST_TEST_PROC_DIR). */
function fakeProc(comm: string): string {
  const dir = path.join(ws.dir, `proc-${comm}`);
  mkdirSync(path.join(dir, '1'), { recursive: true });
  writeFileSync(path.join(dir, '1', 'comm'), `${comm}\n`);
  return dir;
}

/** systemd-analyze verify finds nothing to say about the units in `dir` (when it is installed). */
function expectValidUnits(dir: string): void {
  if (!systemdAnalyze) return;
  const units = readdirSync(dir).map((u) => path.join(dir, u));
  const v = spawnSync(systemdAnalyze, ['verify', ...units], { encoding: 'utf8' });
  expect(`${v.stdout}${v.stderr}`.split('\n').filter((l) => l.includes('permafrost-'))).toEqual([]);
  expect(v.status).toBe(0);
}

describe('permafrost systemd', () => {
  it('prints a oneshot service running backup as the vault owner, and a timer on the translated schedule', async () => {
    workspace({ backup: '40 * * * *', timezone: 'Europe/Berlin' });
    const { PATH, bin } = pathWithPermafrost();
    const r = await runCli(['--config', ws.configFile, 'systemd', '--json'], { env: { PATH } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      user: string;
      onCalendar: string;
      verifyOnCalendar: string;
      checkOnCalendar: string;
      files: Record<string, string>;
    };
    expect(out.user).toBe(userInfo().username);
    expect(statSync(ws.vault).uid).toBe(userInfo().uid);
    expect(out.onCalendar).toBe('*-*-* *:40:00 Europe/Berlin');
    expect(out.verifyOnCalendar).toBe('*-*-* 04:10:00 Europe/Berlin');
    expect(out.checkOnCalendar).toBe('*-*-* *:25:00 Europe/Berlin');
    expect(out.files['permafrost-check.service']).toContain(`ExecStart=${bin} --config ${ws.configFile} check\n`);
    expect(out.files['permafrost-check.timer']).toContain('OnCalendar=*-*-* *:25:00 Europe/Berlin\n');
    const service = out.files['permafrost-backup.service']!;
    // The installed command on PATH, not the checkout's node + dist path.
    expect(service).toContain(`ExecStart=${bin} --config ${ws.configFile} backup\n`);
    expect(out.files['permafrost-verify.service']).toContain(`ExecStart=${bin} --config ${ws.configFile} verify\n`);
    expect(out.files['permafrost-verify.timer']).toContain('OnCalendar=*-*-* 04:10:00 Europe/Berlin\n');
    expect(service).toContain(`ReadWritePaths=${ws.vault} ${ws.dir}\n`);
    expect(out.files['permafrost-backup.timer']).toContain('OnCalendar=*-*-* *:40:00 Europe/Berlin\n');

    const text = await runCli(['--config', ws.configFile, 'systemd'], { env: { PATH } });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('# ----- permafrost-backup.service -----\n');
    expect(text.stdout).toContain('# ----- permafrost-backup.timer -----\n');
    expect(text.stdout).toContain('# ----- permafrost-verify.timer -----\n');
  });

  it('without permafrost on PATH, runs this very CLI and warns how to install it', async () => {
    workspace();
    const r = await runCli(['--config', ws.configFile, 'systemd', '--json'], { env: { PATH: path.dirname(process.execPath) } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `warning: permafrost is not on PATH, so the units run ${process.execPath} ${CLI}; run \`bash scripts/install.sh\` (it links permafrost into /usr/local/bin) and generate them again.\n`,
    );
    const out = JSON.parse(r.stdout) as { files: Record<string, string> };
    expect(out.files['permafrost-backup.service']).toContain(`ExecStart=${process.execPath} ${CLI} --config ${ws.configFile} backup\n`);
  });

  it('--install writes the backup, verify and check units where PID 1 is systemd; systemd-analyze verify accepts them', async () => {
    workspace();
    const unitDir = path.join(ws.dir, 'units');
    const textfile = path.join(ws.dir, 'permafrost.prom');
    const { PATH } = pathWithPermafrost();
    const r = await runCli(
      ['--config', ws.configFile, 'systemd', '--install', '--unit-dir', unitDir, '--user', 'root', '--metrics-textfile', textfile],
      { env: { PATH, PERMAFROST_TEST_PROC_DIR: fakeProc('systemd') } },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${unitDir}/permafrost-backup.service`);
    expect(r.stdout).toContain(`wrote ${unitDir}/permafrost-verify.timer`);
    expect(r.stdout).toContain(`wrote ${unitDir}/permafrost-check.timer`);
    expect(r.stdout).toContain(
      'systemctl daemon-reload && systemctl enable --now permafrost-backup.timer permafrost-verify.timer permafrost-check.timer',
    );
    expect(readFileSync(path.join(unitDir, 'permafrost-verify.service'), 'utf8')).toContain(`metrics --textfile ${textfile}\n`);
    const service = readFileSync(path.join(unitDir, 'permafrost-backup.service'), 'utf8');
    expect(service).toContain('User=root\n');
    expect(readFileSync(path.join(unitDir, 'permafrost-backup.timer'), 'utf8')).toContain('OnCalendar=*-*-* *:40:00\n');
    expectValidUnits(unitDir);
  });

  it('--install refuses where PID 1 is not systemd (exit 2, nothing written); --output writes the units anyway', async () => {
    workspace();
    const unitDir = path.join(ws.dir, 'units');
    const { PATH } = pathWithPermafrost();
    const r = await runCli(['--config', ws.configFile, 'systemd', '--install', '--unit-dir', unitDir, '--user', 'root'], {
      env: { PATH, PERMAFROST_TEST_PROC_DIR: fakeProc('process_api') },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `permafrost: --install: PID 1 here is "process_api", not systemd, so units in ${unitDir} would never run; run \`permafrost daemon\` under this host's own service manager, or pass --output DIR to write the units for a host that runs systemd.\n`,
    );
    expect(existsSync(unitDir)).toBe(false);

    const out = path.join(ws.dir, 'out');
    const o = await runCli(['--config', ws.configFile, 'systemd', '--daemon', '--output', out, '--user', 'root'], {
      env: { PATH, PERMAFROST_TEST_PROC_DIR: fakeProc('process_api') },
    });
    expect(o.stderr).toBe('');
    expect(o.code).toBe(0);
    expect(readdirSync(out)).toEqual(['permafrost-daemon.service']);
    expect(o.stdout).toContain(`wrote ${out}/permafrost-daemon.service\n`);
    expect(o.stdout).toContain('Copy them into /etc/systemd/system on the host that runs them, then run:\n');
    expect(o.stdout).toContain('systemctl daemon-reload && systemctl enable --now permafrost-daemon.service\n');
    const unit = readFileSync(path.join(out, 'permafrost-daemon.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${path.join(ws.dir, 'bin', 'permafrost')} --config ${ws.configFile} daemon\n`);
    expect(unit).toContain('After=network-online.target postgresql.service redis-server.service\n');
    expect(unit).toContain('ExecReload=/bin/kill -HUP $MAINPID\n');
    expect(unit).toContain('WantedBy=multi-user.target\n');
    expectValidUnits(out);

    const both = await runCli(['--config', ws.configFile, 'systemd', '--install', '--output', out]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/option '--install' cannot be used with option '--output/);
  });

  it('on a backup device: --daemon is the daemon without the database; timers are only check, with a warning to use --daemon', async () => {
    ws = makeWorkspace(null, 'x');
    writeFileSync(ws.configFile, JSON.stringify({ vault: { dir: ws.vault } }));
    const { PATH } = pathWithPermafrost();
    const d = await runCli(['--config', ws.configFile, 'systemd', '--daemon', '--json'], { env: { PATH } });
    expect(d.stderr).toBe('');
    expect(d.code).toBe(0);
    const daemon = JSON.parse(d.stdout) as { mode: string; files: Record<string, string> };
    expect(daemon.mode).toBe('daemon');
    expect(Object.keys(daemon.files)).toEqual(['permafrost-daemon.service']);
    expect(daemon.files['permafrost-daemon.service']).toContain('After=network-online.target\n');
    expect(daemon.files['permafrost-daemon.service']).toMatch(/^Description=permafrost daemon: checks the snapshots that arrive/m);

    const t = await runCli(['--config', ws.configFile, 'systemd', '--json'], { env: { PATH } });
    expect(t.code).toBe(0);
    expect(t.stderr).toMatch(/^warning: on a backup device the dead-man alarm .* run only in the daemon; use --daemon/);
    expect(Object.keys((JSON.parse(t.stdout) as { files: object }).files)).toEqual(['permafrost-check.service', 'permafrost-check.timer']);
  });

  it('refuses a cron pattern OnCalendar= cannot express, saying why (exit 2)', async () => {
    workspace({ backup: '0 3 1 * 1' });
    const r = await runCli(['--config', ws.configFile, 'systemd']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^permafrost: schedule\.backup: cannot translate the cron pattern "0 3 1 \* 1" into a systemd OnCalendar= expression \(it restricts both day of month and day of week/,
    );
    expect(r.stdout).toBe('');
  });

  it('refuses an unknown --user and a missing vault', async () => {
    workspace();
    const r = await runCli(['--config', ws.configFile, 'systemd', '--user', 'no-such-user-permafrost']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--user: there is no account "no-such-user-permafrost" on this host');
    ws.writeConfig({ vault: { dir: path.join(ws.dir, 'missing') }, extra: { database: { name: 'm' } } });
    const m = await runCli(['--config', ws.configFile, 'systemd']);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/vault\.dir .*missing does not exist yet: create it owned by the account that runs backups/);
  });
});
