import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createDaemon } from '../../../src/daemon/jobs.js';
import { parseConfig } from '../../../src/config/load.js';
import type { DaemonLogger } from '../../../src/daemon/scheduler.js';
import { deadPort } from '../../harness/http-sinks.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-jobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A real config (parseConfig: schema, normalize, system checks) over a fresh vault folder. */
function config(name: string, sections: Record<string, unknown>) {
  const vault = path.join(dir, name);
  mkdirSync(vault);
  const file = path.join(dir, `${name}.yaml`);
  const text = stringify({ vault: { dir: vault }, schedule: { timezone: 'Europe/Berlin' }, ...sections });
  writeFileSync(file, text);
  return parseConfig(text, file);
}

function logger(): DaemonLogger & { lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> } {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (fields: object, msg: string) => lines.push({ level, fields: fields as Record<string, unknown>, msg });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

describe('createDaemon: the jobs and services by role', () => {
  it('a server: backup, verify and check on their crons in schedule.timezone', () => {
    const passphrase = path.join(dir, 'pass');
    writeFileSync(passphrase, 'p\n', { mode: 0o600 });
    const d = createDaemon(
      config('source', { database: { name: 'mastodon' }, vault: { dir: path.join(dir, 'source'), passphraseFile: passphrase } }),
      logger(),
    );
    expect(d.status().map((j) => [j.name, j.cron, j.timezone])).toEqual([
      ['backup', '40 * * * *', 'Europe/Berlin'],
      ['verify', '10 4 * * *', 'Europe/Berlin'],
      ['check', '25 * * * *', 'Europe/Berlin'],
    ]);
  });

  it('a backup device: check only; verify too once it has verify.connection', () => {
    expect(
      createDaemon(config('device', {}), logger())
        .status()
        .map((j) => j.name),
    ).toEqual(['check']);
    const withVerify = config('device-verify', { verify: { connection: { host: '/var/run/postgresql' } } });
    expect(
      createDaemon(withVerify, logger())
        .status()
        .map((j) => j.name),
    ).toEqual(['verify', 'check']);
  });

  it("a device's check job: vault.keep applied first (its pruned list in the result), then the check of what it holds", async () => {
    const runCheck = async (name: string, sections: Record<string, unknown>) => {
      const d = createDaemon(config(name, sections), logger());
      await d.start();
      try {
        return await d.trigger('check');
      } finally {
        await d.stop('test over');
      }
    };
    const run = await runCheck('device-keep', { vault: { dir: path.join(dir, 'device-keep'), keep: { last: 2 } } });
    expect(run).toMatchObject({ outcome: 'ok', result: { checked: 0, pruned: [] } });
    const plain = await runCheck('device-plain', {});
    expect(plain).toMatchObject({ outcome: 'ok', result: { checked: 0 } });
    expect((plain as { result: object }).result).not.toHaveProperty('pruned');
  });

  it('with a web section the status page is a service: started with the daemon (its address logged), stopped with it', async () => {
    const port = await deadPort();
    const log = logger();
    const d = createDaemon(config('device-web', { web: { listen: `127.0.0.1:${port}` } }), log);
    await d.start();
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/status.json`);
      expect(res.status).toBe(200);
      expect(log.lines.find((l) => l.fields.event === 'service.start')?.fields).toMatchObject({
        service: 'web',
        url: `http://127.0.0.1:${port}/`,
      });
    } finally {
      await d.stop('test over');
    }
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });
});
