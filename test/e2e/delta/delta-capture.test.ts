import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rowHashOf } from '../../../src/capture/delta-sql.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { DELTA_EXTRA_CHURN, DELTA_EXTRA_SQL, resealDeltaState, stockChainRestore, tableHashes } from '../../harness/delta.js';
import { errorSentence, makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { waitFor } from '../../harness/wait.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { clusterPerFile } from '../../harness/suite.js';
import { holdTableLock, holdTransaction } from '../../harness/table-lock.js';

const cluster = clusterPerFile();
let ws: Workspace;
afterEach(() => ws?.cleanup());

let dbCounter = 0;
/** A fresh fixture database with the delta extras, and a workspace in delta mode on it. */
function deltaWorkspace(delta: Record<string, unknown> = {}): { db: string } {
  const db = `src${++dbCounter}`;
  cluster.createDb(db);
  cluster.get().psql(db, DELTA_EXTRA_SQL);
  ws = makeWorkspace(cluster.get(), db);
  ws.writeConfig({ database: { delta } });
  return { db };
}

async function backup(): Promise<{ manifest: Manifest; stderr: string }> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return { manifest: JSON.parse(r.stdout) as Manifest, stderr: r.stderr };
}

function table(m: Manifest, name: string) {
  return m.chain!.tables.find((t) => t.table === name)!;
}

