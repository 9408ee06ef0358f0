import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256File } from '../../../src/crypto/hash.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { backupAndDump, DELTA_EXTRA_CHURN, DELTA_EXTRA_SQL, plainRestore } from '../../harness/delta.js';
import { errorSentence, makeWorkspace, runCli, startCli, stockGpgDecrypt, type Workspace } from '../../harness/env.js';
import { mountTmpfs } from '../../harness/tmpfs.js';
import { waitFor } from '../../harness/wait.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { clusterPerFile } from '../../harness/suite.js';

// issue 22 item 1: a chain restored without replaying its deltas (recover/chain-plan.ts): the newest version of each key wins.
const cluster = clusterPerFile();
let ws: Workspace;
afterEach(() => ws?.cleanup());

let dbCounter = 0;
function deltaWorkspace(): string {
  const db = `dm${++dbCounter}`;
  cluster.createDb(db);
  cluster.get().psql(db, DELTA_EXTRA_SQL);
  ws = makeWorkspace(cluster.get(), db);
  ws.writeConfig({ database: { delta: { fullEvery: '24h' } } });
  return db;
}

/** A fresh delta workspace's base, `sql` applied to the source, then a delta backup: the delta's manifest and a plain dump of that moment. */
async function baseThenDelta(sql: string): Promise<{ db: string; manifest: Manifest; dump: string }> {
  const db = deltaWorkspace();
  await backupAndDump(cluster.get(), ws, db);
  cluster.get().psql(db, sql);
  const { manifest, dump } = await backupAndDump(cluster.get(), ws, db);
  expect(manifest.chain?.kind).toBe('delta');
  return { db, manifest, dump };
}

