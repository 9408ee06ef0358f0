import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { startS3, type S3Server } from '../../harness/s3.js';
import { clusterPerFile } from '../../harness/suite.js';
import type { OffsiteState } from '../../../src/offsite/state.js';
import { bucketKeys } from './push-helpers.js';

const cluster = clusterPerFile('source');
let s3: S3Server;
let ws: Workspace | undefined;
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket('bkt-backup');
}, 30_000);
afterAll(() => s3.stop());
afterEach(() => ws?.cleanup());

describe('backup with offsite:', () => {
  it('a push that fails never fails the backup (exit 0, one warning, the error recorded); the next backup pushes both snapshots', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const credentials = s3.keyFiles(ws.dir);
    const target = { name: 't1', bucket: 'bkt-backup', prefix: 'host/', pathStyle: true, credentials };
    ws.writeConfig({ extra: { offsite: [{ ...target, endpoint: 'http://127.0.0.1:9' }] } });
    const first = await runCli(['--config', ws.configFile, 'backup']);
    expect(first.code, first.stderr).toBe(0);
    const warnings = first.stderr.split('\n').filter((l) => l.startsWith('warning: '));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^warning: the snapshot is safe in vault\.dir, but pushing it to offsite target t1 \(s3:\/\/bkt-backup\/host\/\) failed: .*could not be reached \(ECONNREFUSED\).* resumes/,
    );
    const ids = readdirSync(ws.vault).filter((n) => /^\d{4}-/.test(n));
    expect(ids).toHaveLength(1);
    const st1 = (JSON.parse(readFileSync(path.join(ws.vault, '.permafrost-offsite.json'), 'utf8')) as OffsiteState).targets.t1!;
    expect(st1.lastError).toMatch(/could not be reached/);
    expect(st1.failingSince).not.toBeNull();

    ws.writeConfig({ extra: { offsite: [{ ...target, endpoint: s3.endpoint }] } });
    await new Promise((r) => setTimeout(r, 1100)); // snapshot ids have a one-second resolution
    const second = await runCli(['--config', ws.configFile, 'backup']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(/warning: .*offsite|pushing it/);
    const both = readdirSync(ws.vault)
      .filter((n) => /^\d{4}-/.test(n))
      .sort();
    expect(both).toHaveLength(2);
    const keys = await bucketKeys(s3, 'bkt-backup');
    for (const id of both) {
      for (const f of readdirSync(path.join(ws.vault, id))) expect(keys[`host/${id}/${f}`], `${id}/${f}`).toBeDefined();
    }
    expect(keys['host/RESTORE.md']).toBeGreaterThan(0);
    expect(keys['host/restore.sh']).toBeGreaterThan(0);
    const st2 = (JSON.parse(readFileSync(path.join(ws.vault, '.permafrost-offsite.json'), 'utf8')) as OffsiteState).targets.t1!;
    expect(st2).toMatchObject({ newestComplete: { id: both[1] }, lastError: null, failingSince: null });
  }, 240_000);
});
