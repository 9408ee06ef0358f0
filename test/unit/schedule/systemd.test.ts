import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Cron } from 'croner';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../../src/errors.js';
import { cronToOnCalendar, initSystemProblem, quoteExecArg, renderUnits } from '../../../src/schedule/systemd.js';

const systemdAnalyze = spawnSync('which', ['systemd-analyze'], { encoding: 'utf8' }).stdout.trim();
const SKIP_REASON = 'systemd-analyze is not installed (apt-get install systemd): OnCalendar oracle and unit verification skipped';
if (!systemdAnalyze) console.warn(`SKIPPED: ${SKIP_REASON}`);

describe('cronToOnCalendar', () => {
  it.each([
    ['40 * * * *', undefined, '*-*-* *:40:00'],
    ['@hourly', undefined, '*-*-* *:00:00'],
    ['@daily', 'Europe/Berlin', '*-*-* 00:00:00 Europe/Berlin'],
    ['*/15 * * * *', undefined, '*-*-* *:00/15:00'],
    ['5,35 */2 * * *', undefined, '*-*-* 00/2:05,35:00'],
    ['0 4 * * 1-5', 'UTC', 'Mon..Fri *-*-* 04:00:00 UTC'],
    ['0 4 * * MON-FRI', undefined, 'Mon..Fri *-*-* 04:00:00'],
    ['30 3 * * 0', undefined, 'Sun *-*-* 03:30:00'],
    ['30 3 * * 7', undefined, 'Sun *-*-* 03:30:00'],
    ['30 3 * * 6,0', undefined, 'Sat,Sun *-*-* 03:30:00'],
    ['0 0 1 */3 *', undefined, '*-01/3-01 00:00:00'],
    ['0 0 1-10 JAN-MAR *', undefined, '*-01..03-01..10 00:00:00'],
    ['*/20 * * * * *', undefined, '*-*-* *:*:00/20'],
    ['10-50/20 * * * *', undefined, '*-*-* *:10/20:00'],
    ['10-40/15 * * * *', undefined, '*-*-* *:10,25,40:00'],
    ['0 1 * * 0-6', undefined, '*-*-* 01:00:00'],
    ['0 1 1-31 * 1', undefined, '*-*-* 01:00:00'],
  ])('%s (tz %s) → %s', (cron, tz, expected) => {
    expect(cronToOnCalendar(cron, tz)).toBe(expected);
  });

  it.each([
    ['0 0 L * *', /L, W, # or \?/],
    ['0 0 * * 5#2', /L, W, # or \?/],
    ['0 0 13 * 5', /both day of month and day of week/],
    ['0 0 * *', /expected 5 or 6 fields/],
    ['@reboot', /no timer equivalent/],
    ['0 25 * * *', /not a valid hour/],
  ])('refuses %s with a clear sentence', (cron, why) => {
    let err: unknown;
    try {
      cronToOnCalendar(cron);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(
      /^schedule\.backup: cannot translate the cron pattern ".*" into a systemd OnCalendar= expression \(/,
    );
    expect((err as Error).message).toMatch(why);
    expect((err as Error).message).toMatch(/run `permafrost daemon` instead/);
  });

  // systemd itself is the oracle: its next elapse times must equal croner's next runs.
  it.skipIf(!systemdAnalyze).each([
    ['40 * * * *', undefined],
    ['*/15 * * * *', undefined],
    ['5,35 */2 * * *', 'Europe/Berlin'],
    ['0 4 * * 1-5', 'America/New_York'],
    ['30 3 * * 6,0', undefined],
    ['0 0 1 */3 *', undefined],
    ['0 0 1-10 JAN-MAR *', 'Asia/Kolkata'],
    ['*/20 * * * * *', undefined],
    ['10-50/20 3-5 * * *', undefined],
    ['10-40/15 * * * *', 'Europe/Berlin'],
    ['@weekly', 'Europe/Berlin'],
    ['0 1 1-31 * 1', undefined],
  ])('OnCalendar of %s (tz %s) elapses when croner fires', (cron, tz) => {
    const base = new Date('2026-11-26T09:17:00Z');
    const spec = cronToOnCalendar(cron, tz);
    const r = spawnSync(systemdAnalyze, ['calendar', '--iterations=8', `--base-time=@${Math.floor(base.getTime() / 1000)}`, spec], {
      encoding: 'utf8',
      env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' },
    });
    expect(r.status, r.stderr).toBe(0);
    const systemdTimes = [...r.stdout.matchAll(/(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map((m) =>
      new Date(`${m[1]!.replace(' ', 'T')}Z`).toISOString(),
    );
    const cronerTimes = new Cron(cron, { paused: true, timezone: tz ?? 'UTC' }).nextRuns(8, base).map((d) => d.toISOString());
    expect(systemdTimes).toHaveLength(8);
    expect(systemdTimes).toEqual(cronerTimes);
  });
});

describe('renderUnits', () => {
  const units = renderUnits({
    command: [process.execPath, '/opt/perma frost/dist/cli/main.js'],
    configPath: '/etc/permafrost/permafrost.yaml',
    user: 'root',
    vaultDir: '/var/lib/permafrost/snapshots',
    writablePaths: ['/var/tmp/permafrost'],
    onCalendar: '*-*-* *:40:00',
    verifyOnCalendar: '*-*-* 04:10:00',
  });
  const service = units['permafrost-backup.service']!;
  const timer = units['permafrost-backup.timer']!;

  it('runs `permafrost backup --config …` once, as the vault owner, with hardening', () => {
    expect(service).toContain('Type=oneshot\n');
    expect(service).toContain(
      `ExecStart=${process.execPath} "/opt/perma frost/dist/cli/main.js" --config /etc/permafrost/permafrost.yaml backup\n`,
    );
    expect(service).toContain('User=root\n');
    for (const line of [
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/permafrost/snapshots /var/tmp/permafrost',
      'ProtectHome=read-only',
      'PrivateTmp=yes',
      'NoNewPrivileges=yes',
      'CapabilityBoundingSet=',
    ]) {
      expect(service.split('\n')).toContain(line);
    }
    expect(service).not.toMatch(/^MemoryDenyWriteExecute=/m);
  });

  it('timer fires on the translated schedule and catches up after downtime', () => {
    expect(timer.split('\n')).toEqual(
      expect.arrayContaining(['OnCalendar=*-*-* *:40:00', 'Persistent=true', 'Unit=permafrost-backup.service', 'WantedBy=timers.target']),
    );
  });

  it('a verify service and timer run `permafrost verify` on schedule.verify; metrics are rewritten after every run', () => {
    const withMetrics = renderUnits({
      command: ['/usr/local/bin/permafrost'],
      configPath: '/etc/permafrost/permafrost.yaml',
      user: 'mastodon',
      vaultDir: '/var/lib/permafrost/snapshots',
      onCalendar: '*-*-* *:40:00',
      verifyOnCalendar: '*-*-* 04:10:00 Europe/Berlin',
      metricsTextfile: '/var/lib/prometheus/node-exporter/permafrost.prom',
    });
    const verify = withMetrics['permafrost-verify.service']!;
    expect(verify).toContain('ExecStart=/usr/local/bin/permafrost --config /etc/permafrost/permafrost.yaml verify\n');
    expect(verify).toContain('User=mastodon\n');
    expect(withMetrics['permafrost-verify.timer']!.split('\n')).toEqual(
      expect.arrayContaining(['OnCalendar=*-*-* 04:10:00 Europe/Berlin', 'Unit=permafrost-verify.service', 'WantedBy=timers.target']),
    );
    for (const name of ['permafrost-backup.service', 'permafrost-verify.service']) {
      const text = withMetrics[name]!;
      expect(text).toContain(
        'ExecStopPost=-/usr/local/bin/permafrost --config /etc/permafrost/permafrost.yaml metrics --textfile /var/lib/prometheus/node-exporter/permafrost.prom\n',
      );
      expect(text).toContain('ReadWritePaths=/var/lib/permafrost/snapshots /var/lib/prometheus/node-exporter\n');
      expect(text).toMatch(/^# .*OnFailure=/m);
    }
    expect(service).not.toContain('ExecStopPost=');
  });

  it('quotes ExecStart words as systemd reads them', () => {
    expect(quoteExecArg('/usr/bin/node')).toBe('/usr/bin/node');
    expect(quoteExecArg('/a b/c')).toBe('"/a b/c"');
    expect(quoteExecArg('/a/100%/$HOME')).toBe('/a/100%%/$$HOME');
    expect(() => quoteExecArg('/a\nb')).toThrow(UserError);
  });

  it.skipIf(!systemdAnalyze)('passes systemd-analyze verify', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-units-'));
    try {
      const ok = renderUnits({
        command: [process.execPath, path.resolve('dist/cli/main.js')],
        configPath: '/etc/permafrost/permafrost.yaml',
        user: 'root',
        vaultDir: dir,
        onCalendar: cronToOnCalendar('40 * * * *', 'Europe/Berlin'),
        verifyOnCalendar: cronToOnCalendar('10 4 * * *', 'Europe/Berlin', 'schedule.verify'),
        metricsTextfile: path.join(dir, 'textfile', 'permafrost.prom'),
      });
      for (const [name, text] of Object.entries(ok)) writeFileSync(path.join(dir, name), text);
      const files = Object.keys(ok).map((n) => path.join(dir, n));
      const r = spawnSync(systemdAnalyze, ['verify', ...files], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' } });
      expect(Object.keys(ok).sort()).toEqual([
        'permafrost-backup.service',
        'permafrost-backup.timer',
        'permafrost-verify.service',
        'permafrost-verify.timer',
      ]);
      // Only complaints about our own units count: a container may warn about its own setup.
      const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('permafrost-'));
      expect(ours, `${r.stdout}${r.stderr}`).toEqual([]);
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);

      // And the check can fail: a broken unit is reported.
      writeFileSync(path.join(dir, 'permafrost-backup.service'), ok['permafrost-backup.service']!.replace('Type=oneshot', 'Type=oneshoot'));
      const bad = spawnSync(systemdAnalyze, ['verify', ...files], { encoding: 'utf8' });
      expect(`${bad.stdout}${bad.stderr}`).toMatch(/permafrost-backup\.service:\d+: Failed to parse service type/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('initSystemProblem (PID 1 from /proc/1/comm)', () => {
  it('is null under systemd, names any other init, and says when it cannot tell', () => {
    const proc = mkdtempSync(path.join(tmpdir(), 'permafrost-proc-'));
    try {
      expect(initSystemProblem(proc)).toBe(`cannot tell which init system runs here (${proc}/1/comm: ENOENT)`);
      mkdirSync(path.join(proc, '1'));
      writeFileSync(path.join(proc, '1', 'comm'), 'systemd\n');
      expect(initSystemProblem(proc)).toBeNull();
      writeFileSync(path.join(proc, '1', 'comm'), 'tini\n');
      expect(initSystemProblem(proc)).toBe('PID 1 here is "tini", not systemd');
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