function expectNothingLeft(): void {
  expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  const dbs = cluster.get().psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '%\\_incoming'`).trim();
  expect(dbs).toBe('');
}

const S = '130000000000000001';
const TEXT_KEY = `E'odd\\tkey "q" \\\\ ü'`;
/** Per round (1…12): a bigint key inserted in 2, updated in 5, deleted in 9, re-inserted in 12; the same for a text and a composite key; a keyless table changed. */
function round(n: number): string {
  const sql = [`UPDATE accounts SET note = 'round ${n}' WHERE id = 1;`];
  if (n === 1) sql.push(DELTA_EXTRA_CHURN);
  if (n === 2 || n === 12) sql.push(`INSERT INTO statuses (id, text, account_id) VALUES (${S}, 'born in ${n}', 1);`);
  if (n === 5) sql.push(`UPDATE statuses SET text = E'edited in 5\\twith tab' WHERE id = ${S};`);
  if (n === 9) sql.push(`DELETE FROM statuses WHERE id = ${S};`);
  if (n === 3 || n === 11) sql.push(`INSERT INTO settings VALUES (${TEXT_KEY}, 'v${n}', NULL);`);
  if (n === 6) sql.push(`UPDATE settings SET value = 'v6' WHERE var = ${TEXT_KEY};`);
  if (n === 8) sql.push(`DELETE FROM settings WHERE var = ${TEXT_KEY};`);
  if (n === 2 || n === 10) sql.push(`INSERT INTO account_pins (account_id, target_account_id) VALUES (5, 6);`);
  if (n === 4) sql.push(`UPDATE account_pins SET created_at = '2001-01-01' WHERE account_id = 5 AND target_account_id = 6;`);
  if (n === 7) sql.push('DELETE FROM account_pins WHERE account_id = 5 AND target_account_id = 6;');
  if (n === 3) sql.push('INSERT INTO statuses_tags VALUES (7, 7), (8, 8);');
  if (n === 6) sql.push('DELETE FROM statuses_tags WHERE status_id = 7;');
  return sql.join('\n');
}

describe('a delta chain restored by merging its deltas', () => {
  it('a key inserted, updated, deleted and re-inserted across 12 deltas (bigint, text and composite keys, a keyless table) restores equal to the source, with no delta replayed', async () => {
    const db = deltaWorkspace();
    const pg = cluster.get();
    const snaps = [await backupAndDump(cluster.get(), ws, db)];
    for (let n = 1; n <= 12; n++) {
      pg.psql(db, round(n));
      snaps.push(await backupAndDump(cluster.get(), ws, db));
    }
    expect(snaps[12]!.manifest.chain?.depth).toBe(12);
    for (const i of [9, 12]) {
      const want = plainRestore(cluster.get(), snaps[i]!.dump, `${db}_ref${i}`);
      const r = await runCli(['--config', ws.configFile, 'restore', snaps[i]!.manifest.id, '--database', `${db}_r${i}`, '--jobs', '2']);
      expect(r.code, r.stderr).toBe(0);
      expect(fingerprint(pg, `${db}_r${i}`), `snapshot ${i}`).toEqual(want);
      // Merged, not replayed: no delta applied on its own, no temporary key index.
      expect(r.stderr).not.toMatch(/apply delta|key indexes/);
    }
    expect(pg.psql(`${db}_r12`, `SELECT text FROM statuses WHERE id = ${S}`).trim()).toBe('born in 12');
    expect(pg.psql(`${db}_r9`, `SELECT count(*) FROM statuses WHERE id = ${S}`).trim()).toBe('0');
    expect(pg.psql(`${db}_r12`, `SELECT value FROM settings WHERE var = ${TEXT_KEY}`).trim()).toBe('v11');
    expectNothingLeft();
  }, 600_000);

  it('a delta whose key list names a row in another spelling than the capture writes (07 for 7): the merge keeps the row, the check finds it, exit 3, the target untouched', async () => {
    const { db, manifest } = await baseThenDelta('DELETE FROM signed_keys WHERE id = 7;');
    const pg = cluster.get();

    const gnupg = mkdtempSync(path.join(tmpdir(), 'permafrost-merge-gpg-'));
    try {
      const enc = path.join(ws.vault, manifest.id, 'delta.sql.gpg');
      const plain = path.join(ws.dir, 'delta.sql');
      const d = stockGpgDecrypt(ws.passFile, enc, plain, gnupg);
      expect(d.status, d.stderr).toBe(0);
      const text = readFileSync(plain, 'utf8');
      const from = 'CREATE TEMP TABLE pf_keys (k0 integer);\nCOPY pf_keys FROM stdin;\n7\n\\.\n';
      expect(text).toContain(from);
      // A replay deletes id 7 all the same (07 = 7 as an integer); the merge compares keys as the capture writes them.
      const hostile = text.replace(from, from.replace('\n7\n', '\n07\n'));
      writeFileSync(plain, hostile);
      rmSync(enc);
      const g = spawnSync(
        'gpg',
        ['--homedir', gnupg, '--batch', '--pinentry-mode', 'loopback', '--passphrase-file', ws.passFile, '--symmetric', '-o', enc, plain],
        { encoding: 'utf8' },
      );
      expect(g.status, g.stderr).toBe(0);
      rmSync(plain);
      const mPath = path.join(ws.vault, manifest.id, 'manifest.json');
      const m = JSON.parse(readFileSync(mPath, 'utf8')) as Manifest;
      const file = m.files.find((f) => f.part === 'delta')!;
      Object.assign(file, {
        bytes: readFileSync(enc).length,
        sha256: (await sha256File(enc)).sha256,
        plainBytes: Buffer.byteLength(hostile),
      });
      writeFileSync(mPath, JSON.stringify(m, null, 2));
    } finally {
      spawnSync('gpgconf', ['--homedir', gnupg, '--kill', 'all']);
      rmSync(gnupg, { recursive: true, force: true });
    }

    pg.psql('postgres', `CREATE DATABASE ${db}_target`);
    pg.psql(`${db}_target`, `CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me')`);
    const before = fingerprint(pg, `${db}_target`);
    const r = await runCli(['--config', ws.configFile, 'restore', manifest.id, '--database', `${db}_target`, '--force', '--jobs', '2']);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toMatch(
      new RegExp(
        `^The restored copy of snapshot ${manifest.id} does not match its manifest \\(table "public"\\."signed_keys" has 6 rows with hash \\d+, the manifest says 5 rows with hash \\d+\\); database "${db}_target" was not touched`,
      ),
    );
    expect(fingerprint(pg, `${db}_target`)).toEqual(before);
    expectNothingLeft();
  }, 300_000);

  it('a chain restore killed (kill -9) while pg_restore builds post-data: the target never appears, no plaintext is left once the next run sweeps, the retry restores equal', async () => {
    const { db, manifest, dump } = await baseThenDelta(round(1));
    const pg = cluster.get();
    // pg_restore as it is, but post-data says so and hangs (living on after the kill, as after the OOM killer).
    const fake = path.join(ws.dir, 'fake-bin');
    mkdirSync(fake, { recursive: true });
    const mark = path.join(ws.dir, 'post-data-started');
    writeFileSync(
      path.join(fake, 'pg_restore'),
      `#!/bin/sh\ncase "$*" in *--section=post-data*) touch "${mark}"; exec sleep 30;; esac\nexec "${pg.binDir}/pg_restore" "$@"\n`,
    );
    chmodSync(path.join(fake, 'pg_restore'), 0o755);
    for (const tool of ['psql', 'pg_dump']) symlinkSync(path.join(pg.binDir, tool), path.join(fake, tool));
    ws.writeConfig({ database: { delta: { fullEvery: '24h' }, binDir: fake } });
    const run = startCli(['--config', ws.configFile, 'restore', manifest.id, '--database', `${db}_k`, '--jobs', '2']);
    await waitFor('the chain restore to have reached post-data', () => existsSync(mark), 60_000);
    const databases = (): string =>
      pg.psql('postgres', `SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE '${db}\\_k%'`).trim();
    expect(databases()).toBe(`${db}_k_incoming`);
    run.child.kill('SIGKILL');
    await run.result;
    expect(databases()).toBe(`${db}_k_incoming`);

    ws.writeConfig({ database: { delta: { fullEvery: '24h' } } });
    const r = await runCli(['--config', ws.configFile, 'restore', manifest.id, '--database', `${db}_k`, '--jobs', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, `${db}_k`)).toEqual(plainRestore(cluster.get(), dump, `${db}_kref`));
    // The dead run's temp folder swept, its `_incoming` dropped.
    expectNothingLeft();
  }, 300_000);

  it("a temp folder without room for the base's rows beside the deltas (a 16 MiB tmpfs): the rows are streamed into psql and the deltas replayed instead of merged, equal to the source, nothing left there", async () => {
    const { db, manifest, dump } = await baseThenDelta([1, 2, 3].map(round).join('\n'));
    const pg = cluster.get();
    expect(manifest.chain?.depth).toBe(1);
    const fs = mountTmpfs(16 * 1024 * 1024);
    try {
      ws.writeConfig({ database: { delta: { fullEvery: '24h' } }, vault: { tempDir: fs.dir } });
      const r = await runCli(['--config', ws.configFile, 'restore', manifest.id, '--database', `${db}_room`, '--jobs', '2']);
      expect(r.code, r.stderr).toBe(0);
      // Replayed: the base's rows and the delta each applied on their own (recover/chain.ts replayParts).
      expect(r.stderr).toMatch(/apply rows/);
      expect(r.stderr).toMatch(/apply delta/);
      expect(fingerprint(pg, `${db}_room`)).toEqual(plainRestore(cluster.get(), dump, `${db}_roomref`));
      expect(readdirSync(fs.dir)).toEqual([]);
    } finally {
      fs.unmount();
    }
  }, 300_000);
});
