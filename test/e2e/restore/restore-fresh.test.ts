import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, FIXTURE_SQL, makeWorkspace, runCli, stockGpgDecrypt, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';

// issue 10 items 1, 2, 4: a snapshot restored onto a new cluster that has none of the roles, from
// a bare copy of the vault (no config file), gives the same database including owners and grants.
let source: PgCluster;
let fresh: PgCluster;
let ws: Workspace;
let manifest: Manifest;

beforeAll(async () => {
  source = startCluster();
  source.psql(
    'postgres',
    `CREATE ROLE mastodon LOGIN CREATEDB PASSWORD 'mastodon secret';
     CREATE ROLE reader NOLOGIN;
     CREATE ROLE mastodon_readers NOLOGIN;
     GRANT mastodon_readers TO reader;
     CREATE DATABASE mastodon_production OWNER mastodon TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'`,
  );
  source.psql(
    'mastodon_production',
    `SET ROLE mastodon;\n${FIXTURE_SQL}\n
     GRANT SELECT ON accounts, statuses TO reader;
     GRANT USAGE ON SCHEMA public TO reader;
     ALTER DEFAULT PRIVILEGES FOR ROLE mastodon IN SCHEMA public GRANT SELECT ON TABLES TO mastodon_readers;`,
  );
  ws = makeWorkspace(source, 'mastodon_production');
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  manifest = JSON.parse(r.stdout) as Manifest;
  fresh = startCluster();
});

afterAll(() => {
  ws?.cleanup();
  if (source) destroyCluster(source);
  if (fresh) destroyCluster(fresh);
});

/** Owners and ACLs by name: relations, schemas, default ACLs, the database. */
function owners(pg: PgCluster, db: string): string {
  return pg.psql(
    db,
    `SELECT 'rel ' || c.relname || ' ' || pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, '-') FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
     UNION ALL SELECT 'nsp ' || nspname || ' ' || pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '-') FROM pg_namespace WHERE nspname = 'public'
     UNION ALL SELECT 'defacl ' || pg_get_userbyid(defaclrole) || ' ' || defaclacl::text FROM pg_default_acl
     UNION ALL SELECT 'db ' || pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype
       FROM pg_database WHERE datname = current_database()
     ORDER BY 1`,
  );
}

/** The CLI with no config file at all (the workspace's permafrost.yaml is not in its folder): only the vault copy and libpq's variables. */
function bare(pg: PgCluster, args: string[]) {
  return runCli(args, {
    cwd: ws.vault,
    env: {
      PERMAFROST_CONFIG: '',
      PGHOST: pg.socketDir,
      PGPORT: String(pg.port),
      PGUSER: pg.user,
      PATH: `${pg.binDir}:${process.env.PATH}`,
    },
  });
}

