import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { DELTA_EXTRA_SQL, resealDeltaState } from '../../harness/delta.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { startCluster, type PgCluster } from '../../harness/postgres.js';
import { clusterPerFile } from '../../harness/suite.js';
import { mountTmpfs, type Tmpfs } from '../../harness/tmpfs.js';

// issue 20 items 2 (diverged history, keyless tables), 3 (large objects and the audit of what the
// delta base carries), 4 (a tamper-evident state), 8 (the free-space sentence of a chain restore).
const cluster = clusterPerFile();
let ws: Workspace | undefined;
let fs: Tmpfs | undefined;
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
  fs?.unmount();
  fs = undefined;
  ws?.cleanup();
  ws = undefined;
});

const NOPK_SQL = `CREATE TABLE nopk (a int, b text); INSERT INTO nopk VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four');`;

let dbCounter = 0;
function deltaWorkspace(pg: PgCluster = cluster.get()): { db: string; w: Workspace } {
  const db = `holes${++dbCounter}`;
  cluster.createDb(db);
  pg.psql(db, DELTA_EXTRA_SQL + NOPK_SQL);
  ws = makeWorkspace(pg, db);
  ws.writeConfig({ database: { delta: {} } });
  return { db, w: ws };
}

async function backup(w: Workspace): Promise<{ manifest: Manifest; stderr: string }> {
  const r = await runCli(['--config', w.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return { manifest: JSON.parse(r.stdout) as Manifest, stderr: r.stderr };
}

const table = (m: Manifest, name: string) => m.chain!.tables.find((t) => t.table === name)!;
const statePath = (w: Workspace): string => path.join(w.vault, '.permafrost-delta', 'state.json');
const stateLsn = (w: Workspace): string => (JSON.parse(readFileSync(statePath(w), 'utf8')) as { server: { lsn: string } }).server.lsn;

/** Moves the server's transaction counter and WAL position past what the state recorded, as a restored server's would be after a while. */
function catchUp(pg: PgCluster, db: string, lsn: string): void {
  // One psql session: each statement of its input is its own transaction, so each takes a transaction ID.
  pg.psql(db, 'SELECT txid_current();\n'.repeat(300));
  for (let i = 0; i < 10; i++) {
    const past = pg.psql(db, `SELECT pg_current_wal_lsn() > '${lsn}'::pg_lsn`).trim();
    if (past === 't') return;
    pg.psql(db, 'SELECT txid_current(); SELECT pg_switch_wal()');
  }
  throw new Error(`the WAL position did not pass ${lsn}`);
}

/** The snapshot restored with `permafrost restore` into `target` and verified; returns the restored database's fingerprint. */
async function restoreAndVerify(w: Workspace, pg: PgCluster, target: string): Promise<Record<string, string>> {
  const r = await runCli(['--config', w.configFile, 'restore', 'latest', '--database', target]);
  expect(r.code, r.stderr).toBe(0);
  const v = await runCli(['--config', w.configFile, 'verify']);
  expect(v.code, v.stderr).toBe(0);
  return fingerprint(pg, target);
}

describe('a diverged history never gives a delta (item 2)', () => {
  it('a data directory put back to a copy from before an UPDATE of a keyless table: a base with a warning, and the restore is the live database', async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    await backup(w);
    pg.stop('fast');
    const copy = `${pg.dataDir}.copy`;
    execFileSync('cp', ['-a', pg.dataDir, copy]);
    cleanups.push(() => rmSync(copy, { recursive: true, force: true }));
    pg.start();
    pg.psql(db, `UPDATE nopk SET b = b || ' (lost)'`);
    const lost = await backup(w);
    expect(lost.manifest.chain?.kind).toBe('delta');
    expect(table(lost.manifest, 'nopk').copied).toBe(4);

    pg.stop('immediate');
    execFileSync('rm', ['-rf', pg.dataDir]);
    execFileSync('mv', [copy, pg.dataDir]);
    pg.start();
    catchUp(pg, db, stateLsn(w));
    pg.psql(db, `UPDATE accounts SET note = 'after the rollback' WHERE username = 'alice'`);

    const r = await backup(w);
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(
      /made a base instead of a delta: the rows of "public"\."nopk" are not the ones its delta state records, though none is newer \(the server was rolled back/,
    );
    pg.psql(db, 'REFRESH MATERIALIZED VIEW account_summaries');
    const live = fingerprint(pg, db);
    expect(live['rows:public.nopk']).toMatch(/^4:/);
    expect(await restoreAndVerify(w, pg, `${db}_back`)).toEqual(live);
    // The next run is a delta on the new base again.
    pg.psql(db, `UPDATE nopk SET b = 'after' WHERE a = 1`);
    const d = await backup(w);
    expect(d.stderr).toBe('');
    expect(d.manifest.chain).toMatchObject({ kind: 'delta', reference: r.manifest.id });
  }, 180_000);

  it('a keyed table with more changed rows than it keeps witnesses, rolled back to a copy taken between them: a base with a warning', async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    pg.psql(db, `CREATE TABLE many (id int PRIMARY KEY, v text); INSERT INTO many SELECT g, 'base' FROM generate_series(1, 400) g`);
    await backup(w);
    // 250 rows change before the copy is taken, 150 (later keys, newer writes) after it.
    pg.psql(db, `UPDATE many SET v = 'kept' WHERE id <= 250`);
    pg.stop('fast');
    const copy = `${pg.dataDir}.copy`;
    execFileSync('cp', ['-a', pg.dataDir, copy]);
    cleanups.push(() => rmSync(copy, { recursive: true, force: true }));
    pg.start();
    pg.psql(db, `UPDATE many SET v = 'lost' WHERE id > 250`);
    const lost = await backup(w);
    expect(lost.manifest.chain?.kind).toBe('delta');
    expect(table(lost.manifest, 'many')).toMatchObject({ copied: 400 });

    pg.stop('immediate');
    execFileSync('rm', ['-rf', pg.dataDir]);
    execFileSync('mv', [copy, pg.dataDir]);
    pg.start();
    catchUp(pg, db, stateLsn(w));
    pg.psql(db, `UPDATE accounts SET note = 'after the rollback' WHERE username = 'alice'`);
    const r = await backup(w);
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(
      /made a base instead of a delta: rows of "public"\."many" are back at versions older than its delta state records/,
    );
    expect(pg.psql(db, `SELECT count(*) FROM many WHERE v = 'base'`).trim()).toBe('150');
  }, 180_000);

  it('a replica copied before an UPDATE, then promoted (a new timeline): a base with a warning naming the timeline', async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    await backup(w);
    // The replica: a pg_basebackup of the server now, started on its own socket once the primary has moved on.
    const root = mkdtempSync(path.join(tmpdir(), 'permafrost-replica-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    chmodSync(root, 0o755);
    const data = path.join(root, 'data');
    mkdirSync(data, { mode: 0o700 });
    const asPostgres = (argv: string[]): string[] => (process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...argv] : argv);
    if (process.getuid?.() === 0) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(data, uid, uid === 0 ? 0 : Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()));
    }
    const bb = asPostgres([
      path.join(pg.binDir, 'pg_basebackup'),
      '-D',
      data,
      '-h',
      pg.socketDir,
      '-p',
      String(pg.port),
      '-U',
      pg.user,
      '-X',
      'stream',
      '-c',
      'fast',
    ]);
    const done = spawnSync(bb[0]!, bb.slice(1), { encoding: 'utf8' });
    expect(done.status, done.stderr).toBe(0);
    writeFileSync(path.join(data, 'standby.signal'), '');

    // Only a keyless table changes: no witness row could show the replica's history left the primary's.
    pg.psql(db, `UPDATE nopk SET b = b || ' (only on the old primary)'`);
    const onPrimary = await backup(w);
    expect(onPrimary.manifest.chain?.kind).toBe('delta');
    const lsn = stateLsn(w);
    pg.stop('fast');
    cleanups.push(() => pg.start());

    const replica = startCluster(5433, { root });
    cleanups.push(() => replica.stop('immediate'));
    const promote = asPostgres([path.join(pg.binDir, 'pg_ctl'), '-D', data, '-w', 'promote']);
    const p = spawnSync(promote[0]!, promote.slice(1), { encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    expect(replica.psql(db, 'SELECT pg_is_in_recovery()').trim()).toBe('f');
    catchUp(replica, db, lsn);
    replica.psql(db, `UPDATE accounts SET note = 'on the promoted replica' WHERE username = 'alice'`);
    w.writeConfig({ database: { delta: {}, host: replica.socketDir, port: replica.port } });

    const r = await backup(w);
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(/made a base instead of a delta: the server is on timeline 2, snapshot \S+ was taken on timeline 1/);
    // Restored onto the replica itself (the only server left): equal to its database.
    replica.psql(db, 'REFRESH MATERIALIZED VIEW account_summaries');
    expect(await restoreAndVerify(w, replica, `${db}_back`)).toEqual(fingerprint(replica, db));
  }, 180_000);
});

describe('what the delta base carries (item 3)', () => {
  it('a database with a large object is refused in delta mode (exit 2, one sentence, no snapshot); full mode keeps it', async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    const oid = pg.psql(db, `SELECT lo_from_bytea(0, 'large object bytes')`).trim();
    const r = await runCli(['--config', w.configFile, 'backup']);
    expect(r.code, r.stderr).toBe(2);
    expect(errorSentence(r.stderr)).toBe(
      `Database "${db}" holds 1 large object (pg_largeobject), which delta mode does not capture; remove database.delta from the config to back it up in full mode, which keeps them.`,
    );
    expect(readdirSync(w.vault).filter((n) => /^\d/.test(n))).toEqual([]);

    // A base made before the first large object: the next run refuses too, never a delta without it.
    pg.psql(db, `SELECT lo_unlink(${oid})`);
    await backup(w);
    pg.psql(db, `SELECT lo_from_bytea(0, 'later')`);
    expect((await runCli(['--config', w.configFile, 'backup'])).code).toBe(2);

    w.writeConfig();
    const full = await backup(w);
    expect(full.manifest.chain).toBeUndefined();
    const back = await runCli(['--config', w.configFile, 'restore', 'latest', '--database', `${db}_full`]);
    expect(back.code, back.stderr).toBe(0);
    expect(pg.psql(`${db}_full`, `SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata`).trim()).toBe('later');
  });

  it('an extension configuration table (pg_extension_config_dump) is refused in delta mode (exit 2, one sentence)', async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    // What an extension script's pg_extension_config_dump() records, made by hand on a stock extension.
    pg.psql(
      db,
      `CREATE EXTENSION citext; CREATE TABLE ext_cfg (k int, v text); INSERT INTO ext_cfg VALUES (1, 'user setting');
       ALTER EXTENSION citext ADD TABLE ext_cfg;
       UPDATE pg_extension SET extconfig = ARRAY['ext_cfg'::regclass::oid], extcondition = ARRAY[''] WHERE extname = 'citext';`,
    );
    const r = await runCli(['--config', w.configFile, 'backup']);
    expect(r.code, r.stderr).toBe(2);
    expect(errorSentence(r.stderr)).toBe(
      `Database "${db}" has extension configuration tables (public.ext_cfg of extension citext), whose rows delta mode does not capture; remove database.delta from the config to back it up in full mode, which keeps them.`,
    );
  });

  it('comments, publications, subscriptions, event triggers, ownership, identity, generated and unlogged columns, sequences and matview data round-trip through a base and a delta', async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    pg.psql(
      db,
      `CREATE ROLE holes_owner; CREATE SCHEMA audit AUTHORIZATION holes_owner;
       CREATE TABLE audit.ids (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n int, twice int GENERATED ALWAYS AS (n * 2) STORED);
       ALTER TABLE audit.ids OWNER TO holes_owner;
       INSERT INTO audit.ids (n) VALUES (1), (2), (3);
       CREATE UNLOGGED TABLE audit.scratch (id int PRIMARY KEY, v text); INSERT INTO audit.scratch VALUES (1, 'unlogged');
       CREATE SEQUENCE audit.free_seq; SELECT setval('audit.free_seq', 41);
       COMMENT ON TABLE audit.ids IS 'identity and generated'; COMMENT ON COLUMN audit.ids.n IS 'a number';
       COMMENT ON SCHEMA audit IS 'audit schema';
       CREATE MATERIALIZED VIEW audit.doubled AS SELECT id, twice FROM audit.ids;
       CREATE PUBLICATION holes_pub FOR TABLE audit.ids;
       CREATE SUBSCRIPTION holes_sub_${db} CONNECTION 'dbname=none' PUBLICATION holes_pub WITH (connect = false);
       CREATE FUNCTION audit.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
       CREATE EVENT TRIGGER holes_evt_${db} ON ddl_command_end EXECUTE FUNCTION audit.on_ddl();
       ALTER EVENT TRIGGER holes_evt_${db} DISABLE;`,
    );
    cleanups.push(() => {
      for (const d of [db, `${db}_audit`]) {
        spawnSync(path.join(pg.binDir, 'psql'), ['-X', '-q', '-h', pg.socketDir, '-p', String(pg.port), '-U', pg.user, '-d', d], {
          input: `ALTER SUBSCRIPTION holes_sub_${db} SET (slot_name = NONE); DROP SUBSCRIPTION IF EXISTS holes_sub_${db}; DROP EVENT TRIGGER IF EXISTS holes_evt_${db};`,
        });
      }
    });
    await backup(w);
    pg.psql(
      db,
      `INSERT INTO audit.ids (n) VALUES (10); UPDATE audit.ids SET n = 20 WHERE id = 1; INSERT INTO audit.scratch VALUES (2, 'more');
       SELECT nextval('audit.free_seq'); REFRESH MATERIALIZED VIEW audit.doubled; COMMENT ON TABLE audit.scratch IS 'changed comment';`,
    );
    // A comment is schema: the change makes a base; one more change on top of it is a delta.
    const second = await backup(w);
    expect(second.manifest.chain?.kind).toBe('base');
    pg.psql(
      db,
      `INSERT INTO audit.ids (n) VALUES (30); REFRESH MATERIALIZED VIEW audit.doubled; REFRESH MATERIALIZED VIEW account_summaries`,
    );
    const last = await backup(w);
    expect(last.manifest.chain?.kind).toBe('delta');

    const target = `${db}_audit`;
    const restored = await restoreAndVerify(w, pg, target);
    expect(restored).toEqual(fingerprint(pg, db));
    const schemaOf = (d: string): string => {
      const r = spawnSync(path.join(pg.binDir, 'pg_dump'), ['--schema-only', '-h', pg.socketDir, '-p', String(pg.port), '-U', pg.user, d], {
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.replace(/^\\(un)?restrict .*$/gm, '');
    };
    const source = schemaOf(db);
    for (const expected of [
      'identity and generated',
      'holes_pub',
      `holes_sub_${db}`,
      `holes_evt_${db}`,
      'GENERATED ALWAYS AS ((n * 2)) STORED',
      'UNLOGGED',
    ]) {
      expect(source).toContain(expected);
    }
    expect(schemaOf(target)).toEqual(source);
    expect(pg.psql(target, `SELECT nextval('audit.ids_id_seq'), nextval('audit.free_seq')`).trim()).toBe(
      pg.psql(db, `SELECT nextval('audit.ids_id_seq'), nextval('audit.free_seq')`).trim(),
    );
  });
});

