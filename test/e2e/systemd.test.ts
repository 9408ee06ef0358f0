import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, makeWorkspace, runCli, type Workspace } from '../harness/env.js';

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

describe('permafrost systemd', () => {
  it('prints a oneshot service running backup as the vault owner, and a timer on the translated schedule', async () => {
    workspace({ backup: '40 * * * *', timezone: 'Europe/Berlin' });
    const { PATH, bin } = pathWithPermafrost();
    const r = await runCli(['--config', ws.configFile, 'systemd', '--json'], { env: { PATH } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { user: string; onCalendar: string; verifyOnCalendar: string; files: Record<string, string> };
    expect(out.user).toBe(userInfo().username);
    expect(statSync(ws.vault).uid).toBe(userInfo().uid);
    expect(out.onCalendar).toBe('*-*-* *:40:00 Europe/Berlin');
    expect(out.verifyOnCalendar).toBe('*-*-* 04:10:00 Europe/Berlin');
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

  it('--install writes the backup and verify units; systemd-analyze verify accepts them', async () => {
    workspace();
    const unitDir = path.join(ws.dir, 'units');
    const textfile = path.join(ws.dir, 'permafrost.prom');
    const { PATH } = pathWithPermafrost();
    const r = await runCli(
      ['--config', ws.configFile, 'systemd', '--install', '--unit-dir', unitDir, '--user', 'root', '--metrics-textfile', textfile],
      { env: { PATH } },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${unitDir}/permafrost-backup.service`);
    expect(r.stdout).toContain(`wrote ${unitDir}/permafrost-verify.timer`);
    expect(r.stdout).toContain('systemctl daemon-reload && systemctl enable --now permafrost-backup.timer permafrost-verify.timer');
    expect(readFileSync(path.join(unitDir, 'permafrost-verify.service'), 'utf8')).toContain(`metrics --textfile ${textfile}\n`);
    const service = readFileSync(path.join(unitDir, 'permafrost-backup.service'), 'utf8');
    expect(service).toContain('User=root\n');
    expect(readFileSync(path.join(unitDir, 'permafrost-backup.timer'), 'utf8')).toContain('OnCalendar=*-*-* *:40:00\n');
    if (!systemdAnalyze) return;
    const units = ['backup.service', 'backup.timer', 'verify.service', 'verify.timer'].map((u) => path.join(unitDir, `permafrost-${u}`));
    const v = spawnSync(systemdAnalyze, ['verify', ...units], { encoding: 'utf8' });
    expect(`${v.stdout}${v.stderr}`.split('\n').filter((l) => l.includes('permafrost-'))).toEqual([]);
    expect(v.status).toBe(0);
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
