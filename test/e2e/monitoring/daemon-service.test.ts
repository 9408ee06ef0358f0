import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, startCli, type Workspace } from '../../harness/env.js';
import { startSink, type Sink } from '../../harness/http-sinks.js';
import { waitFor } from '../../harness/wait.js';

// A backup device (vault only): its daemon checks and raises the dead-man alarm, no PostgreSQL needed.
let ws: Workspace;
let hook: Sink | undefined;
const kills: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const k of kills.splice(0)) await k();
  await hook?.close();
  ws?.cleanup();
});

function deviceConfig(extra: Record<string, unknown>): void {
  writeFileSync(ws.configFile, JSON.stringify({ vault: { dir: ws.vault }, ...extra }));
}

function start(args: string[]) {
  const d = startCli(['--config', ws.configFile, 'daemon', '--stop-grace', '5', ...args]);
  let out = '';
  d.child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  kills.push(async () => {
    if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    await d.result;
  });
  return { ...d, lines: () => out.split('\n').filter(Boolean) };
}

const TIME = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`;

describe('daemon as a service', () => {
  it('--log-format text: one readable line per event, the page URL at start, every alert sent; SIGHUP reloads (an invalid config is kept out)', async () => {
    ws = makeWorkspace(null, 'x');
    hook = await startSink();
    const good = {
      schedule: { check: '* * * * * *', timezone: 'UTC' },
      web: { listen: '127.0.0.1:0' },
      notify: { webhook: { url: hook.url }, backoffMs: 10 },
    };
    deviceConfig(good);
    const d = start(['--log-format', 'text']);
    const has = (re: RegExp) => d.lines().some((l) => re.test(l));
    await waitFor('a check run and its alert', () => has(/alert snapshots\.stale sent to webhook$/), 30_000);
    const lines = d.lines();
    expect(lines[0]).toMatch(
      new RegExp(`^${TIME} status page at http://127\\.0\\.0\\.1:\\d+/ \\(also /metrics and /api/status\\.json\\)$`),
    );
    expect(lines[1]).toMatch(new RegExp(`^${TIME} daemon started \\(times in UTC\\): check "\\* \\* \\* \\* \\* \\*" next ${TIME}$`));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${TIME} check started$`)));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${TIME} alert snapshots\\.stale sent to webhook$`)));
    expect(hook.received).toHaveLength(1);
    for (const l of lines) expect(l.startsWith('{'), l).toBe(false);

    // An invalid config: logged, the daemon goes on with the one it has.
    deviceConfig({ ...good, schedule: { check: '61 * * * *' } });
    d.child.kill('SIGHUP');
    await waitFor('the refused reload', () => has(/not reloaded/), 15_000);
    expect(d.lines().find((l) => l.includes('not reloaded'))).toMatch(
      new RegExp(
        `^${TIME} error: SIGHUP: ${ws.configFile} not reloaded, the daemon goes on with the config it has: .*schedule\\.check: expected a cron pattern`,
      ),
    );
    const runs = d.lines().filter((l) => / check started$/.test(l)).length;
    await waitFor('a check after the refused reload', () => d.lines().filter((l) => / check started$/.test(l)).length > runs, 15_000);

    // A valid one takes over: the new schedule is what the restarted scheduler names.
    deviceConfig({ ...good, schedule: { check: '0 0 1 1 *', timezone: 'UTC' } });
    d.child.kill('SIGHUP');
    await waitFor('the reload', () => has(/daemon started \(times in UTC\): check "0 0 1 1 \*" next \d{4}-01-01 00:00:00$/), 15_000);
    expect(d.child.exitCode).toBeNull();
    d.child.kill('SIGTERM');
    const r = await d.result;
    expect(r.code).toBe(0);
    expect(d.lines().at(-1)).toMatch(new RegExp(`^${TIME} daemon stopped$`));
  }, 120_000);

  it('logs JSON lines when stdout is not a TTY, alerts sent as alert.sent with channel and alert', async () => {
    ws = makeWorkspace(null, 'x');
    hook = await startSink();
    deviceConfig({ schedule: { check: '* * * * * *' }, notify: { webhook: { url: hook.url }, backoffMs: 10 } });
    const d = start([]);
    const json = () => d.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    await waitFor('the alert', () => json().some((l) => l.event === 'alert.sent'), 30_000);
    expect(json().find((l) => l.event === 'alert.sent')).toMatchObject({
      level: 'info',
      alert: 'snapshots.stale',
      channel: 'webhook',
      msg: 'alert snapshots.stale sent to webhook',
    });
    d.child.kill('SIGTERM');
    expect((await d.result).code).toBe(0);
  }, 60_000);
});