describe('the roles part and the database facts', () => {
  it('the manifest records owner, encoding and locale; the roles part is SQL that creates only missing roles', () => {
    expect(manifest.database).toMatchObject({
      owner: 'mastodon',
      encoding: 'UTF8',
      collate: 'C',
      ctype: 'C.UTF-8',
      localeProvider: 'libc',
      iculocale: null,
    });
    expect(manifest.files.map((f) => f.part)).toContain('roles');
    const out = path.join(ws.dir, 'roles.sql');
    const d = stockGpgDecrypt(ws.passFile, path.join(ws.vault, manifest.id, 'roles.sql.gpg'), out, path.join(ws.dir, 'gnupg'));
    expect(d.status, d.stderr).toBe(0);
    const sql = readFileSync(out, 'utf8');
    expect(sql).toContain('CREATE ROLE "mastodon" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN');
    expect(sql).toMatch(/PASSWORD 'SCRAM-SHA-256\$/);
    expect(sql).toContain('CREATE ROLE "reader"');
    expect(sql).toContain('CREATE ROLE "mastodon_readers"');
    expect(sql).toContain('GRANT "mastodon_readers" TO "reader"');
  });
});

describe('restore onto a fresh cluster from a vault copy, with no config', () => {
  it('list --vault, check --vault and verify --vault work with libpq variables alone', async () => {
    const l = await bare(fresh, ['list', '--vault', ws.vault]);
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toContain(manifest.id);
    const c = await bare(fresh, ['check', '--vault', ws.vault]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toBe(`✓ ${manifest.id}\n`);
    const v = await bare(fresh, ['verify', '--vault', ws.vault, '--passphrase-file', ws.passFile]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain(`snapshot ${manifest.id} verified`);
  });

  it('creates the missing roles and the database (owner, encoding, locale); owners and ACLs equal the source; an existing role is not altered', async () => {
    fresh.psql('postgres', 'CREATE ROLE reader LOGIN CONNECTION LIMIT 3');
    const r = await bare(fresh, ['restore', 'latest', '--vault', ws.vault, '--passphrase-file', ws.passFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('created roles mastodon, mastodon_readers');
    expect(r.stdout).toContain(`restored snapshot ${manifest.id} into database "mastodon_production" (created)`);
    // An unsigned vault restores, saying that nothing proves who wrote it (issue 20 item 1).
    expect(r.stderr).toContain(`warning: this vault's manifests are not signed, so nothing proves who wrote snapshot ${manifest.id}`);
    expect(fingerprint(fresh, 'mastodon_production')).toEqual(fingerprint(source, 'mastodon_production'));
    expect(owners(fresh, 'mastodon_production')).toEqual(owners(source, 'mastodon_production'));
    // The existing reader keeps its own attributes and gets no membership it did not have.
    expect(fresh.psql('postgres', "SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = 'reader'").trim()).toBe('t|3');
    expect(fresh.psql('postgres', "SELECT count(*) FROM pg_auth_members WHERE member = 'reader'::regrole").trim()).toBe('0');
    // The created role has the source's attributes and password hash.
    const role = "SELECT rolcanlogin || ' ' || rolcreatedb || ' ' || rolpassword FROM pg_authid WHERE rolname = 'mastodon'";
    expect(fresh.psql('postgres', role)).toEqual(source.psql('postgres', role));
    expect(fresh.psql('postgres', "SELECT datname FROM pg_database WHERE datname LIKE 'mastodon_production_%'").trim()).toBe('');
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
  });

  it('--no-owner --role NAME gives every object and the database to that role', async () => {
    fresh.psql('postgres', 'CREATE ROLE app LOGIN');
    const r = await bare(fresh, [
      'restore',
      'latest',
      '--vault',
      ws.vault,
      '--passphrase-file',
      ws.passFile,
      '--database',
      'as_app',
      '--no-owner',
      '--role',
      'app',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const owners = fresh.psql(
      'as_app',
      `SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
       UNION SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'as_app'`,
    );
    expect(owners.trim()).toBe('app');
    expect(fingerprint(fresh, 'as_app')).toEqual(fingerprint(source, 'mastodon_production'));
  });

  it('wrong or missing flags: exit 2, one sentence', async () => {
    const noPass = await bare(fresh, ['restore', 'latest', '--vault', ws.vault, '--database', 'x']);
    expect(noPass.code).toBe(2);
    expect(errorSentence(noPass.stderr)).toMatch(/pass --passphrase-file FILE/);
    const noVault = await bare(fresh, ['list', '--vault', path.join(ws.dir, 'nope')]);
    expect(noVault.code).toBe(2);
    expect(errorSentence(noVault.stderr)).toMatch(/^--vault: .*nope is not a folder/);
    const role = await bare(fresh, ['restore', '--vault', ws.vault, '--passphrase-file', ws.passFile, '--database', 'x', '--role', 'app']);
    expect(role.code).toBe(2);
    expect(errorSentence(role.stderr)).toContain('--role NAME goes with --no-owner');
    const wrong = path.join(ws.dir, 'wrong-passphrase');
    writeFileSync(wrong, 'not the passphrase\n', { mode: 0o600 });
    const bad = await bare(fresh, ['restore', '--vault', ws.vault, '--passphrase-file', wrong, '--database', 'x']);
    expect(bad.code).toBe(2);
    expect(errorSentence(bad.stderr)).toBe(
      `Cannot decrypt snapshot ${manifest.id}: the passphrase in --passphrase-file ${wrong} is not the one it was encrypted with.`,
    );
    const long = await bare(fresh, ['restore', '--vault', ws.vault, '--passphrase-file', ws.passFile, '--database', 'x'.repeat(50)]);
    expect(long.code).toBe(2);
    expect(errorSentence(long.stderr)).toMatch(/too long: restore needs room for/);
  });

  it("a server that is not there: exit 1 naming libpq's variables", async () => {
    const r = await runCli(['restore', '--vault', ws.vault, '--passphrase-file', ws.passFile, '--database', 'x'], {
      cwd: ws.vault,
      env: { PERMAFROST_CONFIG: '', PGHOST: path.join(ws.dir, 'no-socket'), PGUSER: fresh.user },
    });
    expect(r.code).toBe(1);
    expect(errorSentence(r.stderr)).toMatch(/PGHOST, PGPORT, PGUSER and PGPASSFILE/);
  });
});
