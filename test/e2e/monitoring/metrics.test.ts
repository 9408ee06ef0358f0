import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { deadPort } from '../../harness/http-sinks.js';
import { parsePromText, sampleValue } from '../../harness/prom-text.js';
import type { Manifest } from '../../../src/vault/manifest.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

describe('permafrost metrics', () => {
  it('prints Prometheus text whose values match the snapshots on disk, and writes the textfile atomically', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    // A ping receiver that is down: every backup adds two failed deliveries (start, success).
    ws.writeConfig({ extra: { notify: { ping: { url: `http://127.0.0.1:${await deadPort()}/p` }, retries: 0, backoffMs: 1 } } });

    const before = parsePromText((await runCli(['--config', ws.configFile, 'metrics'])).stdout);
    expect(sampleValue(before, 'permafrost_snapshots')).toBe(0);
    expect(before.has('permafrost_last_success_timestamp_seconds')).toBe(false);

    for (let i = 0; i < 2; i++) expect((await runCli(['--config', ws.configFile, 'backup'])).code).toBe(0);
    const verify = await runCli(['--config', ws.configFile, 'verify', '--json']);
    expect(verify.code, verify.stderr).toBe(0);
    const verified = JSON.parse(verify.stdout) as { checkedAt: string; durationMs: number };

    const r = await runCli(['--config', ws.configFile, 'metrics']);
    expect(r.code, r.stderr).toBe(0);
    const m = parsePromText(r.stdout);

    // What is on disk, read independently of permafrost's code.
    const ids = readdirSync(ws.vault)
      .filter((n) => /^\d{4}-.*Z$/.test(n))
      .sort()
      .reverse();
    const manifests = ids.map((id) => JSON.parse(readFileSync(path.join(ws.vault, id, 'manifest.json'), 'utf8')) as Manifest);
    const newest = manifests[0]!;
    const db = newest.files.find((f) => f.part === 'database')!;
    expect(db.bytes).toBe(statSync(path.join(ws.vault, newest.id, db.name)).size);

    expect(m.get('permafrost_snapshots')?.type).toBe('gauge');
    expect(sampleValue(m, 'permafrost_snapshots')).toBe(2);
    expect(sampleValue(m, 'permafrost_snapshots_bytes')).toBe(manifests.flatMap((x) => x.files).reduce((n, f) => n + f.bytes, 0));
    expect(sampleValue(m, 'permafrost_last_success_timestamp_seconds')).toBe(Date.parse(newest.finishedAt) / 1000);
    expect(sampleValue(m, 'permafrost_last_backup_duration_seconds')).toBeCloseTo(
      (Date.parse(newest.finishedAt) - Date.parse(newest.startedAt)) / 1000,
      6,
    );
    expect(sampleValue(m, 'permafrost_last_backup_part_bytes', { part: 'database' })).toBe(db.bytes);
    expect(sampleValue(m, 'permafrost_last_backup_part_plain_bytes', { part: 'database' })).toBe(db.plainBytes);
    expect(sampleValue(m, 'permafrost_last_backup_part_duration_seconds', { part: 'database' })).toBeCloseTo(db.durationMs / 1000, 6);
    expect(sampleValue(m, 'permafrost_snapshots_verify', { result: 'verified' })).toBe(1);
    expect(sampleValue(m, 'permafrost_snapshots_verify', { result: 'never' })).toBe(1);
    expect(sampleValue(m, 'permafrost_snapshots_verify', { result: 'failed' })).toBe(0);
    expect(sampleValue(m, 'permafrost_newest_snapshot_verified')).toBe(1);
    expect(sampleValue(m, 'permafrost_last_verify_success')).toBe(1);
    expect(sampleValue(m, 'permafrost_last_verify_timestamp_seconds')).toBe(Date.parse(verified.checkedAt) / 1000);
    expect(sampleValue(m, 'permafrost_last_verify_duration_seconds')).toBe(verified.durationMs / 1000);
    expect(m.get('permafrost_alert_delivery_failures_total')?.type).toBe('counter');
    expect(sampleValue(m, 'permafrost_alert_delivery_failures_total', { channel: 'ping' })).toBe(4);

    const file = path.join(ws.dir, 'textfile', 'permafrost.prom');
    mkdirSync(path.dirname(file));
    const t = await runCli(['--config', ws.configFile, 'metrics', '--textfile', file]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toBe('');
    expect(readFileSync(file, 'utf8')).toBe(`${r.stdout.trimEnd()}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    expect(readdirSync(path.dirname(file))).toEqual(['permafrost.prom']);

    const bad = await runCli(['--config', ws.configFile, 'metrics', '--textfile', path.join(ws.dir, 'x.txt')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('must end in .prom');
  });
});
