/**
 * Issue 20 item 5: every table name round-trips. A database with table and schema names holding a
 * space, quotes, a dot, a tab, a newline, unicode and upper case, names that read like a TOC
 * keyword or a qualified name, a partitioned table (partitions in two schemas, one partitioned
 * again) and an inherited table, in full and in delta mode, through all three restore paths:
 * `permafrost restore`, `permafrost verify` and the vault's restore.sh (verbatim, with dash).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, REPO, runCli, type Workspace } from '../../harness/env.js';
import { libpqEnv, readManifestJson, runSh, writeManifestJson } from '../../harness/restore-sh.js';
import { clusterPerFile } from '../../harness/suite.js';

const NAMES_SQL = readFileSync(path.join(REPO, 'test/harness/names-fixture.sql'), 'utf8');
const cluster = clusterPerFile();

/**
 * Every table of `db` outside the system schemas, keyed by [schema, table] as JSON: its kind and
 * its own rows (FROM ONLY: a parent's rows apart from its children's) as count and md5. One
 * JSON line from the server, so no name is split or re-read on the way.
 */
function contents(db: string): Record<string, string> {
  const json = cluster.get().psql(
    db,
    `SELECT coalesce(json_agg(json_build_array(n.nspname, c.relname, c.relkind::text || ' ' ||
        (xpath('/row/x/text()', query_to_xml(format('SELECT count(*) || '':'' || coalesce(md5(string_agg(t::text, ''|'' ORDER BY t::text)), '''') AS x FROM ONLY %I.%I t', n.nspname, c.relname), false, true, '')))[1]::text)), '[]')
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`,
  );
  const rows = JSON.parse(json) as Array<[string, string, string]>;
  return Object.fromEntries(rows.map(([schema, table, what]) => [JSON.stringify([schema, table]), what]));
}

/** What the matrix must hold, so a fixture that silently lost a name would not pass. */
function expectMatrix(c: Record<string, string>): void {
  const has = (schema: string, table: string, kind = 'r'): void => {
    expect(c[JSON.stringify([schema, table])], `${schema}.${table}`).toMatch(new RegExp(`^${kind} \\d+:`));
  };
  has('public', 'with space');
  has('public', 'ta\tb');
  has('public', 'new\nline');
  has('public', 'back\\slash');
  has('public', '  spaces around  ');
  has('public', '🦣 emoji');
  has('it\'s "here"', 'a "quoted" \'name\'');
  has('été 🐘', 'naïve\ttab');
  has('a.b', 'c');
  has('a', 'b.c');
  has('ATTACH', 'public parted_1');
  has('public', 'parted', 'p');
  has('public', 'parted sub', 'p');
  has('Odd Schema', 'parted 2');
  has('Odd Schema', 'inh child');
  expect(Object.keys(c).length).toBeGreaterThan(100);
  expect(c[JSON.stringify(['public', 'inh_parent'])]).toMatch(/^r 3:/);
  expect(c[JSON.stringify(['Odd Schema', 'inh child'])]).toMatch(/^r [23]:/);
}

interface Mode {
  name: 'full' | 'delta';
  db: string;
  ws: Workspace;
  /** The snapshot every restore path is run on (the delta mode one: a delta on a base). */
  id: string;
  /** The source's contents at that snapshot. */
  want: Record<string, string>;
}

async function backup(ws: Workspace): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

