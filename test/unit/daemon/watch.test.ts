import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { daemonNotifyLog, webService } from '../../../src/daemon/watch.js';
import { parseConfig } from '../../../src/config/load.js';
import type { DaemonLogger, JobStatus } from '../../../src/daemon/scheduler.js';
import { deadPort } from '../../harness/http-sinks.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-watch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function logger(): DaemonLogger & { lines: Array<[string, Record<string, unknown>, string]> } {
  const lines: Array<[string, Record<string, unknown>, string]> = [];
  const at = (level: string) => (fields: object, msg: string) => lines.push([level, fields as Record<string, unknown>, msg]);
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

describe('daemonNotifyLog (alert logs as daemon log lines)', () => {
  it("a sent alert is alert.sent, a delivery problem alert.delivery; the alert's own event goes into `alert`", () => {
    const log = logger();
    const notify = daemonNotifyLog(log);
    notify('info', 'alert sent to webhook', { event: 'backup.failed', sent: true, channel: 'webhook' });
    notify('warn', 'webhook delivery failed', { event: 'backup.failed', attempt: 2, of: 3, error: 'HTTP 502' });
    notify('error', 'alerting failed', { stack: 'TypeError…' });
    expect(log.lines).toEqual([
      ['info', { event: 'alert.sent', alert: 'backup.failed', channel: 'webhook' }, 'alert sent to webhook'],
      ['warn', { event: 'alert.delivery', alert: 'backup.failed', attempt: 2, of: 3, error: 'HTTP 502' }, 'webhook delivery failed'],
      ['error', { event: 'alert.delivery', stack: 'TypeError…' }, 'alerting failed'],
    ]);
  });
});

describe('webService (the status page as a daemon service)', () => {
  it('starts the page on web.listen with the jobs it is given, answers, and is gone once stopped', async () => {
    const port = await deadPort();
    const text = stringify({ vault: { dir }, web: { listen: `127.0.0.1:${port}` } });
    const file = path.join(dir, 'device.yaml');
    writeFileSync(file, text);
    const jobs: JobStatus[] = [];
    const svc = webService(parseConfig(text, file), () => jobs);
    expect(svc.name).toBe('web');
    expect(await svc.start()).toEqual({ url: `http://127.0.0.1:${port}/` });
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/status.json`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ role: 'receiver' });
    } finally {
      await svc.stop();
    }
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
    await svc.stop();
  });

  it('a page listening beyond loopback without web.tokenFile is refused when the service starts', async () => {
    const text = stringify({ vault: { dir }, web: { listen: '0.0.0.0:9' } });
    const svc = webService(parseConfig(text, path.join(dir, 'x.yaml')), () => []);
    await expect(svc.start()).rejects.toThrow(/web\.listen: 0\.0\.0\.0 is reachable from other machines; set web\.tokenFile/);
  });
});