describe('the delta state is tamper-evident (item 4)', () => {
  it("state.json's xmin moved forward after an UPDATE of a keyless table: a base with a warning, never a delta that misses it", async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    await backup(w);
    pg.psql(db, `UPDATE nopk SET b = 'changed' WHERE a = 2`);
    const st = JSON.parse(readFileSync(statePath(w), 'utf8')) as { xmin: string };
    st.xmin = (BigInt(pg.psql(db, 'SELECT txid_current()').trim()) + 1n).toString();
    writeFileSync(statePath(w), JSON.stringify(st));

    const r = await backup(w);
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(
      /made a base instead of a delta: its delta state .*state\.json does not match its authentication code state\.mac \(edited by hand/,
    );
    expect(await restoreAndVerify(w, pg, `${db}_t`)).toEqual(fingerprint(pg, db));

    // The code removed, or a keys file replaced together with its digest: a base as well.
    rmSync(path.join(w.vault, '.permafrost-delta', 'state.mac'));
    const again = await backup(w);
    expect(again.manifest.chain?.kind).toBe('base');
    expect(again.stderr).toMatch(/its delta state .*state\.mac is missing/);
    // The same edit resealed with the state's own key (someone holding it): the keyless table's full hash still finds it.
    pg.psql(db, `UPDATE nopk SET b = 'changed again' WHERE a = 3`);
    const st2 = JSON.parse(readFileSync(statePath(w), 'utf8')) as { xmin: string };
    st2.xmin = (BigInt(pg.psql(db, 'SELECT txid_current()').trim()) + 1n).toString();
    writeFileSync(statePath(w), JSON.stringify(st2));
    resealDeltaState(w.vault);
    const resealed = await backup(w);
    expect(resealed.manifest.chain?.kind).toBe('base');
    expect(resealed.stderr).toMatch(/the rows of "public"\."nopk" are not the ones its delta state records, though none is newer/);
    // And then deltas again, restoring to the live database.
    pg.psql(db, `UPDATE nopk SET b = 'last' WHERE a = 4`);
    const ok = await backup(w);
    expect(ok.stderr).toBe('');
    expect(ok.manifest.chain?.kind).toBe('delta');
    expect(existsSync(statePath(w))).toBe(true);
    expect(await restoreAndVerify(w, pg, `${db}_t2`)).toEqual(fingerprint(pg, db));
  }, 180_000);
});

