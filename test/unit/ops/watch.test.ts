import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { readJobSecrets } from '../../../src/ops/secrets.js';
import { checkDevices, checkOffsite, replicationReaderFor, watchFreshness } from '../../../src/ops/watch.js';
import type { RunLog } from '../../../src/run-context.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { makeWorkspace, type Workspace } from '../../harness/env.js';
import { startSink, type Sink } from '../../harness/http-sinks.js';

/** The webhook body notify/ sends, as far as these tests read it. */
interface Alert {
  event: string;
  snapshot?: string | null;
  error?: string | null;
}

// A backup device's watch, in process: its vault (hand-made snapshots) and a webhook receiver on loopback.
describe('watchFreshness (the backup device\u2019s dead-man alarm)', () => {
  let sink: Sink;
  let ws: Workspace;
  const lines: string[] = [];
  const log: RunLog = (level, msg) => void lines.push(`${level} ${msg}`);
  beforeAll(async () => {
    sink = await startSink();
    ws = makeWorkspace(null, '');
    ws.writeConfig({ extra: { notify: { webhook: { url: `${sink.url}/hook` } }, syncthing: undefined } });
  });
  afterAll(async () => {
    await sink.close();
    ws.cleanup();
  });
  const alerts = (): Alert[] => sink.received.map((r) => JSON.parse(r.body) as Alert);

  it('alerts once when the newest snapshot is too old, stays quiet while it stays so, and says once when snapshots arrive again', async () => {
    const config = loadConfig(ws.configFile);
    const secrets = readJobSecrets(config);
    const now = new Date('2026-12-01T12:00:00Z');
    mkdirSync(ws.vault, { recursive: true });
    fakeSnapshot(ws.vault, '2026-12-01T06:00:00Z');
    await watchFreshness(config, log, secrets, now);
    expect(alerts()).toHaveLength(1);
    expect(alerts()[0]).toMatchObject({ event: 'snapshots.stale', snapshot: '2026-12-01T06-00-00Z' });
    expect(alerts()[0]!.error).toMatch(
      /^the newest complete snapshot here, 2026-12-01T06-00-00Z, is 6 h old, older than 2 h \(syncthing\.staleAfter\)/,
    );
    // Still stale an hour later: no second alert.
    await watchFreshness(config, log, secrets, new Date('2026-12-01T13:00:00Z'));
    expect(alerts()).toHaveLength(1);
    // A fresh snapshot arrives: one "resolved".
    fakeSnapshot(ws.vault, '2026-12-01T13:40:00Z');
    await watchFreshness(config, log, secrets, new Date('2026-12-01T13:50:00Z'));
    expect(alerts()).toHaveLength(2);
    expect(alerts()[1]).toMatchObject({ event: 'snapshots.resolved', snapshot: '2026-12-01T13-40-00Z' });
    await watchFreshness(config, log, secrets, new Date('2026-12-01T13:55:00Z'));
    expect(alerts()).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith('error'))).toEqual([]);
  });
});

describe('checkDevices, checkOffsite and replicationReaderFor without their sections', () => {
  it('without notify or syncthing/offsite they ask nothing and say nothing; no syncthing: no replication reader', async () => {
    const ws = makeWorkspace(null, '');
    try {
      const config = loadConfig(ws.configFile);
      const lines: string[] = [];
      const log: RunLog = (level, msg) => void lines.push(`${level} ${msg}`);
      await checkDevices(config, log, readJobSecrets(config));
      await checkOffsite(config, log, readJobSecrets(config));
      expect(lines).toEqual([]);
      expect(replicationReaderFor(config)).toBeUndefined();
    } finally {
      ws.cleanup();
    }
  });
});
