import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../../../src/ops/doctor.js';
import { makeWorkspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('doctorsrc');
const workspaces: { cleanup(): void }[] = [];
afterAll(() => {
  for (const w of workspaces) w.cleanup();
});
const workspace = (...a: Parameters<typeof makeWorkspace>) => {
  const w = makeWorkspace(...a);
  workspaces.push(w);
  return w;
};
const checks = (lines: { check: string }[]): string[] => lines.map((l) => l.check);

describe('runDoctor', () => {
  it('a config that does not load is one FAIL line (never a throw), naming the problem and how to write one', async () => {
    const ws = workspace(null, '');
    writeFileSync(ws.configFile, 'vault:\n  dir: 12\n  nonsense: true\n');
    const r = await runDoctor({ configFlag: ws.configFile });
    expect(r.ok).toBe(false);
    expect(r.configPath).toBeNull();
    expect(r.device).toBe(false);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatchObject({ check: 'config', status: 'fail' });
    expect(r.lines[0]!.message).toMatch(/nonsense/);
    expect(r.lines[0]!.fix).toMatch(/permafrost init --mastodon DIR/);
  });

  it('a backup device is checked as a device (folder, check results, freshness), not as a backup', async () => {
    const ws = workspace(null, '');
    const r = await runDoctor({ configFlag: ws.configFile });
    expect(r.device).toBe(true);
    expect(r.configPath).toBe(ws.configFile);
    expect(r.lines[0]).toEqual({ check: 'config', status: 'ok', message: `${ws.configFile} is valid` });
    const names = checks(r.lines);
    expect(names).toEqual([
      'config',
      'passphrase',
      'device folder',
      'check results',
      'freshness',
      'retention',
      'leftovers',
      'schedule',
      'media',
      'syncthing',
    ]);
    // An empty device has no snapshot yet: freshness fails, and so does the report.
    expect(r.lines.find((l) => l.check === 'freshness')?.status).toBe('fail');
    expect(r.ok).toBe(false);
  });

  it('a source is checked as a backup: its database, pg_dump, Redis, secrets and vault', async () => {
    const ws = workspace(cluster.get(), 'doctorsrc');
    const r = await runDoctor({ configFlag: ws.configFile });
    expect(r.device).toBe(false);
    const names = checks(r.lines);
    expect(names).toEqual([
      'config',
      'passphrase',
      'database',
      'role passwords',
      'pg_dump',
      'redis',
      'secrets',
      'retention',
      'vault',
      'leftovers',
      'schedule',
      'media',
      'syncthing',
    ]);
    expect(r.lines.find((l) => l.check === 'database')?.status).toBe('ok');
    expect(r.lines.find((l) => l.check === 'leftovers')).toEqual({
      check: 'leftovers',
      status: 'ok',
      message: 'no temp folder or scratch database of a dead run',
    });
    // Warnings (no Redis, no secrets part, no retention) do not fail it.
    expect(r.lines.filter((l) => l.status === 'fail')).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('what a dead run left is removed and said as a WARN, with where to look for why it died', async () => {
    const ws = workspace(null, '');
    const dead = path.join(ws.dir, `permafrost-${spawnSync('true').pid}-0-Doc123`);
    mkdirSync(dead);
    const r = await runDoctor({ configFlag: ws.configFile });
    expect(r.lines.find((l) => l.check === 'leftovers')).toEqual({
      check: 'leftovers',
      status: 'warn',
      message: `removed temp folder ${dead} left by a run that died`,
      fix: 'a run was killed (SIGKILL, out of memory?): check the journal or dmesg for why; what it left is removed now',
    });
  });
});
