/**
 * Issue 13 item 5: the vault's restore.sh (verbatim, with dash) restores a delta-mode snapshot —
 * base + 2 deltas made by real `permafrost backup` runs with `database.delta` — onto a fresh
 * cluster with no roles, equal to a plain pg_restore of a pg_dump taken at the same moment; a
 * chain it cannot follow or decrypt is refused with nothing created and no plaintext left.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterFixture, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fingerprint, ownership } from '../../harness/fingerprint.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import {
  createOwnedSource,
  gpg,
  libpqEnv,
  plaintextDumps,
  readManifestJson,
  recordPart,
  runSh,
  startSh,
  writeManifestJson,
} from '../../harness/restore-sh.js';
import { waitFor } from '../../harness/wait.js';

const source = new ClusterFixture();
let fresh: PgCluster;
let ws: Workspace;
let script: string;
/** The snapshots: base, delta 1, delta 2. */
let ids: string[] = [];

const DB = 'mastodon_production';
/** A value only the last delta carries: found in a file, it is plaintext left behind. */
const MARKER = 'plaintext-marker-b2c7e1';

/** A table whose name needs quoting (a quote, a space, unicode): the manifest's JSON escapes it. */
const ODD = '"it\'s ""odd"" ü"';

/** Each round's changes on the source: inserts, updates, deletes, NULL, unicode, jsonb, arrays, TOAST, a table without PK. */
const ROUNDS = [
  `INSERT INTO accounts (username, display_name, note, fields, also_known_as) VALUES
     ('erin', 'Érin ☃', E'tab\\there, newline\\nthere, backslash \\\\', '{"k": [1, null, "ü"]}', ARRAY['x', NULL]);
   UPDATE accounts SET display_name = 'Bøb 🦊', fields = NULL WHERE username = 'bob';
   UPDATE accounts SET fields = '{"emoji": "🎉", "nested": {"a": [true, null]}}' WHERE username = 'carol';
   UPDATE users SET otp_secret = NULL, settings = NULL WHERE email = 'carol@example.org';
   DELETE FROM follows WHERE account_id = 3;
   UPDATE statuses SET text = 'edited ✏️', ordered_media_attachment_ids = ARRAY[1, 2, 3] WHERE id % 17 = 0;
   DELETE FROM media_attachments WHERE id > 35;
   DELETE FROM statuses WHERE id = 110000000000000200;
   INSERT INTO audit_log VALUES (now(), 'round 1', '{"round": 1}'), (NULL, NULL, NULL);
   UPDATE ${ODD} SET v = 'changed' WHERE id = 1; INSERT INTO ${ODD} VALUES (3, 'three');`,
  `DELETE FROM follows WHERE account_id = 1 AND target_account_id = 2;
   INSERT INTO follows (account_id, target_account_id, languages) VALUES (1, 2, ARRAY['de']);
   DELETE FROM statuses WHERE id = 110000000000000199;
   INSERT INTO statuses (id, text, account_id, visibility) VALUES (110000000000000199, 'same key, new row', 2, 1);
   INSERT INTO statuses (id, text, account_id) SELECT 110000000000000300, string_agg(md5(g::text), '') || '${MARKER}', 1 FROM generate_series(1, 4000) g;
   UPDATE accounts SET suspended_at = NULL, also_known_as = '{}' WHERE username = 'dave';
   DELETE FROM audit_log WHERE what IS NULL;
   INSERT INTO audit_log VALUES ('2026-01-01 00:00:00+00', 'round 2', '[]');
   DELETE FROM ${ODD} WHERE id = 2;`,
];

/** The source's state after round n as a plain `pg_dump -Fc` → `pg_restore` into `expected_<n>` on the source cluster. */
function plainCopy(n: number): string {
  const pg = source.get();
  const file = path.join(ws.dir, `plain-${n}.pgdump`);
  const dump = spawnSync(path.join(pg.binDir, 'pg_dump'), ['-Fc', '-f', file, DB], { env: { ...process.env, ...libpqEnv(pg, ws.dir) } });
  expect(dump.status, String(dump.stderr)).toBe(0);
  const db = `expected_${n}`;
  pg.psql('postgres', `CREATE DATABASE ${db} OWNER mastodon TEMPLATE template0`);
  const restore = spawnSync(path.join(pg.binDir, 'pg_restore'), ['--exit-on-error', '-d', db, file], {
    env: { ...process.env, ...libpqEnv(pg, ws.dir) },
  });
  expect(restore.status, String(restore.stderr)).toBe(0);
  rmSync(file);
  return db;
}

async function backup(): Promise<string> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { id: string }).id;
}

