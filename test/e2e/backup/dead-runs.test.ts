import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../../src/ops/doctor.js';
import { errorSentence, makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { descendants, processGone } from '../../harness/procs.js';
import { clusterPerFile } from '../../harness/suite.js';
import { waitFor } from '../../harness/wait.js';

// ~60 MB in bigsource, so a restore of it runs long enough to be caught while pg_restore writes.
const cluster = clusterPerFile('bigsource');
let ws: Workspace;

beforeAll(() => {
  cluster.get().psql(
    'bigsource',
    `CREATE TABLE blobs AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5(random()::text) AS body
         FROM generate_series(1, 450000) g`,
  );
});
afterEach(() => ws?.cleanup());

const tempFolders = (): string[] => readdirSync(ws.dir).filter((n) => /^permafrost-\d+-/.test(n));
const databaseExists = (name: string): boolean =>
  cluster.get().psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${name}'`).trim() === '1';

async function backup(): Promise<void> {
  const r = await runCli(['--config', ws.configFile, 'backup']);
  expect(r.code, r.stderr).toBe(0);
}

/** Whether `pid` runs pg_restore loading a database (not `pg_restore --list`, which verify runs first). */
const loading = (pid: number): boolean => {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => a.endsWith('pg_restore')) && !argv.includes('--list');
  } catch {
    return false;
  }
};

/** Starts the CLI and waits until its pg_restore loads the database; returns the run and its programs at that moment. */
async function caughtInPgRestore(args: string[]) {
  const run = startCli(['--config', ws.configFile, ...args]);
  const pid = run.child.pid!;
  const programs = await waitFor(
    'pg_restore to load the database',
    () => {
      const d = descendants(pid);
      return d.some((p) => p.comm === 'pg_restore' && loading(p.pid)) && d;
    },
    60_000,
    20,
  );
  return { run, pid, programs };
}

