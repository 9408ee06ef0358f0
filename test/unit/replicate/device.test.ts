import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { deviceFreshness } from '../../../src/replicate/device.js';
import { fakeChain, moveToVersions } from '../../harness/fake-snapshot.js';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A device vault holding a base and three deltas, taken 4 h, 3 h, 2 h and 1 h ago. */
function device() {
  dir = mkdtempSync(path.join(tmpdir(), 'permafrost-device-'));
  const vault = path.join(dir, 'vault');
  const start = new Date(Date.now() - 4 * 3_600_000);
  start.setUTCMilliseconds(0);
  const chain = fakeChain(vault, start.toISOString(), 4, 24);
  return { vault, ids: chain.map((m) => m.id), config: parseConfig(`vault: { dir: ${vault} }\n`, path.join(dir, 'p.yaml')) };
}

describe('deviceFreshness with delta chains', () => {
  it('a delta counts as the newest complete snapshot only with its whole chain here', async () => {
    const { vault, ids, config } = device();
    expect((await deviceFreshness(config)).newest?.id).toBe(ids[3]);
    // A link missing: neither it nor the deltas after it are complete; the base still is.
    rmSync(path.join(vault, ids[1]!, 'delta.sql.gpg'));
    expect((await deviceFreshness(config)).newest?.id).toBe(ids[0]);
    rmSync(path.join(vault, ids[0]!), { recursive: true });
    const none = await deviceFreshness(config);
    expect(none.newest).toBeNull();
    expect(none.stale).toBe(true);
  });

  it("a link that only Syncthing's .stversions keeps (pruned on the server) still makes the chain whole", async () => {
    const { vault, ids, config } = device();
    moveToVersions(vault, ids[1]!);
    moveToVersions(vault, ids[0]!);
    expect((await deviceFreshness(config)).newest?.id).toBe(ids[3]);
  });
});
