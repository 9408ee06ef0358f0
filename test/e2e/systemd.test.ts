import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
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

describe('permafrost systemd', () => {
  it('prints a oneshot service running backup as the vault owner, and a timer on the translated schedule', async () => {
    workspace({ backup: '40 * * * *', timezone: 'Europe/Berlin' });
    const r = await runCli(['--config', ws.configFile, 'systemd', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { user: string; onCalendar: string; files: Record<string, string> };
    expect(out.user).toBe(userInfo().username);
    expect(statSync(ws.vault).uid).toBe(userInfo().uid);
    expect(out.onCalendar).toBe('*-*-* *:40:00 Europe/Berlin');
    const service = out.files['permafrost-backup.service']!;
    expect(service).toContain(`ExecStart=${process.execPath} ${CLI} --config ${ws.configFile} backup\n`);
    expect(service).toContain(`ReadWritePaths=${ws.vault} ${ws.dir}\n`);
    expect(out.files['permafrost-backup.timer']).toContain('OnCalendar=*-*-* *:40:00 Europe/Berlin\n');

    const text = await runCli(['--config', ws.configFile, 'systemd']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('# ----- permafrost-backup.service -----\n');
    expect(text.stdout).toContain('# ----- permafrost-backup.timer -----\n');
  });

  it('--install writes both units; systemd-analyze verify accepts them', async () => {
    workspace();
    const unitDir = path.join(ws.dir, 'units');
    const r = await runCli(['--config', ws.configFile, 'systemd', '--install', '--unit-dir', unitDir, '--user', 'root']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`wrote ${unitDir}/permafrost-backup.service`);
    expect(r.stdout).toContain('systemctl daemon-reload && systemctl enable --now permafrost-backup.timer');
    const service = readFileSync(path.join(unitDir, 'permafrost-backup.service'), 'utf8');
    expect(service).toContain('User=root\n');
    expect(readFileSync(path.join(unitDir, 'permafrost-backup.timer'), 'utf8')).toContain('OnCalendar=*-*-* *:40:00\n');
    if (!systemdAnalyze) return;
    const v = spawnSync(systemdAnalyze, ['verify', path.join(unitDir, 'permafrost-backup.service'), path.join(unitDir, 'permafrost-backup.timer')], {
      encoding: 'utf8',
    });
    expect(`${v.stdout}${v.stderr}`.split('\n').filter((l) => l.includes('permafrost-backup'))).toEqual([]);
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
