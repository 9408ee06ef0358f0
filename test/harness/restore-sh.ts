/**
 * For the tests of the vault's restore.sh: a source database owned by `mastodon` with grants to a
 * second role, manifest edits in the writer's layout, and running the script verbatim with dash.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FIXTURE_SQL } from './env.js';
import type { PgCluster } from './postgres.js';

/** The roles the source database uses: its owner (with a password) and a read-only grantee it is a member of. */
const SOURCE_ROLES = `
CREATE ROLE mastodon LOGIN PASSWORD 'mastodon-secret';
CREATE ROLE mastodon_ro NOLOGIN;
GRANT mastodon_ro TO mastodon;
`;

/** Creates `db` owned by mastodon, the fixture loaded as mastodon, and grants to mastodon_ro (plain and default). */
export function createOwnedSource(pg: PgCluster, db: string): void {
  pg.psql('postgres', SOURCE_ROLES);
  pg.psql('postgres', `CREATE DATABASE ${db} OWNER mastodon TEMPLATE template0`);
  pg.psql(db, `SET ROLE mastodon;\n${FIXTURE_SQL}`);
  pg.psql(
    db,
    `SET ROLE mastodon;
     GRANT SELECT ON accounts, statuses TO mastodon_ro;
     GRANT USAGE ON SEQUENCE accounts_id_seq TO mastodon_ro;
     ALTER DEFAULT PRIVILEGES FOR ROLE mastodon IN SCHEMA public GRANT SELECT ON TABLES TO mastodon_ro;`,
  );
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Stock gpg in a throwaway home; throws with its stderr when it fails. */
export function gpg(args: string[], home?: string): void {
  const gnupg = home ?? mkdtempSync(path.join(tmpdir(), 'permafrost-test-gnupg-'));
  const r = spawnSync('gpg', ['--homedir', gnupg, '--batch', '--quiet', ...args], { encoding: 'utf8' });
  if (!home) rmSync(gnupg, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`);
}

type ManifestJson = { files: Array<{ name: string; part: string; bytes: number; sha256: string; plainBytes: number }> } & Record<
  string,
  unknown
> & { database: Record<string, unknown> };

/** Reads a snapshot's manifest.json. */
export function readManifestJson(snapshotDir: string): ManifestJson {
  return JSON.parse(readFileSync(path.join(snapshotDir, 'manifest.json'), 'utf8')) as ManifestJson;
}

/** Writes manifest.json in the writer's layout (JSON.stringify with 2 spaces and a final newline). */
export function writeManifestJson(snapshotDir: string, m: ManifestJson): void {
  writeFileSync(path.join(snapshotDir, 'manifest.json'), `${JSON.stringify(m, null, 2)}\n`);
}

/** Records `file` (already in the snapshot folder) as `part` in the manifest: size and SHA-256 of the ciphertext. */
export function recordPart(snapshotDir: string, part: string, file: string, plainBytes: number): void {
  const m = readManifestJson(snapshotDir);
  const entry = {
    name: file,
    part,
    bytes: statSync(path.join(snapshotDir, file)).size,
    sha256: sha256(path.join(snapshotDir, file)),
    plainBytes,
    durationMs: 0,
  };
  m.files = [...m.files.filter((f) => f.part !== part), entry];
  writeManifestJson(snapshotDir, m);
}

export interface ShResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** libpq's variables for `pg`, and its bin folder first on PATH, as an admin on that server would have them. */
export function libpqEnv(pg: PgCluster, tmp: string): NodeJS.ProcessEnv {
  return { PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: pg.user, PATH: `${pg.binDir}:${process.env.PATH}`, TMPDIR: tmp };
}

/** Starts `dash SCRIPT ARGS…` (the file itself, verbatim) with `env` added to a clean environment. */
export function startSh(script: string, args: string[], env: NodeJS.ProcessEnv) {
  const clean: NodeJS.ProcessEnv = { HOME: process.env.HOME, LANG: 'C.UTF-8', ...env };
  const child = spawn('dash', [script, ...args], { env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const result = new Promise<ShResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, result };
}

/** Runs `dash SCRIPT ARGS…` to the end. */
export function runSh(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<ShResult> {
  return startSh(script, args, env).result;
}

/** Every file under `root` holding the custom-format dump's magic `PGDMP` (plaintext left behind). */
export function plaintextDumps(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && readFileSync(p).includes('PGDMP')) found.push(p);
    }
  };
  walk(root);
  return found;
}
