import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestSnapshotRescan } from '../../../src/replicate/rescan.js';
import { syncthingSchema } from '../../../src/config/schema-replicate.js';
import { Secret } from '../../../src/config/secret-values.js';
import type { Config } from '../../../src/config/schema.js';
import { SNAPSHOTS_FOLDER } from '../../../src/replicate/plan.js';
import { deadPort, startSink, type Sink } from '../../harness/http-sinks.js';

/** A config whose Syncthing is at `url`, as `role`. */
function config(url: string | null, role: 'source' | 'receiver' = 'source'): Config {
  return {
    configPath: '/p',
    role: 'source',
    vault: { dir: '/v' },
    ...(url ? { syncthing: syncthingSchema.parse({ url, apiKeyFile: '/k', role }) } : {}),
  } as Config;
}

let status = 200;
let sink: Sink;
beforeAll(async () => {
  sink = await startSink(() => ({ status, body: status === 200 ? '' : 'folder "permafrost-snapshots" does not exist' }));
});
afterAll(() => sink.close());

describe('requestSnapshotRescan (never throws: replication trouble must not fail a backup)', () => {
  it('asks the source Syncthing to scan the snapshots folder; null when it did', async () => {
    expect(await requestSnapshotRescan(config(sink.url), Secret.of('k3y'))).toBeNull();
    expect(sink.received.at(-1)).toMatchObject({ method: 'POST', path: `/rest/db/scan?folder=${SNAPSHOTS_FOLDER}` });
    expect(sink.received.at(-1)!.headers['x-api-key']).toBe('k3y');
  });

  it('nothing to do without syncthing or on a receiver: null, and no request', async () => {
    const before = sink.received.length;
    expect(await requestSnapshotRescan(config(null), undefined)).toBeNull();
    expect(await requestSnapshotRescan(config(sink.url, 'receiver'), Secret.of('k'))).toBeNull();
    expect(sink.received.length).toBe(before);
  });

  it('Syncthing down: a warning that replication is unreachable', async () => {
    const url = `http://127.0.0.1:${await deadPort()}`;
    const w = await requestSnapshotRescan(config(url), Secret.of('k'));
    expect(w).toBe(
      `replication is unreachable: Syncthing's API at ${url} is unreachable (ECONNREFUSED): start Syncthing, or fix syncthing.url.`,
    );
  });

  it('an error answer (or no key read): a warning that the snapshot moves at the next rescan', async () => {
    status = 500;
    const w = await requestSnapshotRescan(config(sink.url), Secret.of('k'));
    expect(w).toMatch(
      /^replication rescan failed, the snapshot will move at the next rescan: Syncthing at .* answered HTTP 500 to POST \/rest\/db\/scan: folder/,
    );
    status = 200;
    expect(await requestSnapshotRescan(config(sink.url), undefined)).toMatch(/^replication rescan failed, .*API key was not read/);
  });
});
