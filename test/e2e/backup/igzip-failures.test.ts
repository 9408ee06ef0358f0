import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('bigsource');
let ws: Workspace;

beforeAll(() => {
  // ~6 MB of dump: more than igzip reads before failing plus a pipe buffer, so pg_dump is still writing.
  cluster
    .get()
    .psql(
      'bigsource',
      `CREATE TABLE blobs AS SELECT g AS id, md5(g::text) || md5(random()::text) AS body FROM generate_series(1, 90000) g`,
    );
});
afterEach(() => ws?.cleanup());

// Failures a real igzip cannot be made to show on demand. findIgzip takes the first igzip on PATH.
const FAKES = {
  'fails after reading some input': `head -c 100000 >/dev/null\necho "igzip: simulated failure: disk on fire" >&2\nexit 3\n`,
  'exits early without reading': `echo "igzip: simulated failure: disk on fire" >&2\nexit 3\n`,
  'crashes after reading some input': `head -c 100000 >/dev/null\nkill -SEGV $$\n`,
} as const;

describe('a failing igzip: exit 1, igzip named with its reason, nothing left behind', () => {
  it.each(Object.entries(FAKES))('igzip %s', async (how, script) => {
    ws = makeWorkspace(cluster.get(), 'bigsource');
    const bin = path.join(ws.dir, 'fakebin');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'igzip'), `#!/bin/sh\n${script}`, { mode: 0o755 });
    const r = await runCli(['--config', ws.configFile, 'backup'], {
      env: { PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}`, PERMAFROST_COMPRESSOR: '' },
    });
    expect(r.code, r.stderr).toBe(1);
    const why = how.startsWith('crashes') ? 'killed by SIGSEGV' : 'simulated failure: disk on fire';
    expect(errorSentence(r.stderr)).toBe(`${bin}/igzip failed while compressing database "bigsource": ${why}`);
    expect(r.stderr).toContain(`command: ${bin}/igzip -1 -c -n`);
    expect(r.stderr).not.toMatch(/internal error|pg_dump failed|SIGPIPE/i);
    expect(readdirSync(ws.vault)).toEqual([]);
    expect(existsSync(path.join(ws.vault, '.permafrost.lock'))).toBe(false);
  });
});