describe('nothing is left behind by a dead or stopped run', () => {
  it('kill -9 of verify mid-restore: its programs die within seconds; the next run sweeps its temp folder and scratch database', async () => {
    ws = makeWorkspace(cluster.get(), 'bigsource');
    await backup();
    const { run, pid, programs } = await caughtInPgRestore(['verify']);
    run.child.kill('SIGKILL');
    expect((await run.result).code).toBe(null);
    for (const p of programs) await waitFor(`${p.comm} (pid ${p.pid}) to die`, () => processGone(p.pid), 5000);
    // What the dead run left: the decrypted archive in its temp folder, and a full copy in the scratch database.
    const scratch = `permafrost_verify_${pid}`;
    // pg_restore died with verify: nothing is connected to the scratch database any more (an orphan
    // would go on loading it through its own session). Its row count is no witness: a fast load may
    // have finished its COPY in the moment between being seen and being killed.
    await waitFor('the scratch database to have no session', () => sessionsOn(scratch) === 0, 5000);
    const rows = rowsIn(scratch, 'blobs');
    await new Promise((r) => setTimeout(r, 1000));
    expect(rowsIn(scratch, 'blobs')).toBe(rows);
    expect(tempFolders().filter((n) => n.startsWith(`permafrost-${pid}-`))).toHaveLength(1);
    expect(databaseExists(scratch)).toBe(true);
    // A temp folder of a live run (this test process) is never swept.
    const live = mkdtempSync(path.join(ws.dir, `permafrost-${process.pid}-${readStart(process.pid)}-`));

    const r = await runCli(['--config', ws.configFile, 'doctor', '--json']);
    const report = JSON.parse(r.stdout) as DoctorReport;
    const line = report.lines.find((l) => l.check === 'leftovers');
    expect(line?.status).toBe('warn');
    expect(line?.message).toContain(`dropped scratch database "${scratch}" left by a verify that died`);
    expect(line?.message).toMatch(new RegExp(`removed temp folder \\S+/permafrost-${pid}-\\S+ left by a run that died`));
    expect(tempFolders()).toEqual([path.basename(live)]);
    expect(databaseExists(scratch)).toBe(false);

    const again = await runCli(['--config', ws.configFile, 'doctor', '--json']);
    expect((JSON.parse(again.stdout) as DoctorReport).lines.find((l) => l.check === 'leftovers')?.status).toBe('ok');
  }, 180_000);

  it('kill -9 of verify: the next verify sweeps what it left and says so', async () => {
    ws = makeWorkspace(cluster.get(), 'bigsource');
    await backup();
    const { run, pid } = await caughtInPgRestore(['verify']);
    run.child.kill('SIGKILL');
    await run.result;
    const r = await runCli(['--config', ws.configFile, 'verify']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: dropped scratch database "permafrost_verify_${pid}" left by a verify that died`);
    expect(r.stderr).toMatch(new RegExp(`warning: removed temp folder \\S+/permafrost-${pid}-`));
    expect(tempFolders()).toEqual([]);
    expect(databaseExists(`permafrost_verify_${pid}`)).toBe(false);
  }, 180_000);

  it('kill -9 of restore while gpg decrypts: its gpg home is inside its temp folder and swept with it; gpg homes older versions left are swept unless in use or recent', async () => {
    ws = makeWorkspace(cluster.get(), 'bigsource');
    await backup();
    // $TMPDIR in the workspace: where a throwaway gpg home went, and what the sweep looks at.
    const env = { TMPDIR: ws.dir };
    const gnupgHomes = (): string[] =>
      readdirSync(ws.dir)
        .filter((n) => n.startsWith('permafrost-gnupg-'))
        .sort();
    const run = startCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'restored_gpg_killed'], { env });
    const pid = run.child.pid!;
    const gpg = await waitFor('gpg to decrypt', () => descendants(pid).find((p) => p.comm === 'gpg'), 60_000, 10);
    run.child.kill('SIGKILL');
    expect((await run.result).code).toBe(null);
    await waitFor(`gpg (pid ${gpg.pid}) to die`, () => processGone(gpg.pid), 5000);
    expect(gnupgHomes()).toEqual([]);
    expect(tempFolders().filter((n) => n.startsWith(`permafrost-${pid}-`))).toHaveLength(1);

    // What an older permafrost left: a dead run's home, one a live gpg still uses, one just made.
    const legacy = (name: string, ageMs: number): string => {
      const dir = path.join(ws.dir, name);
      mkdirSync(dir, { mode: 0o700 });
      const at = new Date(Date.now() - ageMs);
      utimesSync(dir, at, at);
      return dir;
    };
    const dead = legacy('permafrost-gnupg-Dead01', 3_600_000);
    const inUse = legacy('permafrost-gnupg-InUse1', 3_600_000);
    legacy('permafrost-gnupg-Fresh1', 0);
    const user = spawn('sh', ['-c', 'sleep 60; :', 'sh', '--homedir', inUse], { stdio: 'ignore' });
    try {
      await waitFor('the gpg home user to start', () => readFileSync(`/proc/${user.pid}/cmdline`, 'utf8').includes(inUse), 5000);
      const r = await runCli(['--config', ws.configFile, 'doctor', '--json'], { env });
      const line = (JSON.parse(r.stdout) as DoctorReport).lines.find((l) => l.check === 'leftovers');
      expect(line?.status).toBe('warn');
      expect(line?.message).toMatch(new RegExp(`removed temp folder \\S+/permafrost-${pid}-\\S+ left by a run that died`));
      expect(line?.message).toContain(`removed gpg home ${dead} left by a run that died`);
      expect(tempFolders().filter((n) => n.startsWith(`permafrost-${pid}-`))).toEqual([]);
      expect(gnupgHomes()).toEqual(['permafrost-gnupg-Fresh1', 'permafrost-gnupg-InUse1']);
    } finally {
      user.kill('SIGKILL');
    }
  }, 180_000);

  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s to restore mid pg_restore: exit 1 saying the target was not touched, no plaintext, no orphan, no _incoming left',
    async (sig) => {
      ws = makeWorkspace(cluster.get(), 'bigsource');
      await backup();
      const target = `restored_${sig.toLowerCase()}`;
      const { run, programs } = await caughtInPgRestore(['restore', 'latest', '--database', target]);
      run.child.kill(sig);
      const r = await run.result;
      expect(r.code, r.stderr).toBe(1);
      expect(errorSentence(r.stderr)).toMatch(
        new RegExp(
          '^Restore of snapshot \\S+ was stopped before it finished; the target database was not touched and no file was half written\\.$',
        ),
      );
      for (const p of programs) expect(processGone(p.pid), `${p.comm} (pid ${p.pid}) still runs`).toBe(true);
      expect(tempFolders()).toEqual([]);
      expect(databaseExists(target)).toBe(false);
      expect(databaseExists(`${target}_incoming`)).toBe(false);
      expect(existsSync(ws.dir)).toBe(true);
    },
    180_000,
  );
});

/** Sessions connected to database `db`. */
function sessionsOn(db: string): number {
  return Number(cluster.get().psql('postgres', `SELECT count(*) FROM pg_stat_activity WHERE datname = '${db}'`).trim());
}

/** Rows of `table` in `db`, 0 when the table is not there (yet). */
function rowsIn(db: string, table: string): number {
  try {
    return Number(cluster.get().psql(db, `SELECT count(*) FROM ${table}`).trim());
  } catch {
    return 0;
  }
}

function readStart(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}