/** A private TMPDIR per run, so that "nothing left" can be checked exactly. */
function tmp(name: string): string {
  const dir = path.join(ws.dir, `tmp-${name}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

const lastLine = (stderr: string): string => stderr.trim().split('\n').at(-1) ?? '';

function databases(pg: PgCluster): string[] {
  return pg.psql('postgres', `SELECT datname FROM pg_database ORDER BY 1`).split('\n').filter(Boolean);
}

/** Every file under `root` that holds `text`. */
function filesHolding(root: string, text: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes(text)) found.push(p);
    }
  };
  walk(root);
  return found;
}

/** Nothing decrypted anywhere: the run's TMPDIR is empty, and no file of the workspace holds a dump or the last delta's rows. */
function nothingLeft(tmpDir: string): void {
  expect(readdirSync(tmpDir)).toEqual([]);
  expect(plaintextDumps(ws.dir)).toEqual([]);
  expect(filesHolding(ws.dir, MARKER)).toEqual([]);
}

/** The gpg processes decrypting with a home under `dir` (the script's private folder). */
function gpgDecrypting(dir: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        return '';
      }
    })
    .filter((cmd) => cmd.startsWith('gpg ') && cmd.includes(dir) && cmd.includes(' --decrypt '));
}

let expected: string[] = [];

beforeAll(async () => {
  const pg = source.get();
  createOwnedSource(pg, DB);
  pg.psql(
    DB,
    `SET ROLE mastodon; CREATE TABLE audit_log (at timestamptz, what text, payload jsonb); INSERT INTO audit_log VALUES (now(), 'base', '{}');
     CREATE TABLE ${ODD} (id int PRIMARY KEY, v text); INSERT INTO ${ODD} VALUES (1, 'one'), (2, 'two');`,
  );
  ws = makeWorkspace(pg, DB);
  ws.writeConfig({ database: { delta: { fullEvery: '24h' } } });
  script = path.join(ws.vault, 'restore.sh');
  ids = [await backup()];
  expected = [plainCopy(0)];
  for (const [i, sql] of ROUNDS.entries()) {
    pg.psql(DB, `${sql}\nREFRESH MATERIALIZED VIEW account_summaries;`);
    ids.push(await backup());
    expected.push(plainCopy(i + 1));
  }
  fresh = startCluster();
}, 180_000);

afterAll(() => {
  if (fresh) destroyCluster(fresh);
  source.destroy();
  ws?.cleanup();
});

describe('restore.sh of a delta-mode snapshot', () => {
  it('the backups made a base and two deltas, each on the one before (no database part)', () => {
    const chains = ids.map((id) => readManifestJson(path.join(ws.vault, id)));
    expect(chains.map((m) => (m.chain as { kind: string; depth: number }).kind)).toEqual(['base', 'delta', 'delta']);
    expect(chains.map((m) => (m.chain as { reference: string | null }).reference)).toEqual([null, ids[0], ids[1]]);
    expect(chains.flatMap((m) => m.files.map((f) => f.part)).filter((p) => p === 'database')).toEqual([]);
    // restore.sh reads the JSON-escaped name (\" in the manifest) and checks that table too.
    expect((chains[2]!.chain as { tables: Array<{ table: string; rows: number }> }).tables).toContainEqual(
      expect.objectContaining({ table: 'it\'s "odd" ü', rows: 2 }),
    );
    expect(readFileSync(path.join(ws.vault, ids[2]!, 'manifest.json'), 'utf8')).toContain('"table": "it\'s \\"odd\\" ü"');
  });

  it('onto a fresh cluster with no roles: equal to a plain pg_restore of a pg_dump of that moment, ownership included; nothing left', async () => {
    expect(fresh.psql('postgres', `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'mastodon%'`).trim()).toBe('0');
    const t = tmp('fresh');
    const r = await runSh(script, ['--passphrase-file', ws.passFile], libpqEnv(fresh, t));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`decrypting snapshot ${ids[2]}: base ${ids[0]} and 2 deltas`);
    expect(r.stderr).toContain(`restored snapshot ${ids[2]} into database "${DB}".`);
    expect(fingerprint(fresh, DB)).toEqual(fingerprint(source.get(), expected[2]!));
    expect(ownership(fresh, DB)).toEqual(ownership(source.get(), expected[2]!));
    expect(fresh.psql(DB, `SELECT count(*) FROM audit_log`).trim()).toBe('3');
    expect(databases(fresh)).not.toContain(`${DB}_incoming`);
    nothingLeft(t);
  });

  it('each earlier snapshot of the chain restores to its own moment (the base alone, the first delta)', async () => {
    for (const n of [0, 1]) {
      const t = tmp(`earlier-${n}`);
      const r = await runSh(script, ['--passphrase-file', ws.passFile, '--database', `at_${n}`, ids[n]!], libpqEnv(fresh, t));
      expect(r.code, r.stderr).toBe(0);
      expect(fingerprint(fresh, `at_${n}`)).toEqual(fingerprint(source.get(), expected[n]!));
      nothingLeft(t);
    }
  });

  it('a missing middle delta: exit 3 naming it, before anything is decrypted or created', async () => {
    const away = path.join(ws.dir, 'away');
    renameSync(path.join(ws.vault, ids[1]!), away);
    const t = tmp('missing');
    const before = databases(fresh);
    try {
      const r = await runSh(script, ['--passphrase-file', ws.passFile, '--database', 'from_broken_chain'], libpqEnv(fresh, t));
      expect(r.code).toBe(3);
      expect(lastLine(r.stderr)).toBe(
        `restore.sh: snapshot ${ids[2]} needs ${ids[1]} (its chain goes back to base ${ids[0]}), which is missing from ${ws.vault}; restore another snapshot (ls ${ws.vault}), or copy ${ids[1]} back from another copy of the vault.`,
      );
      expect(r.stderr).not.toContain('decrypting');
    } finally {
      renameSync(away, path.join(ws.vault, ids[1]!));
    }
    expect(databases(fresh)).toEqual(before);
    nothingLeft(t);
  });

  it('a wrong passphrase: exit 3 in one sentence, nothing created, no plaintext in TMPDIR', async () => {
    const wrong = path.join(ws.dir, 'wrong-passphrase');
    writeFileSync(wrong, 'not the passphrase\n', { mode: 0o600 });
    const t = tmp('wrong');
    const before = databases(fresh);
    const r = await runSh(script, ['--passphrase-file', wrong, '--database', 'from_wrong'], libpqEnv(fresh, t));
    expect(r.code).toBe(3);
    expect(lastLine(r.stderr)).toBe(
      `restore.sh: the passphrase in ${wrong} does not decrypt snapshot ${ids[2]} (wrong passphrase?); give the vault's passphrase file.`,
    );
    expect(databases(fresh)).toEqual(before);
    nothingLeft(t);
  });

  describe('on a copy of the chain', () => {
    /** Copies the chain's folders (same ids) into a vault of its own, with restore.sh. */
    function copyChain(name: string): string {
      const vault = path.join(ws.dir, name);
      mkdirSync(vault);
      writeFileSync(path.join(vault, 'restore.sh'), readFileSync(script));
      for (const id of ids) {
        mkdirSync(path.join(vault, id));
        for (const f of readdirSync(path.join(ws.vault, id)))
          writeFileSync(path.join(vault, id, f), readFileSync(path.join(ws.vault, id, f)));
      }
      return vault;
    }

    /**
     * Replaces the last delta's delta.sql.gpg of `vault` by `edit` of its SQL, encrypted with stock gpg
     * to `passFile`, and records it in the manifest (so its size and SHA-256 match).
     */
    function rewriteLastDelta(vault: string, passFile: string, edit: (sql: Buffer) => Buffer = (sql) => sql): void {
      const dir = path.join(vault, ids[2]!);
      const file = path.join(dir, 'delta.sql.gpg');
      const plain = path.join(ws.dir, 'delta-plain.sql');
      gpg(['--pinentry-mode', 'loopback', '--passphrase-file', ws.passFile, '--output', plain, '--decrypt', file]);
      writeFileSync(plain, edit(readFileSync(plain)));
      rmSync(file);
      gpg(['--pinentry-mode', 'loopback', '--passphrase-file', passFile, '--symmetric', '--output', file, plain]);
      recordPart(dir, 'delta', 'delta.sql.gpg', readFileSync(plain).length);
      rmSync(plain);
    }

    it('the last delta not decrypting with the passphrase (the base already streamed in): exit 3 naming it, the half-made copy dropped, no plaintext', async () => {
      const vault = copyChain('vault-rekeyed');
      const other = path.join(ws.dir, 'other-passphrase');
      writeFileSync(other, 'another passphrase\n', { mode: 0o600 });
      rewriteLastDelta(vault, other);
      const t = tmp('rekeyed');
      const before = databases(fresh);
      const r = await runSh(
        path.join(vault, 'restore.sh'),
        ['--passphrase-file', ws.passFile, '--database', 'from_rekeyed'],
        libpqEnv(fresh, t),
      );
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`delta ${ids[1]}`);
      expect(lastLine(r.stderr)).toBe(
        `restore.sh: the passphrase in ${ws.passFile} does not decrypt snapshot ${ids[2]} (wrong passphrase?); give the vault's passphrase file.`,
      );
      expect(databases(fresh)).toEqual(before);
      nothingLeft(t);
    });

    it("psql failing on the last delta's first statement (gpg then dies of the broken pipe): exit 1 with psql's error, the half-made copy dropped", async () => {
      const vault = copyChain('vault-failing');
      rewriteLastDelta(vault, ws.passFile, (sql) => Buffer.concat([Buffer.from('SELECT 1 / 0;\n'), sql]));
      const t = tmp('failing');
      const before = databases(fresh);
      const r = await runSh(
        path.join(vault, 'restore.sh'),
        ['--passphrase-file', ws.passFile, '--database', 'from_failing'],
        libpqEnv(fresh, t),
      );
      expect(r.code).toBe(1);
      expect(lastLine(r.stderr)).toBe(
        `restore.sh: psql failed applying ${path.join(vault, ids[2]!, 'delta.sql.gpg')} (ERROR:  division by zero); "from_failing" was not touched; fix that and run again.`,
      );
      expect(databases(fresh)).toEqual(before);
      nothingLeft(t);
    });

    it('a delta that differs from its SHA-256: exit 3 before anything is decrypted', async () => {
      const vault = copyChain('vault-damaged');
      const file = path.join(vault, ids[1]!, 'delta.sql.gpg');
      const bytes = readFileSync(file);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 1;
      writeFileSync(file, bytes);
      const t = tmp('damaged');
      const r = await runSh(
        path.join(vault, 'restore.sh'),
        ['--passphrase-file', ws.passFile, '--database', 'from_damaged'],
        libpqEnv(fresh, t),
      );
      expect(r.code).toBe(3);
      expect(lastLine(r.stderr)).toBe(
        `restore.sh: ${file} does not match the SHA-256 in its manifest (damaged or altered); restore another snapshot.`,
      );
      expect(r.stderr).not.toContain('decrypting');
      expect(databases(fresh)).not.toContain('from_damaged_incoming');
      nothingLeft(t);
    });

    it("a table whose count or hash differs from the snapshot's manifest: exit 3, nothing swapped in", async () => {
      const vault = copyChain('vault-hash');
      const dir = path.join(vault, ids[2]!);
      const m = readManifestJson(dir);
      const tables = (m.chain as { tables: Array<{ schema: string; table: string; rows: number; hash: string }> }).tables;
      const statuses = tables.find((x) => x.table === 'statuses')!;
      const real = statuses.hash;
      statuses.hash = statuses.hash === '1' ? '2' : '1';
      writeManifestJson(dir, m);
      const t = tmp('hash');
      const r = await runSh(
        path.join(vault, 'restore.sh'),
        ['--passphrase-file', ws.passFile, '--database', 'from_hash'],
        libpqEnv(fresh, t),
      );
      expect(r.code).toBe(3);
      expect(lastLine(r.stderr)).toBe(
        `restore.sh: the restored table public.statuses (${statuses.rows} rows, hash ${real}) does not match its manifest (${statuses.rows} rows, hash ${statuses.hash}); "from_hash" was not touched; restore another snapshot.`,
      );
      expect(databases(fresh).filter((d) => d.startsWith('from_hash'))).toEqual([]);
      nothingLeft(t);
    });

    it('SIGTERM while the last delta streams into psql: exit 143, gpg and psql stopped, the half-made copy and every plaintext gone', async () => {
      // A psql that hangs on the third stream, the last delta (a real one applies this fixture too fast
      // to be caught mid-way); that delta's TOASTed row is more than a pipe holds, so gpg blocks on it.
      const bin = path.join(ws.dir, 'slow-psql-bin');
      mkdirSync(bin);
      const count = path.join(ws.dir, 'streams');
      const started = path.join(ws.dir, 'stream-started');
      writeFileSync(
        path.join(bin, 'psql'),
        `#!/bin/sh
case "$*" in *"--single-transaction -d from_signal_incoming")
  echo x >> '${count}'
  if [ "$(wc -l < '${count}')" -eq 3 ]; then echo $$ > '${started}'; exec sleep 60; fi ;;
esac
exec '${fresh.binDir}/psql' "$@"
`,
        { mode: 0o755 },
      );
      const t = tmp('signal');
      const env = libpqEnv(fresh, t);
      const run = startSh(script, ['--passphrase-file', ws.passFile, '--database', 'from_signal'], { ...env, PATH: `${bin}:${env.PATH}` });
      await waitFor(
        'the last delta to start streaming',
        () => existsSync(started) && readFileSync(started, 'utf8').endsWith('\n'),
        30_000,
        50,
      );
      const psql = Number(readFileSync(started, 'utf8'));
      await waitFor('gpg to decrypt into the stream', () => gpgDecrypting(t).length === 1, 10_000, 50);
      run.child.kill('SIGTERM');
      const r = await run.result;
      expect(r.code).toBe(143);
      expect(r.stderr).toContain('stopped by SIGTERM before the restore finished; the target database was not touched');
      expect(gpgDecrypting(t)).toEqual([]);
      expect(() => process.kill(psql, 0), "the stream's psql is still running").toThrow();
      expect(databases(fresh).filter((d) => d.startsWith('from_signal'))).toEqual([]);
      nothingLeft(t);
    });
  });
});