async function setUp(name: Mode['name']): Promise<Mode> {
  const db = `names_${name}`;
  // The Mastodon-shaped fixture too: its row counts and newest migration are checked on the way.
  cluster.createDb(db);
  cluster.get().psql(db, NAMES_SQL);
  const ws = makeWorkspace(cluster.get(), db);
  if (name === 'delta') ws.writeConfig({ database: { delta: { fullEvery: '24h' } } });
  let m = await backup(ws);
  if (name === 'delta') {
    expect(m.chain?.kind).toBe('base');
    // Changes in odd tables, a partition, a keyless table and the inheritance child, so the delta carries them.
    cluster.get().psql(
      db,
      `UPDATE public.U&"ta\\0009b" SET v = 'changed' WHERE id = 1;
       DELETE FROM "it's ""here"""."a ""quoted"" 'name'" WHERE id = 2;
       INSERT INTO public.parted VALUES (100, 2, 'into parted 2'), (101, 4, 'into parted sub 4');
       UPDATE public.parted SET v = 'moved' WHERE id = 3;
       INSERT INTO public."🦣 emoji" VALUES (9, 'keyless');
       INSERT INTO "Odd Schema"."inh child" VALUES (102, 'child 3', 'y');
       INSERT INTO a."b.c" VALUES (9, 'nine'); DELETE FROM "a.b".c WHERE id = 1;`,
    );
    m = await backup(ws);
    expect(m.chain?.kind).toBe('delta');
  }
  const want = contents(db);
  expectMatrix(want);
  return { name, db, ws, id: m.id, want };
}

const modes: Partial<Record<Mode['name'], Mode>> = {};
beforeAll(async () => {
  modes.full = await setUp('full');
  modes.delta = await setUp('delta');
}, 180_000);
afterAll(() => {
  modes.full?.ws.cleanup();
  modes.delta?.ws.cleanup();
});

