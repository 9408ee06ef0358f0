import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { readJobSecrets } from '../../../src/ops/secrets.js';
import { SCRATCH_COMMENT } from '../../../src/recover/verify.js';
import { sweepAndReport, sweepLeftovers } from '../../../src/recover/sweep.js';
import { selfIdentity } from '../../../src/vault/lock.js';
import { makeWorkspace, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('sweepsrc');
let ws: Workspace;
let config: Config;
beforeAll(() => {
  ws = makeWorkspace(cluster.get(), 'sweepsrc');
  config = loadConfig(ws.configFile);
});
afterAll(() => ws?.cleanup());

/** The pid of a process that has exited. */
const deadPid = (): number => spawnSync('true').pid;
const me = selfIdentity();
const databases = (): string[] =>
  cluster
    .get()
    .psql('postgres', 'SELECT datname FROM pg_database ORDER BY 1')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

describe('sweepLeftovers (what dead runs left: plaintext temp folders, legacy gpg homes, scratch databases)', () => {
  it('removes only what names a dead creator; a live run\u2019s leftovers, foreign names and recent gpg homes stay', async () => {
    const tmp = ws.dir;
    const dead = path.join(tmp, `permafrost-${deadPid()}-0-AbC123`);
    const deadWithStart = path.join(tmp, `permafrost-${deadPid()}-4242-AbC124`);
    // Our own pid but another start time: a pid reused by a new process; the folder's creator is dead.
    const reused = path.join(tmp, `permafrost-${me.pid}-1-AbC125`);
    const live = path.join(tmp, `permafrost-${me.pid}-${me.start ?? '0'}-AbC126`);
    const foreign = path.join(tmp, 'permafrost-notours');
    const oldHome = path.join(tmp, 'permafrost-gnupg-Old123');
    const newHome = path.join(tmp, 'permafrost-gnupg-New123');
    const usedHome = path.join(tmp, 'permafrost-gnupg-Use123');
    for (const d of [dead, deadWithStart, reused, live, foreign, oldHome, newHome, usedHome]) mkdirSync(d);
    const old = new Date(Date.now() - 11 * 60_000);
    utimesSync(oldHome, old, old);
    utimesSync(usedHome, old, old);
    // A gpg (here: any process) that names the home in its command line still uses it.
    const user = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', usedHome], { stdio: 'ignore' });
    try {
      const pg = cluster.get();
      const mark = (pid: number, host = hostname()) => `${SCRATCH_COMMENT}; host ${host}; pid ${pid}; boot -; start -`;
      for (const [db, comment] of [
        ['pf_scratch_dead', mark(deadPid())],
        ['pf_scratch_live', mark(me.pid)],
        ['pf_scratch_elsewhere', mark(deadPid(), 'another-host')],
        ['pf_unmarked', null],
      ] as const) {
        pg.psql('postgres', `CREATE DATABASE ${db}`);
        if (comment) pg.psql('postgres', `COMMENT ON DATABASE ${db} IS '${comment}'`);
      }

      const r = await sweepLeftovers(config, readJobSecrets(config));
      expect(r.problems).toEqual([]);
      expect(r.swept.sort()).toEqual(
        [
          `removed temp folder ${dead} left by a run that died`,
          `removed temp folder ${deadWithStart} left by a run that died`,
          `removed temp folder ${reused} left by a run that died`,
          `removed gpg home ${oldHome} left by a run that died`,
          'dropped scratch database "pf_scratch_dead" left by a verify that died',
        ].sort(),
      );
      for (const d of [dead, deadWithStart, reused, oldHome]) expect(existsSync(d), d).toBe(false);
      for (const d of [live, foreign, newHome, usedHome]) expect(existsSync(d), d).toBe(true);
      expect(databases()).toEqual(expect.arrayContaining(['pf_scratch_live', 'pf_scratch_elsewhere', 'pf_unmarked', 'sweepsrc']));
      expect(databases()).not.toContain('pf_scratch_dead');
    } finally {
      user.kill('SIGKILL');
      rmSync(usedHome, { recursive: true, force: true });
    }
  });

  it('a verify server that cannot be reached is not the sweep\u2019s problem (the run says it once); a device without one is not asked', async () => {
    const down = { ...config, database: { ...(config as Extract<Config, { role: 'source' }>).database, port: 1 } } as Config;
    expect(await sweepLeftovers(down, readJobSecrets(down))).toEqual({ swept: [], problems: [] });
    const deviceWs = makeWorkspace(null, '');
    try {
      const device = loadConfig(deviceWs.configFile);
      expect(device.role).toBe('receiver');
      expect(await sweepLeftovers(device, readJobSecrets(device))).toEqual({ swept: [], problems: [] });
    } finally {
      deviceWs.cleanup();
    }
  });

  it('sweepAndReport: each thing removed is one warning line of event "sweep"', async () => {
    const leftover = path.join(ws.dir, `permafrost-${deadPid()}-0-Rep123`);
    mkdirSync(leftover);
    const lines: [string, string, Record<string, unknown>][] = [];
    await sweepAndReport(config, (level, msg, fields) => lines.push([level, msg, fields]), readJobSecrets(config));
    expect(lines).toEqual([['warn', `removed temp folder ${leftover} left by a run that died`, { event: 'sweep' }]]);
    expect(readdirSync(ws.dir)).not.toContain(path.basename(leftover));
  });
});
