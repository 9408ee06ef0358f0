import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HASH_SESSION_SQL, tableHashSql } from '../../src/capture/delta-sql.js';
import type { Manifest } from '../../src/vault/manifest.js';
import { DELTA_EXTRA_SQL, stockChainRestore } from '../harness/delta.js';
import { makeWorkspace, runCli, type Workspace } from '../harness/env.js';
import { fingerprint } from '../harness/fingerprint.js';
import { clusterPerFile } from '../harness/suite.js';

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
      // The count and hash the manifest records are what the shared SQL computes on the restored copy.
      for (const t of s.manifest.chain!.tables) {
        const out = pg
          .psql(`${db}_r${i}`, `${HASH_SESSION_SQL} ${tableHashSql(t.schema, t.table)}`)
          .trim()
          .split('\n')
          .pop()!;
        expect(out.split('|'), `${t.table} in snapshot ${i}`).toEqual([String(t.rows), t.hash]);
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
    pg.psql(db, `UPDATE accounts SET note = 'changed' WHERE username = 'alice'`);
    const keysFile = readdirSync(state).find((f) => f.endsWith('.keys') && statSync(path.join(state, f)).size > 0)!;
    const text = readFileSync(path.join(state, keysFile), 'latin1').split('\n');
    text.splice(1, 1);
    writeFileSync(path.join(state, keysFile), text.join('\n'));
    r = await backup();
    expect(r.manifest.chain?.kind).toBe('base');
    expect(r.stderr).toMatch(/made a base instead of a delta: its delta state for .* is not the one recorded/);
    expect(readdirSync(path.join(ws.vault, r.manifest.id))).not.toContain('delta.sql.gpg');

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