describe('the free-space sentence of a chain restore (item 8)', () => {
  it('names the snapshot being restored (the newest), not the base whose schema part is decrypted', async () => {
    const { db, w } = deltaWorkspace();
    const pg = cluster.get();
    const base = await backup(w);
    pg.psql(db, `UPDATE nopk SET b = 'x' WHERE a = 3`);
    const delta = await backup(w);
    expect(delta.manifest.chain?.kind).toBe('delta');
    const schema = base.manifest.files.find((f) => f.part === 'schema')!;
    fs = mountTmpfs(Math.max(4096, Math.floor(schema.plainBytes / 4)));
    const s = statfsSync(fs.dir);
    expect(s.bavail * s.bsize).toBeLessThan(schema.plainBytes);
    w.writeConfig({ database: { delta: {} }, vault: { tempDir: fs.dir } });
    for (const args of [['restore', 'latest', '--database', `${db}_space`], ['verify']]) {
      const r = await runCli(['--config', w.configFile, ...args]);
      expect(r.code, r.stderr).toBe(1);
      expect(errorSentence(r.stderr)).toMatch(
        new RegExp(
          `^Not enough space in vault\\.tempDir \\(${fs.dir}\\) to decrypt snapshot ${delta.manifest.id}: schema\\.pgdump\\.gpg of its base ${base.manifest.id} needs `,
        ),
      );
    }
  });
});
