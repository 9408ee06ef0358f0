import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { destroyCluster, startCluster, type PgCluster } from './postgres.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The executable as shipped (package.json bin): the bundle scripts/bundle.mjs makes of dist/cli/main.js. */
export const CLI = path.join(REPO, 'dist/bin/permafrost.js');
export const FIXTURE_SQL = readFileSync(path.join(REPO, 'test/harness/mastodon-fixture.sql'), 'utf8');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would, capturing exit code and both streams. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return startCli(args, opts).result;
}

/** Starts the CLI without waiting, for tests that kill it or race it. */
export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, result };
}

/** Starts `permafrost daemon`; `lines()` parses what it logged so far (every stdout line is one JSON object). */
export function startDaemonLog(configFile: string) {
  const d = startCli(['--config', configFile, 'daemon']);
  let out = '';
  d.child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const lines = (): Array<Record<string, unknown>> =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { ...d, lines };
}

/** A temp folder per test with a config, a vault and a passphrase file (0600). */
export interface Workspace {
  dir: string;
  vault: string;
  passFile: string;
  configFile: string;
  /** Rewrites the config; `extra` is merged at top level, `database` overrides keys of the database section. */
  writeConfig(over?: { database?: Record<string, unknown>; vault?: Record<string, unknown>; extra?: Record<string, unknown> }): string;
  cleanup(): void;
}

let counter = 0;

export function makeWorkspace(pg: PgCluster | null, dbName: string): Workspace {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-test-'));
  chmodSync(dir, 0o755);
  const vault = path.join(dir, 'vault');
  mkdirSync(vault);
  const passFile = path.join(dir, 'passphrase');
  writeFileSync(passFile, `correct horse battery staple ${++counter}\n`, { mode: 0o600 });
  const configFile = path.join(dir, 'permafrost.yaml');
  const ws: Workspace = {
    dir,
    vault,
    passFile,
    configFile,
    writeConfig(over = {}) {
      const config = {
        ...(pg
          ? { database: { name: dbName, host: pg.socketDir, port: pg.port, user: pg.user, binDir: pg.binDir, ...over.database } }
          : {}),
        vault: { dir: vault, passphraseFile: passFile, tempDir: dir, ...over.vault },
        ...over.extra,
      };
      writeFileSync(configFile, stringify(config));
      return configFile;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  ws.writeConfig();
  return ws;
}

/** One cluster per test file: some tests stop the server, which must not hit other files. */
export class ClusterFixture {
  private pg: PgCluster | undefined;

  get(): PgCluster {
    this.pg ??= startCluster();
    return this.pg;
  }

  /** Creates a database, loaded with the Mastodon-shaped fixture unless `withFixture` is false. */
  createDb(name: string, withFixture = true): void {
    const c = this.get();
    c.psql('postgres', `CREATE DATABASE ${name}`);
    if (withFixture) c.psql(name, FIXTURE_SQL);
  }

  destroy(): void {
    if (this.pg) destroyCluster(this.pg);
    this.pg = undefined;
  }
}

/** Decrypts with stock gpg exactly as the README tells a user without permafrost to do. */
export function stockGpgDecrypt(passFile: string, input: string, output: string, gnupgHome: string) {
  mkdirSync(gnupgHome, { recursive: true, mode: 0o700 });
  return spawnSync('gpg', ['-d', '--batch', '--passphrase-file', passFile, '--output', output, input], {
    encoding: 'utf8',
    env: { ...process.env, GNUPGHOME: gnupgHome },
  });
}

/** The one-sentence error the CLI printed (the line starting with "permafrost: "), without the prefix. */
export function errorSentence(stderr: string): string {
  const line = stderr.split('\n').find((l) => l.startsWith('permafrost: '));
  return line ? line.slice('permafrost: '.length) : '';
}
