import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, startDaemonLog, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { startSink, type Sink } from '../../harness/http-sinks.js';
import { waitFor } from '../../harness/wait.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
let hook: Sink | undefined;
afterEach(async () => {
  ws?.cleanup();
  await hook?.close();
});

describe('daemon: scheduled verify and alerts', () => {
  it('verifies on schedule.verify, alerts once when the snapshot is damaged, and once when a backup fails', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    hook = await startSink();
    expect((await runCli(['--config', ws.configFile, 'backup'])).code).toBe(0);
    const id = readdirSync(ws.vault).find((n) => /Z$/.test(n))!;
    const file = path.join(ws.vault, id, 'database.pgdump.gpg');
    const bytes = readFileSync(file);
    bytes[100]! ^= 0x55;
    writeFileSync(file, bytes);

    // Verify every 2 s; backup every 3 s against a database that does not exist (fails).
    ws.writeConfig({
      database: { name: 'no_such_db' },
      extra: { schedule: { verify: '*/2 * * * * *', backup: '1-59/3 * * * * *' }, notify: { webhook: { url: hook.url }, backoffMs: 10 } },
    });
    const d = startDaemonLog(ws.configFile);
    const lines = d.lines;
    try {
      await waitFor(
        'two failed verify runs and two failed backup runs',
        () =>
          lines().filter((l) => l.event === 'run.fail' && l.job === 'verify').length >= 2 &&
          lines().filter((l) => l.event === 'run.fail' && l.job === 'backup').length >= 2,
        30_000,
      );
    } finally {
      d.child.kill('SIGTERM');
      await d.result;
    }
    const verifyFail = lines().find((l) => l.event === 'run.fail' && l.job === 'verify')!;
    expect(verifyFail.error).toMatch(new RegExp(`^Snapshot ${id} failed verification: database.pgdump.gpg does not match the SHA-256`));
    const events = hook.received.map((r) => (JSON.parse(r.body) as { event: string }).event).sort();
    expect(events).toEqual(['backup.failed', 'verify.failed']);
    const list = JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as Array<{ verified: string }>;
    expect(list[0]!.verified).toBe('failed');
    expect(cluster.get().psql('postgres', "SELECT count(*) FROM pg_database WHERE datname LIKE 'permafrost_verify%'").trim()).toBe('0');
  });
});