describe.each(['full', 'delta'] as const)('every table name round-trips (%s mode)', (name) => {
  const mode = (): Mode => modes[name]!;

  it('permafrost verify passes', async () => {
    const { ws, id } = mode();
    const r = await runCli(['--config', ws.configFile, 'verify', id]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
  });

  it('permafrost restore brings every table back with its rows', async () => {
    const { ws, id, db, want } = mode();
    const target = `${db}_restored`;
    const r = await runCli(['--config', ws.configFile, 'restore', id, '--database', target]);
    expect(r.code, r.stderr).toBe(0);
    expect(contents(target)).toEqual(want);
  });

  it("the vault's restore.sh brings every table back with its rows", async () => {
    const { ws, id, db, want } = mode();
    const target = `${db}_sh`;
    const r = await runSh(path.join(ws.vault, 'restore.sh'), ['--passphrase-file', ws.passFile, '--database', target, id], {
      ...libpqEnv(cluster.get(), ws.dir),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(contents(target)).toEqual(want);
  });
});

/** Runs `edit` on the snapshot's manifest.json for the duration of `body`, then puts the original back. */
async function withManifest(mode: Mode, edit: (m: Record<string, unknown>) => void, body: () => Promise<void>): Promise<void> {
  const dir = path.join(mode.ws.vault, mode.id);
  const original = readFileSync(path.join(dir, 'manifest.json'));
  const m = readManifestJson(dir);
  edit(m);
  writeManifestJson(dir, m);
  try {
    await body();
  } finally {
    writeFileSync(path.join(dir, 'manifest.json'), original);
  }
}

describe.each(['full', 'delta'] as const)('a manifest made before manifests listed the tables (%s mode)', (name) => {
  it("restore, verify and restore.sh read it: the archive's table of contents is matched against the restored tables", async () => {
    const mode = modes[name]!;
    const { ws, id, db, want } = mode;
    await withManifest(
      mode,
      (m) => delete m.tables,
      async () => {
        const v = await runCli(['--config', ws.configFile, 'verify', id]);
        expect(v.code, v.stderr + v.stdout).toBe(0);
        expect(v.stdout).toMatch(/tables: all \d+ tables of the archive exist after restore/);
        const r = await runCli(['--config', ws.configFile, 'restore', id, '--database', `${db}_old`]);
        expect(r.code, r.stderr).toBe(0);
        expect(contents(`${db}_old`)).toEqual(want);
        const sh = await runSh(path.join(ws.vault, 'restore.sh'), ['--passphrase-file', ws.passFile, '--database', `${db}_old_sh`, id], {
          ...libpqEnv(cluster.get(), ws.dir),
        });
        expect(sh.code, sh.stderr).toBe(0);
        expect(contents(`${db}_old_sh`)).toEqual(want);
      },
    );
  }, 240_000);
});

describe('the tables check still fails', () => {
  it('for a table the manifest lists and the restored copy lacks: restore, verify and restore.sh exit 3 and name it, quoted', async () => {
    const mode = modes.full!;
    const { ws, id, db } = mode;
    const gone = { schema: 'Odd Schema', table: 'gone\t"table"' };
    await withManifest(
      mode,
      (m) => (m.tables = [...(m.tables as unknown[]), gone]),
      async () => {
        const shown = '"Odd Schema"."gone\\t""table"""';
        const v = await runCli(['--config', ws.configFile, 'verify', id]);
        expect(v.code).toBe(3);
        expect(errorSentence(v.stderr)).toContain(`table ${shown} of the manifest is missing after restore`);
        const r = await runCli(['--config', ws.configFile, 'restore', id, '--database', `${db}_gone`]);
        expect(r.code).toBe(3);
        expect(errorSentence(r.stderr)).toContain(`table ${shown} of the manifest is missing after restore`);
        const sh = await runSh(path.join(ws.vault, 'restore.sh'), ['--passphrase-file', ws.passFile, '--database', `${db}_gone_sh`, id], {
          ...libpqEnv(cluster.get(), ws.dir),
        });
        expect(sh.code, sh.stderr).toBe(3);
        expect(sh.stderr.trim().split('\n').at(-1)).toContain(`the restored copy has no table ${shown}, which its manifest lists`);
        const dbs = cluster.get().psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}_gone%'`);
        expect(dbs.trim()).toBe('');
      },
    );
  }, 240_000);

  it('restore.sh: a table of chain.tables the restored copy lacks (an older manifest, no tables list): exit 3 naming it', async () => {
    const mode = modes.delta!;
    const { ws, id, db } = mode;
    await withManifest(
      mode,
      (m) => {
        delete m.tables;
        const chain = m.chain as { tables: Array<Record<string, unknown>> };
        chain.tables = [...chain.tables, { schema: 'été 🐘', table: 'gone\nrow', rows: 0, hash: '0', key: null }];
      },
      async () => {
        const sh = await runSh(path.join(ws.vault, 'restore.sh'), ['--passphrase-file', ws.passFile, '--database', `${db}_chain_sh`, id], {
          ...libpqEnv(cluster.get(), ws.dir),
        });
        expect(sh.code, sh.stderr).toBe(3);
        expect(sh.stderr.trim().split('\n').at(-1)).toContain(
          'the restored copy has no table "été 🐘"."gone\\nrow", which its manifest lists',
        );
        expect(cluster.get().psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}_chain%'`).trim()).toBe('');
      },
    );
  }, 240_000);

  it('restore.sh refuses a name no catalog can hold (a forged manifest: \\u0000) with exit 3, nothing restored', async () => {
    const mode = modes.delta!;
    const { ws, id, db } = mode;
    await withManifest(
      mode,
      (m) => (m.tables = [{ schema: 'public', table: 'nul\u0000name' }]),
      async () => {
        const sh = await runSh(path.join(ws.vault, 'restore.sh'), ['--passphrase-file', ws.passFile, '--database', `${db}_nul_sh`, id], {
          ...libpqEnv(cluster.get(), ws.dir),
        });
        expect(sh.code, sh.stderr).toBe(3);
        const last = sh.stderr.trim().split('\n').at(-1);
        expect(last).toContain('manifest.json lists a table name this script cannot read (ERROR:');
        expect(last).toContain('it cannot be trusted');
        expect(cluster.get().psql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}_nul%'`).trim()).toBe('');
      },
    );
  });
});
