import { existsSync, mkdirSync, openSync, readSync, closeSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorSentence, makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import type { PgCluster } from '../../harness/postgres.js';
import { holdTableLock } from '../../harness/table-lock.js';
import { waitFor } from '../../harness/wait.js';

const cluster = clusterPerFile('source', 'bigsource');
let ws: Workspace;

beforeAll(() => {
  // ~60 MB of incompressible-ish text in bigsource, so a dump runs long enough to be watched while it runs.
  cluster.get().psql(
    'bigsource',
    `CREATE TABLE blobs AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || md5(random()::text) AS body
         FROM generate_series(1, 450000) g`,
  );
});
afterEach(() => ws?.cleanup());

const partials = (): string[] => readdirSync(ws.vault).filter((n) => n.startsWith('.partial-'));
const snapshots = (): string[] => readdirSync(ws.vault).filter((n) => /^\d{4}-/.test(n));

/** Whether pg_dump is connected to `db` and waits for a lock (the partial folder appears before the dump starts). */
function pgDumpWaits(pg: PgCluster, db: string): boolean {
  return (
    pg
      .psql(
        db,
        `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock' AND datname = '${db}'`,
      )
      .trim() === '1'
  );
}

/**
 * Starts `permafrost backup` on the source database and returns once it is mid-dump: its partial
 * folder exists and pg_dump waits on the locked follows table until `lock.release()`.
 */
async function backupHeldMidDump(pg: PgCluster, what: string) {
  ws = makeWorkspace(pg, 'source');
  const lock = await holdTableLock(pg, 'source', 'follows');
  const run = startCli(['--config', ws.configFile, 'backup']);
  try {
    await waitFor(what, () => partials().length === 1 && pgDumpWaits(pg, 'source'), 15_000);
  } catch (err) {
    await lock.release();
    throw err;
  }
  return { lock, run };
}

/** Every regular file below `dir`, recursively. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function startsWithPgdmp(file: string): boolean {
  try {
    const fd = openSync(file, 'r');
    const buf = Buffer.alloc(5);
    const n = readSync(fd, buf, 0, 5, 0);
    closeSync(fd);
    return n === 5 && buf.toString('latin1') === 'PGDMP';
  } catch {
    return false; // the file vanished between listing and reading
  }
}

describe('backup failure paths leave nothing behind', () => {
  it('a database that does not exist: exit 1, a sentence that says why, no folder or temp file', async () => {
    ws = makeWorkspace(cluster.get(), 'no_such_db');
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(1);
    expect(errorSentence(r.stderr)).toMatch(/database "no_such_db" does not exist/);
    expect(readdirSync(ws.vault)).toEqual([]);
  });

  it('PostgreSQL down: the sentence that says so is printed once, not once per step that tried to connect', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    // A folder where no server listens: connect() fails with ENOENT for every step that tries.
    const nowhere = path.join(ws.dir, 'nosocket');
    mkdirSync(nowhere);
    ws.writeConfig({ database: { host: nowhere } });
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(1);
    expect(errorSentence(r.stderr)).toMatch(/^Cannot connect to PostgreSQL database "source" on .*nosocket/);
    expect(r.stderr.match(/Cannot connect to PostgreSQL/g)).toHaveLength(1);
  });

  it('a missing pg_dump binary is named', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    ws.writeConfig({ database: { binDir: path.join(ws.dir, 'nobin') } });
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(1);
    expect(errorSentence(r.stderr)).toContain('pg_dump');
    expect(readdirSync(ws.vault)).toEqual([]);
  });

  it('pg_dump that writes part of an archive and then fails: its reason is shown, nothing is kept', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const bin = path.join(ws.dir, 'fakebin');
    mkdirSync(bin);
    // A failure real pg_dump cannot be made to show on demand: output already written, then exit 1.
    writeFileSync(
      path.join(bin, 'pg_dump'),
      `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.0"; exit 0; fi\n` +
        `printf 'PGDMP\\001\\016partial'\necho "pg_dump: error: could not write to output file: No space left on device" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    ws.writeConfig({ database: { binDir: bin } });
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(1);
    expect(errorSentence(r.stderr)).toBe(
      `${bin}/pg_dump failed while capturing database "source": could not write to output file: No space left on device`,
    );
    expect(readdirSync(ws.vault).filter((n) => n !== '.permafrost.lock')).toEqual([]);
  });

  it('no plaintext on disk: while the dump runs, no file under the vault or temp dirs starts with PGDMP', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'bigsource');
    const tmp = path.join(ws.dir, 'tmp');
    mkdirSync(tmp);
    const run = startCli(['--config', ws.configFile, 'backup'], { env: { TMPDIR: tmp } });
    let exited = false;
    void run.result.then(() => (exited = true));
    let sawGrowingSnapshot = 0;
    const plaintext: string[] = [];
    while (!exited) {
      for (const f of [...filesUnder(ws.dir), ...filesUnder(tmp)]) {
        if (startsWithPgdmp(f)) plaintext.push(f);
        if (f.includes('.partial-') && f.endsWith('database.pgdump.gpg') && statSync(f, { throwIfNoEntry: false })?.size) {
          sawGrowingSnapshot++;
        }
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    const r = await run.result;
    expect(r.code, r.stderr).toBe(0);
    expect(plaintext).toEqual([]);
    // The watch really happened during the dump, not only after it.
    expect(sawGrowingSnapshot).toBeGreaterThan(3);
    expect(filesUnder(ws.dir).filter(startsWithPgdmp)).toEqual([]);
  });

  it('SIGKILL mid-dump: list shows no new snapshot; the next backup succeeds and removes the leftover', async () => {
    const { lock, run } = await backupHeldMidDump(cluster.get(), 'the backup to start its dump');
    try {
      run.child.kill('SIGKILL');
      await run.result;
    } finally {
      await lock.release();
    }
    expect(partials()).toHaveLength(1);
    const list = await runCli(['--config', ws.configFile, 'list', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([]);
    const next = await runCli(['--config', ws.configFile, 'backup']);
    expect(next.code, next.stderr).toBe(0);
    expect(partials()).toEqual([]);
    expect(snapshots()).toHaveLength(1);
  });

  it('concurrent backup: the second refuses at once, the first completes', async () => {
    const { lock, run: first } = await backupHeldMidDump(cluster.get(), 'the first backup to start');
    let second;
    try {
      second = await runCli(['--config', ws.configFile, 'backup']);
    } finally {
      await lock.release();
    }
    expect(second.code).toBe(4);
    expect(errorSentence(second.stderr)).toMatch(/^Another permafrost run \(pid \d+\) holds the lock/);
    const r = await first.result;
    expect(r.code, r.stderr).toBe(0);
    expect(snapshots()).toHaveLength(1);
    expect(partials()).toEqual([]);
  });

  it('server stopped mid-dump: non-zero exit, a sentence that says why, nothing left in the vault', async () => {
    const pg = cluster.get();
    const { lock, run } = await backupHeldMidDump(pg, 'the backup to start its dump');
    try {
      pg.stop('fast');
    } finally {
      await lock.release();
    }
    const r = await run.result;
    pg.start();
    expect(r.code).toBe(1);
    // The capture session's connection ends with the server: its sentence names the server and the fix.
    expect(errorSentence(r.stderr)).toMatch(
      /PostgreSQL at .* ended the capture session of database "source": .*check the server is running/,
    );
    expect(readdirSync(ws.vault).filter((n) => n !== '.permafrost.lock')).toEqual([]);
    expect(existsSync(path.join(ws.vault, '.permafrost.lock'))).toBe(false);
  });
});

describe('config validation', () => {
  it('a malformed config: exit 2, every problem listed with its key path', async () => {
    ws = makeWorkspace(null, 'x');
    writeFileSync(
      ws.configFile,
      [
        'database:',
        '  name: 42',
        '  port: "five"',
        '  colour: blue',
        'vault:',
        `  dir: ${ws.vault}`,
        '  passphraseFile: /nonexistent/passphrase',
        'extra: true',
      ].join('\n'),
    );
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('database.name:');
    expect(r.stderr).toContain('database.port:');
    expect(r.stderr).toContain('database.colour: unknown key');
    expect(r.stderr).toContain('extra: unknown key');
  });

  it('a missing passphrase file is named by its key path', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ vault: { passphraseFile: path.join(ws.dir, 'missing') } });
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`vault.passphraseFile: file ${path.join(ws.dir, 'missing')} does not exist`);
  });

  it('no config anywhere: a sentence saying how to give one', async () => {
    const r = await runCli(['list'], { cwd: '/', env: { PERMAFROST_CONFIG: '' } });
    expect(r.code).toBe(2);
    expect(errorSentence(r.stderr)).toMatch(/No config file found: pass --config FILE/);
  });
});