describe('delta snapshots: capture', () => {
  it('a base, then deltas that hold only what changed; every snapshot restores with stock tools to the source as it was', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    const base = await backup();
    expect(base.stderr).toBe('');
    expect(base.manifest.chain).toMatchObject({
      kind: 'base',
      base: base.manifest.id,
      reference: null,
      depth: 0,
      reason: 'first snapshot in delta mode',
    });
    expect(readdirSync(path.join(ws.vault, base.manifest.id)).sort()).toEqual([
      'manifest.json',
      'roles.sql.gpg',
      'rows.sql.gpg',
      'schema.pgdump.gpg',
    ]);
    expect(table(base.manifest, 'statuses')).toMatchObject({ rows: 200, key: ['id'] });
    expect(table(base.manifest, 'statuses_tags').key).toBeNull();
    const prints = [fingerprint(pg, db)];

    // Round 1: inserts (unicode, NULLs, arrays, jsonb), updates, deletes; a row deleted and re-inserted with the same key.
    pg.psql(
      db,
      `INSERT INTO accounts (username, display_name, note, fields, also_known_as) VALUES ('erin', 'Erin ✨', E'multi\\nline', '{"a": [1, null]}', ARRAY['x', NULL]);
       UPDATE statuses SET text = text || ' (edited)' WHERE id IN (SELECT id FROM statuses ORDER BY id DESC LIMIT 3);
       DELETE FROM media_attachments WHERE id = (SELECT max(id) FROM media_attachments);
       DELETE FROM settings WHERE var = 'site_title'; INSERT INTO settings VALUES ('site_title', 'Renamed', NULL);
       UPDATE account_pins SET created_at = created_at + interval '1 day' WHERE account_id = 2;
       INSERT INTO statuses_tags VALUES (1, 1);
       ${DELTA_EXTRA_CHURN}
       REFRESH MATERIALIZED VIEW account_summaries;`,
    );
    const d1 = await backup();
    expect(d1.stderr).toBe('');
    expect(d1.manifest.chain).toMatchObject({ kind: 'delta', base: base.manifest.id, reference: base.manifest.id, depth: 1 });
    expect(readdirSync(path.join(ws.vault, d1.manifest.id)).sort()).toEqual(['delta.sql.gpg', 'manifest.json', 'roles.sql.gpg']);
    expect(table(d1.manifest, 'statuses')).toMatchObject({ rows: 200, deleted: 3, copied: 3 });
    expect(table(d1.manifest, 'accounts')).toMatchObject({ rows: 5, deleted: 0, copied: 1 });
    expect(table(d1.manifest, 'media_attachments')).toMatchObject({ rows: 39, deleted: 1, copied: 0 });
    expect(table(d1.manifest, 'settings')).toMatchObject({ deleted: 1, copied: 1 });
    expect(table(d1.manifest, 'users')).toMatchObject({ deleted: 0, copied: 0 });
    expect(table(d1.manifest, 'signed_keys')).toMatchObject({ rows: 7, deleted: 3, copied: 4 });
    expect(table(d1.manifest, 'uuid_keys')).toMatchObject({ rows: 3, deleted: 2, copied: 2 });
    expect(table(d1.manifest, 'statuses_tags').copied).toBeGreaterThan(0);
    // The delta is a small fraction of the base.
    const size = (m: Manifest, part: string) => m.files.find((f) => f.part === part)!.plainBytes;
    expect(size(d1.manifest, 'delta')).toBeLessThan(size(base.manifest, 'rows') / 4);
    prints.push(fingerprint(pg, db));

    // Round 2: nothing changes in a table without a key → not copied; a TOASTed row changes.
    pg.psql(
      db,
      `UPDATE statuses SET text = repeat('changed long toot ', 1500) WHERE id = (SELECT min(id) FROM statuses); SELECT nextval('accounts_id_seq');`,
    );
    const d2 = await backup();
    expect(d2.manifest.chain).toMatchObject({ kind: 'delta', reference: d1.manifest.id, depth: 2 });
    expect(table(d2.manifest, 'statuses_tags').copied).toBeUndefined();
    expect(table(d2.manifest, 'statuses')).toMatchObject({ deleted: 1, copied: 1 });
    prints.push(fingerprint(pg, db));

    const snaps = [base, d1, d2];
    for (const [i, s] of snaps.entries()) {
      stockChainRestore(pg, ws, s.manifest.id, `${db}_r${i}`);
      expect(fingerprint(pg, `${db}_r${i}`), `snapshot ${i}`).toEqual(prints[i]);
      // The count and hash the manifest records are what the shared SQL computes on the restored copy,
      // by the cheapest hash (this server has hash_record_extended and hashes as every little-endian one does).
      expect(s.manifest.chain!.rowHash).toBe('hashrecord');
      const computed = tableHashes(pg, `${db}_r${i}`, s.manifest.chain!.tables, 'hashrecord');
      for (const [k, t] of s.manifest.chain!.tables.entries()) {
        expect(computed[k]!.split('|'), `${t.table} in snapshot ${i}`).toEqual([String(t.rows), t.hash]);
      }
    }

    // The state is private and holds no row: keys and keyed hashes only.
    const state = path.join(ws.vault, '.permafrost-delta');
    expect(statSync(state).mode & 0o777).toBe(0o700);
    const stateText = readdirSync(state)
      .map((f) => readFileSync(path.join(state, f), 'latin1'))
      .join('\n');
    expect(stateText).not.toContain('long toot');
    expect(stateText).not.toContain('Erin');
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.permafrost-delta.'))).toEqual([]);
  });

  it("a base's rows and its hashes, read on two sessions, are of one snapshot: rows committed all through it are in both or neither", async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    // A writer that commits a row into a keyed and a keyless table every few milliseconds, until told to stop.
    pg.psql(
      db,
      `CREATE TABLE pf_stop (x int);
       CREATE PROCEDURE pf_writer() LANGUAGE plpgsql AS $$
       DECLARE i int := 0;
       BEGIN
         LOOP
           i := i + 1;
           INSERT INTO settings VALUES ('w' || i, 'v', NULL);
           INSERT INTO statuses_tags VALUES (i, 0);
           COMMIT;
           EXIT WHEN i > 100000 OR EXISTS (SELECT 1 FROM pf_stop);
           PERFORM pg_sleep(0.003);
         END LOOP;
       END $$;`,
    );
    const writer = spawn(
      path.join(pg.binDir, 'psql'),
      ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', pg.socketDir, '-p', String(pg.port), '-U', pg.user, '-d', db, '-c', 'CALL pf_writer()'],
      { stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((resolve) => writer.once('close', resolve));
    const written = (): number => Number(pg.psql(db, "SELECT count(*) FROM settings WHERE var LIKE 'w%'").trim().split('\n').pop());
    await waitFor('the writer to commit rows', () => written() > 5, 30_000);
    let base: Manifest;
    try {
      base = (await backup()).manifest;
    } finally {
      pg.psql(db, 'INSERT INTO pf_stop VALUES (1)');
      expect(await exited).toBe(0);
    }
    const during = written();
    // Rows were committed while it ran (the test shows something only then), and the base holds some of them, not all.
    expect(table(base, 'settings').rows).toBeLessThan(during);
    stockChainRestore(pg, ws, base.id, `${db}_r`);
    const computed = tableHashes(pg, `${db}_r`, base.chain!.tables, rowHashOf(base.chain!));
    for (const [k, t] of base.chain!.tables.entries()) {
      expect(computed[k]!.split('|'), t.table).toEqual([String(t.rows), t.hash]);
    }
  });

  it('rows written by a transaction still open at the previous snapshot (in a subtransaction too) are in the next delta once it commits', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    await backup();
    const held = await holdTransaction(
      pg,
      db,
      `INSERT INTO accounts (username) VALUES ('slowpoke'); SAVEPOINT s; UPDATE statuses SET text = 'late edit' WHERE id = (SELECT max(id) FROM statuses); RELEASE s`,
    );
    const during = await backup();
    expect(during.manifest.chain?.kind).toBe('delta');
    expect(table(during.manifest, 'accounts').rows).toBe(4);
    await held.release();
    const after = await backup();
    expect(after.manifest.chain).toMatchObject({ kind: 'delta', depth: 2 });
    expect(table(after.manifest, 'accounts')).toMatchObject({ rows: 5, copied: 1 });
    expect(table(after.manifest, 'statuses')).toMatchObject({ deleted: 1, copied: 1 });
    pg.psql(db, 'REFRESH MATERIALIZED VIEW account_summaries');
    stockChainRestore(pg, ws, after.manifest.id, `${db}_late`);
    expect(fingerprint(pg, `${db}_late`)).toEqual(fingerprint(pg, db));
  });

  it('a server rolled back (its data directory restored from a copy) makes a base with a warning, never a delta that keeps the lost rows', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    await backup();
    pg.stop('fast');
    const copy = `${pg.dataDir}.copy`;
    execFileSync('cp', ['-a', pg.dataDir, copy]);
    pg.start();
    try {
      pg.psql(db, `UPDATE statuses SET text = 'on the lost timeline' WHERE id = (SELECT min(id) + 4 FROM statuses)`);
      const lost = await backup();
      expect(lost.manifest.chain?.kind).toBe('delta');
      pg.stop('immediate');
      execFileSync('rm', ['-rf', pg.dataDir]);
      execFileSync('mv', [copy, pg.dataDir]);
      pg.start();
      // The copy's transaction counter catches up, so xmin alone would trust it again.
      // One psql session: each statement of its input is its own transaction, so each takes a transaction ID.
      pg.psql(db, 'SELECT txid_current();\n'.repeat(30));
      pg.psql(db, `UPDATE statuses SET text = 'on the new timeline' WHERE id = (SELECT min(id) + 6 FROM statuses)`);
      const r = await backup();
      expect(r.manifest.chain?.kind).toBe('base');
      expect(r.stderr).toMatch(/made a base instead of a delta: .*(rolled back|WAL position went back)/);
      pg.psql(db, 'REFRESH MATERIALIZED VIEW account_summaries');
      stockChainRestore(pg, ws, r.manifest.id, `${db}_rolled`);
      expect(fingerprint(pg, `${db}_rolled`)).toEqual(fingerprint(pg, db));
    } finally {
      execFileSync('rm', ['-rf', copy]);
    }
  });

  it('a witness row whose xmin is neither the recorded one nor newer makes a base (the rollback check without the WAL one)', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    await backup();
    pg.psql(db, `UPDATE statuses SET text = 'changed' WHERE id = (SELECT max(id) FROM statuses)`);
    await backup();
    // A rollback leaves a witness row at an older version, whose xmin is neither the recorded one nor
    // newer. The state is made to record another xmin for the witnesses than they have: the same view.
    const state = path.join(ws.vault, '.permafrost-delta', 'state.json');
    const st = JSON.parse(readFileSync(state, 'utf8')) as { tables: Array<{ table: string; witness: Array<[string, string]> }> };
    const statuses = st.tables.find((t) => t.table === 'statuses')!;
    expect(statuses.witness.length).toBeGreaterThan(0);
    statuses.witness = statuses.witness.map(([k]) => [k, '3']);
    writeFileSync(state, JSON.stringify(st));
    // Resealed (as only someone holding the state's key could): the witness check itself must find it.
    resealDeltaState(ws.vault);
    const r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(/rows of "public"\."statuses" are back at versions older than its delta state records/);
  });

  it('a backup role under row-level security is refused in one sentence (exit 1), never a table short of rows', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    pg.psql(
      db,
      `CREATE ROLE rls_backup LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO rls_backup; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO rls_backup;
       CREATE TABLE private_notes (id int PRIMARY KEY, owner text, v text); GRANT SELECT ON private_notes TO rls_backup;
       INSERT INTO private_notes VALUES (1, 'rls_backup', 'a'), (2, 'other', 'b');
       ALTER TABLE private_notes ENABLE ROW LEVEL SECURITY; CREATE POLICY own ON private_notes FOR SELECT USING (owner = current_user);`,
    );
    ws.writeConfig({ database: { user: 'rls_backup', delta: {} } });
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(1);
    expect(errorSentence(r.stderr)).toMatch(/row-level security|permission denied/);
    expect(readdirSync(ws.vault).filter((n) => /^\d{4}-/.test(n))).toEqual([]);
  });

  it('keys of composite, enum, domain and array types restore with stock tools (types qualified, arrays not flattened)', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    pg.psql(
      db,
      `CREATE TYPE pair AS (x int, y text); CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE DOMAIN acct_id AS bigint;
       CREATE TABLE k_pair (k pair PRIMARY KEY, v text); INSERT INTO k_pair VALUES (ROW(1, 'a b'), 'x'), (ROW(2, 'b"c'), 'y');
       CREATE TABLE k_mood (k mood PRIMARY KEY, v text); INSERT INTO k_mood VALUES ('sad', 'x'), ('ok', 'y');
       CREATE TABLE k_dom (k acct_id PRIMARY KEY, v text); INSERT INTO k_dom VALUES (1, 'x'), (2, 'y');
       CREATE TABLE k_arr (k int[] PRIMARY KEY, v text); INSERT INTO k_arr VALUES ('{1,2}', 'x'), ('{}', 'y');`,
    );
    await backup();
    pg.psql(
      db,
      `UPDATE k_pair SET v = 'w' WHERE k = ROW(2, 'b"c')::pair; DELETE FROM k_pair WHERE k = ROW(1, 'a b')::pair;
       UPDATE k_mood SET v = 'w' WHERE k = 'ok'; UPDATE k_dom SET v = 'w' WHERE k = 2; DELETE FROM k_dom WHERE k = 1;
       UPDATE k_arr SET v = 'w' WHERE k = '{1,2}'; INSERT INTO k_arr VALUES ('{3}', 'z');`,
    );
    const d = await backup();
    expect(d.manifest.chain?.kind).toBe('delta');
    expect(table(d.manifest, 'k_arr')).toMatchObject({ deleted: 1, copied: 2 });
    stockChainRestore(pg, ws, d.manifest.id, `${db}_types`);
    expect(fingerprint(pg, `${db}_types`)).toEqual(fingerprint(pg, db));
  });

  it('a key file swapped or a keys file cut mid-line makes a base with a warning (not wrong hashes, not an internal error)', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    const state = path.join(ws.vault, '.permafrost-delta');
    await backup();
    writeFileSync(path.join(state, 'key'), Buffer.alloc(32, 7));
    pg.psql(db, `UPDATE statuses SET text = 'x' WHERE id = (SELECT max(id) FROM statuses)`);
    let r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(/made a base instead of a delta: its delta state key .* is not the key the state was made with/);
    const keys = readdirSync(state)
      .filter((f) => f.endsWith('.keys'))
      .map((f) => path.join(state, f))
      .find((f) => statSync(f).size > 100)!;
    execFileSync('truncate', ['-s', '50', keys]);
    pg.psql(db, `UPDATE accounts SET note = 'y'`);
    r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(
      /made a base instead of a delta: its delta state (has a damaged keys file|for .* is not the one recorded|for .* lacks a row)/,
    );
    // Delta mode off for one snapshot and on again: a base, due, with no warning.
    ws.writeConfig();
    await backup();
    ws.writeConfig({ database: { delta: {} } });
    r = await backup();
    expect(r.manifest.chain).toMatchObject({ kind: 'base' });
    expect(r.manifest.chain?.reason).toMatch(/is a full one \(delta mode was off\)/);
    expect(r.stderr).toBe('');
  });

  it('the server ends the capture session mid-delta: one sentence, exit 1, no snapshot, no half-written state', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    const first = await backup();
    const stateBefore = readFileSync(path.join(ws.vault, '.permafrost-delta', 'state.json'), 'utf8');
    // pg_dump (the schema fingerprint) waits on this lock while permafrost's own session sits idle in its transaction.
    const lock = await holdTableLock(pg, db, 'follows');
    const run = startCli(['--config', ws.configFile, 'backup']);
    await waitFor(
      'pg_dump to wait on the lock',
      () =>
        pg
          .psql(
            'postgres',
            `SELECT count(*) FROM pg_stat_activity WHERE datname = '${db}' AND application_name = 'pg_dump' AND wait_event_type = 'Lock'`,
          )
          .trim() === '1',
    );
    pg.psql(
      'postgres',
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db}' AND application_name = 'permafrost' AND state = 'idle in transaction'`,
    );
    await lock.release();
    const r = await run.result;
    expect(r.code).toBe(1);
    expect(errorSentence(r.stderr)).toMatch(
      new RegExp(
        `^PostgreSQL at .* failed while permafrost read the rows of database "${db}": .*; check the server is running and run backup again\\.$`,
      ),
    );
    expect(readdirSync(ws.vault).filter((n) => /^\d{4}-/.test(n))).toEqual([first.manifest.id]);
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.partial-') || n.startsWith('.permafrost-delta.'))).toEqual([]);
    expect(readFileSync(path.join(ws.vault, '.permafrost-delta', 'state.json'), 'utf8')).toBe(stateBefore);
    // The next run builds on the same state.
    expect((await backup()).manifest.chain).toMatchObject({ kind: 'delta', reference: first.manifest.id });
  });

  it('a schema change (a migration) makes a base, without a warning; so does fullEvery', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    await backup();
    const d1 = await backup();
    expect(d1.manifest.chain?.kind).toBe('delta');
    pg.psql(db, `ALTER TABLE statuses ADD COLUMN edited_at timestamp; INSERT INTO schema_migrations VALUES ('20250101000000');`);
    const b2 = await backup();
    expect(b2.stderr).toBe('');
    expect(b2.manifest.chain).toMatchObject({ kind: 'base', depth: 0 });
    expect(b2.manifest.chain?.reason).toMatch(/^the schema changed since/);
    const d3 = await backup();
    expect(d3.manifest.chain).toMatchObject({ kind: 'delta', base: b2.manifest.id });

    ws.writeConfig({ database: { delta: { fullEvery: 1 } } });
    await new Promise((r) => setTimeout(r, 1100));
    const b4 = await backup();
    expect(b4.manifest.chain?.kind).toBe('base');
    expect(b4.manifest.chain?.reason).toMatch(/older than database\.delta\.fullEvery/);
  });

  it('state lost, garbled or not matching → the next snapshot is a base, with a warning; never a wrong delta', async () => {
    const { db } = deltaWorkspace();
    const pg = cluster.get();
    const state = path.join(ws.vault, '.permafrost-delta');
    await backup();

    // Lost.
    rmSync(state, { recursive: true });
    let r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(
      /made a base instead of a delta: its delta state .*\.permafrost-delta is missing; the state is rebuilt from this base/,
    );

    // state.json garbled.
    writeFileSync(path.join(state, 'state.json'), '{"formatVersion": 1, "snapshot": 12');
    r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(/made a base instead of a delta: its delta state .*state\.json is not valid JSON/);

    // A keys file edited: found while it is read, the delta is thrown away and a base made in the same run.
    const keysFile = (): string =>
      path.join(state, readdirSync(state).find((f) => f.endsWith('.keys') && statSync(path.join(state, f)).size > 0)!);
    const edit = (change: (lines: string[]) => void): void => {
      const lines = readFileSync(keysFile(), 'latin1').split('\n');
      change(lines);
      writeFileSync(keysFile(), lines.join('\n'));
    };
    pg.psql(db, `UPDATE accounts SET note = 'changed' WHERE username = 'alice'`);
    edit((lines) => {
      const l = lines[0]!;
      const at = l.lastIndexOf('\t') + 1;
      lines[0] = `${l.slice(0, at)}${l[at] === 'A' ? 'B' : 'A'}${l.slice(at + 1)}`;
    });
    r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(/made a base instead of a delta: its delta state for .* is not the one recorded \(the keys file changed\)/);
    expect(readdirSync(path.join(ws.vault, r.manifest.id))).not.toContain('delta.sql.gpg');
    // A row gone from the state (and its SHA-256 fixed up): the merge finds a key the state lacks.
    edit((lines) => lines.splice(0, 1));
    const st = JSON.parse(readFileSync(path.join(state, 'state.json'), 'utf8')) as {
      tables: Array<{ file: string | null; sha256: string | null }>;
    };
    const t = st.tables.find((x) => x.file === path.basename(keysFile()))!;
    t.sha256 = createHash('sha256').update(readFileSync(keysFile())).digest('hex');
    writeFileSync(path.join(state, 'state.json'), JSON.stringify(st));
    resealDeltaState(ws.vault);
    r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(/made a base instead of a delta: its delta state for .* lacks a row that did not change since/);

    // The newest snapshot is not the one the state describes (it was removed by hand).
    const ok = await backup();
    expect(ok.manifest.chain?.kind).toBe('delta');
    rmSync(path.join(ws.vault, ok.manifest.id), { recursive: true });
    r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(new RegExp(`its delta state describes snapshot ${ok.manifest.id}, but the newest snapshot is`));

    // After each base, deltas resume and restore right.
    const d = await backup();
    expect(d.manifest.chain).toMatchObject({ kind: 'delta', reference: r.manifest.id });
    stockChainRestore(pg, ws, d.manifest.id, `${db}_after`);
    expect(fingerprint(pg, `${db}_after`)).toEqual(fingerprint(pg, db));
    expect(existsSync(state)).toBe(true);
  });
});
