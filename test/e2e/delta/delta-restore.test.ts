import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { sha256File } from '../../../src/crypto/hash.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { backupAndDump, DELTA_EXTRA_SQL, plainRestore } from '../../harness/delta.js';
import { errorSentence, makeWorkspace, runCli, type CliResult, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { makeGpgKey } from '../../harness/gpg-keys.js';
import { clusterPerFile } from '../../harness/suite.js';

// issue 13 item 5: permafrost restore and verify of delta snapshots, against real PostgreSQL and gpg.
const cluster = clusterPerFile();
let ws: Workspace;
afterEach(() => ws?.cleanup());
const keysDir = mkdtempSync(path.join(tmpdir(), 'permafrost-delta-keys-'));
afterAll(() => rmSync(keysDir, { recursive: true, force: true }));

let dbCounter = 0;
/** A fresh fixture database with the delta extras (text and composite keys, a table without one, a TOASTed row), in delta mode. */
function deltaWorkspace(vault: Record<string, unknown> = {}): string {
  const db = `dr${++dbCounter}`;
  cluster.createDb(db);
  cluster.get().psql(db, DELTA_EXTRA_SQL);
  ws = makeWorkspace(cluster.get(), db);
  ws.writeConfig({ database: { delta: { fullEvery: '24h' } }, vault });
  return db;
}

function restore(args: string[]): Promise<CliResult> {
  return runCli(['--config', ws.configFile, 'restore', ...args]);
}

/** Nothing a run leaves behind: no private temp folder (vault.tempDir is the workspace), no _incoming or scratch database. */
function expectNothingLeft(): void {
  expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  const dbs = cluster
    .get()
    .psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '%\\_incoming' OR datname LIKE 'permafrost\\_verify%'`)
    .trim();
  expect(dbs).toBe('');
}

const manifestPath = (id: string): string => path.join(ws.vault, id, 'manifest.json');
const readManifest = (id: string): Manifest => JSON.parse(readFileSync(manifestPath(id), 'utf8')) as Manifest;

describe('restore of delta snapshots', () => {
  it('every snapshot of a base and three rounds of changes restores to what a plain pg_restore of a pg_dump at that moment gives', async () => {
    const db = deltaWorkspace();
    const pg = cluster.get();
    pg.psql('postgres', `DO $$ BEGIN CREATE ROLE delta_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    const snaps = [await backupAndDump(cluster.get(), ws, db)];
    const rounds = [
      // Unicode, NULLs, arrays, jsonb; updates; a delete; a row deleted and re-inserted with the same key; a row in a table without a key.
      `INSERT INTO accounts (username, display_name, note, fields, also_known_as) VALUES ('erin', 'Erin ✨ ñ 日本', E'multi\\nline\\ttab', '{"a": [1, null, "ü"]}', ARRAY['x', NULL, 'ÿ']);
       UPDATE statuses SET text = text || ' (edited)', language = NULL WHERE id IN (SELECT id FROM statuses ORDER BY id DESC LIMIT 3);
       DELETE FROM media_attachments WHERE id = (SELECT max(id) FROM media_attachments);
       DELETE FROM settings WHERE var = 'site_title'; INSERT INTO settings VALUES ('site_title', 'Renamed 🐘', NULL);
       INSERT INTO statuses_tags VALUES (1, 1);`,
      // A TOASTed row (> 8 KB) changed and a new one; a status deleted and re-inserted with the same id; a sequence moves.
      `UPDATE statuses SET text = repeat('changed long toot ', 1500) WHERE id = (SELECT min(id) FROM statuses);
       INSERT INTO statuses (id, text, account_id) VALUES (120000000000000001, repeat('ü long ', 3000), 1);
       DELETE FROM media_attachments WHERE status_id = 110000000000000010; DELETE FROM statuses WHERE id = 110000000000000010;
       INSERT INTO statuses (id, text, account_id, ordered_media_attachment_ids) VALUES (110000000000000010, 'back again', 2, ARRAY[1, NULL]::bigint[]);
       UPDATE users SET settings = '{"theme": "dark", "langs": ["en", "ar"]}' WHERE id = 1;
       SELECT nextval('accounts_id_seq');`,
      // Values set to NULL, rows removed from the keyless table and from the middle, the matview refreshed.
      `UPDATE accounts SET fields = NULL, also_known_as = NULL, suspended_at = now() WHERE username = 'erin';
       DELETE FROM statuses_tags WHERE status_id % 2 = 0;
       DELETE FROM account_pins WHERE account_id = 1 AND target_account_id = 2;
       REFRESH MATERIALIZED VIEW account_summaries;`,
    ];
    for (const sql of rounds) {
      pg.psql(db, sql);
      snaps.push(await backupAndDump(cluster.get(), ws, db));
    }
    expect(snaps.map((s) => s.manifest.chain?.kind)).toEqual(['base', 'delta', 'delta', 'delta']);
    expect(snaps[3]!.manifest.chain?.depth).toBe(3);

    // Each snapshot its own way: plain, parallel jobs, no owner with a role, and the last with --vault and no config.
    const ways: string[][] = [[], ['--jobs', '2'], ['--no-owner', '--role', 'delta_owner'], []];
    for (const [i, s] of snaps.entries()) {
      const want = plainRestore(cluster.get(), s.dump, `${db}_ref${i}`);
      const r =
        i === 3
          ? await runCli(['restore', s.manifest.id, '--vault', ws.vault, '--passphrase-file', ws.passFile, '--database', `${db}_r${i}`], {
              env: {
                PERMAFROST_CONFIG: '',
                PGHOST: pg.socketDir,
                PGPORT: String(pg.port),
                PGUSER: pg.user,
                PATH: `${pg.binDir}:${process.env.PATH}`,
                TMPDIR: ws.dir,
              },
              cwd: ws.dir,
            })
          : await restore([s.manifest.id, '--database', `${db}_r${i}`, ...ways[i]!]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`restored snapshot ${s.manifest.id} into database "${db}_r${i}" (created)`);
      expect(fingerprint(pg, `${db}_r${i}`), `snapshot ${i}`).toEqual(want);
    }
    expect(
      pg.psql(`${db}_r2`, `SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname IN ('statuses', 'settings')`).trim(),
    ).toBe('delta_owner');

    // --force swaps the newest snapshot in over the base's copy; the previous one is kept.
    const r = await restore([snaps[3]!.manifest.id, '--database', `${db}_r0`, '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, `${db}_r0`)).toEqual(fingerprint(pg, `${db}_ref3`));
    expect(r.stdout).toMatch(new RegExp(`the previous database is kept as "${db}_r0_before_\\d{8}_\\d{6}"`));
    expectNothingLeft();
  });

  it('a schema change makes the next snapshot a base; restores on both sides of it are right', async () => {
    const db = deltaWorkspace();
    const pg = cluster.get();
    pg.psql(db, `UPDATE accounts SET note = 'before' WHERE id = 1`);
    const b1 = await backupAndDump(cluster.get(), ws, db);
    pg.psql(db, `UPDATE accounts SET note = 'delta 1' WHERE id = 1`);
    const d1 = await backupAndDump(cluster.get(), ws, db);
    pg.psql(db, `ALTER TABLE accounts ADD COLUMN locked boolean NOT NULL DEFAULT false; UPDATE accounts SET locked = true WHERE id = 2`);
    const b2 = await backupAndDump(cluster.get(), ws, db);
    pg.psql(db, `UPDATE accounts SET note = 'delta 2', locked = true WHERE id = 1`);
    const d2 = await backupAndDump(cluster.get(), ws, db);
    expect([b1, d1, b2, d2].map((s) => s.manifest.chain?.kind)).toEqual(['base', 'delta', 'base', 'delta']);
    expect(b2.manifest.chain?.reason).toMatch(/^the schema changed since/);
    expect(d2.manifest.chain?.base).toBe(b2.manifest.id);
    for (const [i, s] of [d1, d2].entries()) {
      const want = plainRestore(cluster.get(), s.dump, `${db}_ref${i}`);
      // The second one as a whole-instance restore lays it out (--all: here only the database, which is all the snapshot holds).
      const all = i === 1 ? ['--all', path.join(ws.dir, 'all')] : [];
      const r = await restore([s.manifest.id, '--database', `${db}_r${i}`, ...all]);
      expect(r.code, r.stderr).toBe(0);
      expect(fingerprint(pg, `${db}_r${i}`), s.manifest.id).toEqual(want);
    }
    expect(pg.psql(`${db}_r0`, `SELECT count(*) FROM information_schema.columns WHERE column_name = 'locked'`).trim()).toBe('0');
    expect(pg.psql(`${db}_r1`, `SELECT note || ' ' || locked FROM accounts WHERE id = 1`).trim()).toBe('delta 2 true');
    expectNothingLeft();
  });

  it('a tampered or missing middle delta: restore of a later snapshot exits 3 naming it, and the target is untouched', async () => {
    const db = deltaWorkspace();
    const pg = cluster.get();
    const snaps = [await backupAndDump(cluster.get(), ws, db)];
    for (const n of [1, 2]) {
      pg.psql(db, `UPDATE accounts SET note = 'round ${n}' WHERE id = 1`);
      snaps.push(await backupAndDump(cluster.get(), ws, db));
    }
    const [base, d1, d2] = snaps.map((s) => s.manifest.id);
    // The target holds data, so --force: it must survive every failed attempt as it was.
    pg.psql('postgres', `CREATE DATABASE ${db}_target`);
    pg.psql(`${db}_target`, `CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me')`);
    const before = fingerprint(pg, `${db}_target`);

    const middle = path.join(ws.vault, d1!, 'delta.sql.gpg');
    const good = readFileSync(middle);
    const bad = Buffer.from(good);
    bad[bad.length >> 1]! ^= 0x40;
    writeFileSync(middle, bad);
    let r = await restore([d2!, '--database', `${db}_target`, '--force']);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toBe(
      `Snapshot ${d2} cannot be restored: delta.sql.gpg of snapshot ${d1} does not match the SHA-256 in its manifest (tampered or damaged); restore another snapshot (permafrost list shows them), and run permafrost check.`,
    );
    // Refused before anything was decrypted or created.
    expect(r.stderr).not.toMatch(/restore: decrypt/);
    expect(fingerprint(pg, `${db}_target`)).toEqual(before);
    expectNothingLeft();

    // The snapshot before the damaged one still restores.
    r = await restore([base!, '--database', `${db}_base`]);
    expect(r.code, r.stderr).toBe(0);

    writeFileSync(middle, good);
    const held = readdirSync(path.join(ws.vault, d1!));
    const kept = path.join(ws.dir, 'kept');
    renameSync(path.join(ws.vault, d1!), kept);
    r = await restore([d2!, '--database', `${db}_target`, '--force']);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toBe(
      `Snapshot ${d2} cannot be restored: it needs snapshot ${d1} (depth 1 of its chain), which is missing; restore another snapshot (permafrost list shows them), and run permafrost check.`,
    );
    expect(fingerprint(pg, `${db}_target`)).toEqual(before);

    // verify names it too, as a failed check of the snapshot.
    const v = await runCli(['--config', ws.configFile, 'verify', d2!]);
    expect(v.code, v.stderr).toBe(3);
    expect(v.stdout).toContain(`✗ chain: it needs snapshot ${d1} (depth 1 of its chain), which is missing`);
    expectNothingLeft();

    // On a backup device Syncthing's versioning kept the pruned delta (.stversions, stamped names): the chain is whole again.
    const versions = path.join(ws.vault, '.stversions', d1!);
    mkdirSync(versions, { recursive: true });
    for (const name of held) {
      const dot = name.lastIndexOf('.');
      renameSync(path.join(kept, name), path.join(versions, `${name.slice(0, dot)}~20261201-120000${name.slice(dot)}`));
    }
    const want = plainRestore(cluster.get(), snaps[2]!.dump, `${db}_ref`);
    r = await restore([d2!, '--database', `${db}_target`, '--force', '--drop-previous']);
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, `${db}_target`)).toEqual(want);
    expectNothingLeft();
  });

  it('verify of a delta snapshot passes, and fails (exit 3) when a table in the data does not match the manifest’s hash', async () => {
    const db = deltaWorkspace();
    const pg = cluster.get();
    await backupAndDump(cluster.get(), ws, db);
    pg.psql(
      db,
      `UPDATE statuses SET text = 'verify me' WHERE id = 110000000000000005; DELETE FROM statuses_tags WHERE status_id = 110000000000000003`,
    );
    const { manifest } = await backupAndDump(cluster.get(), ws, db);
    expect(manifest.chain?.kind).toBe('delta');

    let v = await runCli(['--config', ws.configFile, 'verify', manifest.id]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain(`✓ chain: 1 delta on base ${manifest.chain!.base}: every file's size and SHA-256 match the manifests`);
    expect(v.stdout).toMatch(/✓ table-hashes: row counts and content hashes of all \d+ tables equal the manifest/);
    expect(v.stdout).toContain(`snapshot ${manifest.id} verified`);
    expectNothingLeft();

    // The manifest (unsigned vault) says another hash for statuses than its data gives.
    const m = readManifest(manifest.id);
    const statuses = m.chain!.tables.find((t) => t.table === 'statuses')!;
    const realHash = statuses.hash;
    statuses.hash = (BigInt(realHash) ^ 1n).toString();
    writeFileSync(manifestPath(manifest.id), JSON.stringify(m, null, 2));
    v = await runCli(['--config', ws.configFile, 'verify', manifest.id]);
    expect(v.code, v.stderr).toBe(3);
    const mismatch = `table "public"."statuses" has ${statuses.rows} rows with hash ${realHash}, the manifest says ${statuses.rows} rows with hash ${statuses.hash}`;
    expect(errorSentence(v.stderr)).toBe(
      `Snapshot ${manifest.id} failed verification: ${mismatch}; use another snapshot and find out what damaged this one.`,
    );
    expectNothingLeft();

    // restore refuses it the same way, before the swap: the target stays as it was.
    pg.psql('postgres', `CREATE DATABASE ${db}_target`);
    pg.psql(`${db}_target`, `CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me')`);
    const before = fingerprint(pg, `${db}_target`);
    const r = await restore([manifest.id, '--database', `${db}_target`, '--force']);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toBe(
      `The restored copy of snapshot ${manifest.id} does not match its manifest (${mismatch}); database "${db}_target" was not touched: run permafrost verify ${manifest.id} and restore another snapshot.`,
    );
    expect(fingerprint(pg, `${db}_target`)).toEqual(before);
    expectNothingLeft();

    // A delta whose SQL fails (well encrypted, matching its manifest): psql's error, exit 1, the target untouched.
    writeFileSync(path.join(ws.dir, 'bad.sql'), 'SELECT 1/0;\n');
    const gnupg = mkdtempSync(path.join(tmpdir(), 'permafrost-delta-gpg-'));
    const enc = path.join(ws.vault, manifest.id, 'delta.sql.gpg');
    rmSync(enc);
    const g = spawnSync(
      'gpg',
      [
        '--homedir',
        gnupg,
        '--batch',
        '--pinentry-mode',
        'loopback',
        '--passphrase-file',
        ws.passFile,
        '--symmetric',
        '-o',
        enc,
        path.join(ws.dir, 'bad.sql'),
      ],
      { encoding: 'utf8' },
    );
    spawnSync('gpgconf', ['--homedir', gnupg, '--kill', 'all']);
    rmSync(gnupg, { recursive: true, force: true });
    expect(g.status, g.stderr).toBe(0);
    const file = m.files.find((f) => f.part === 'delta')!;
    Object.assign(file, { bytes: readFileSync(enc).length, sha256: (await sha256File(enc)).sha256, plainBytes: 12 });
    writeFileSync(manifestPath(manifest.id), JSON.stringify(m, null, 2));
    const failed = await restore([manifest.id, '--database', `${db}_target`, '--force']);
    expect(failed.code, failed.stderr).toBe(1);
    expect(errorSentence(failed.stderr)).toBe(
      `psql failed restoring snapshot ${manifest.id} into "${db}_target_incoming"; database "${db}_target" was not touched: read the lines below, fix the cause and run restore again.`,
    );
    expect(failed.stderr).toContain('division by zero');
    expect(fingerprint(pg, `${db}_target`)).toEqual(before);
    v = await runCli(['--config', ws.configFile, 'verify', manifest.id]);
    expect(v.code, v.stderr).toBe(3);
    expect(v.stdout).toMatch(
      /✗ restore: \S*psql failed while applying delta\.sql\.gpg of snapshot \S+: division by zero \(into scratch database "permafrost_verify_\d+"\)/,
    );
    expectNothingLeft();
  });

  it('a signed vault checks the signature of every manifest in the chain', async () => {
    const signer = makeGpgKey(keysDir, 'delta-signer');
    const db = deltaWorkspace();
    const signingKeyFile = path.join(ws.dir, 'signing.sec.asc');
    copyFileSync(signer.secretFile, signingKeyFile);
    chmodSync(signingKeyFile, 0o600);
    ws.writeConfig({ database: { delta: { fullEvery: '24h' } }, vault: { signingKeyFile, signerKeyFile: signer.publicFile } });
    const base = (await backupAndDump(cluster.get(), ws, db)).manifest.id;
    cluster.get().psql(db, `UPDATE accounts SET note = 'signed' WHERE id = 1`);
    const delta = (await backupAndDump(cluster.get(), ws, db)).manifest.id;
    let r = await restore([delta, '--database', `${db}_ok`]);
    expect(r.code, r.stderr).toBe(0);

    // The base's manifest edited after it was signed (still a valid manifest): the delta on it is refused.
    const m = readManifest(base);
    m.host = 'elsewhere';
    writeFileSync(manifestPath(base), JSON.stringify(m, null, 2));
    r = await restore([delta, '--database', `${db}_bad`]);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toBe(
      `Snapshot ${delta} cannot be restored: it needs snapshot ${base}, whose signature check fails: manifest.json.sig does not match manifest.json (edited after it was signed); restore another snapshot (permafrost list shows them), and run permafrost check.`,
    );
    expectNothingLeft();
  });
});
