import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { CLI, makeWorkspace, REPO, type CliResult, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { makeGpgKey } from '../../harness/gpg-keys.js';
import { clusterPerFile } from '../../harness/suite.js';

/**
 * permafrost as a user gets it (issue 21 item 1): `npm pack`, the tarball installed with
 * `--omit=dev` into an empty folder, and the commands run from there. Only `dependencies` are
 * installed, so a package src/ imports from devDependencies fails here, as do files the package
 * does not ship (scripts/restore.sh, which every backup copies into the vault).
 */

const { version } = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
const cluster = clusterPerFile('source');
const scratch = mkdtempSync(path.join(tmpdir(), 'permafrost-package-'));
const prefix = path.join(scratch, 'install');
const installed = path.join(prefix, 'node_modules', 'permafrost');
const bin = path.join(prefix, 'node_modules', '.bin', 'permafrost');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function npm(args: string[], cwd: string): string {
  // cwd outside the repository: no project .npmrc or package.json of ours takes part.
  const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) {
    throw new Error(
      `npm ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}\n(the install reads the npm cache first, then the registry)`,
    );
  }
  return r.stdout;
}

beforeAll(() => {
  expect(existsSync(CLI), 'run `npm run build` first: the tarball packs the built dist/').toBe(true);
  // --ignore-scripts: pack the dist/ the suite just built, without rebuilding it under the other test files running from it.
  const packed = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', scratch, REPO], scratch)) as Array<{
    filename: string;
  }>;
  const tarball = path.join(scratch, packed[0]!.filename);
  // An empty folder, as a user starts; no devDependencies (and so no typescript to build with).
  npm(['install', '--omit=dev', '--prefer-offline', '--prefix', prefix, tarball], scratch);
}, 300_000);

/** Runs the installed `permafrost` (its bin link, through its #! line), with the repository nowhere on the way. */
function permafrost(args: string[], cwd = scratch): Promise<CliResult> {
  const child = spawn(bin, args, { cwd, env: { ...process.env, NODE_PATH: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const spaces: Workspace[] = [];
afterEach(() => {
  for (const w of spaces.splice(0)) w.cleanup();
});

/** backup → list → check → restore into `database` (with `restoreArgs`), all from the installed package. */
async function roundTrip(ws: Workspace, database: string, restoreArgs: string[] = []): Promise<Manifest> {
  const b = await permafrost(['--config', ws.configFile, 'backup', '--json']);
  expect(b.code, b.stderr).toBe(0);
  const manifest = JSON.parse(b.stdout) as Manifest;
  // The stock-tools restore script travels with every vault: the package must ship it.
  expect(readFileSync(path.join(ws.vault, 'restore.sh'), 'utf8')).toBe(readFileSync(path.join(REPO, 'scripts/restore.sh'), 'utf8'));

  const l = await permafrost(['--config', ws.configFile, 'list']);
  expect(l.code, l.stderr).toBe(0);
  expect(l.stdout).toContain(manifest.id);

  const c = await permafrost(['--config', ws.configFile, 'check']);
  expect(c.code, c.stderr + c.stdout).toBe(0);

  const r = await permafrost(['--config', ws.configFile, 'restore', 'latest', '--database', database, ...restoreArgs]);
  expect(r.code, r.stderr).toBe(0);
  expect(fingerprint(cluster.get(), database)).toEqual(fingerprint(cluster.get(), 'source'));
  return manifest;
}

describe('the npm package, installed with --omit=dev from its tarball', () => {
  it('ships the built CLI and restore.sh, not the sources, tests or tooling; installs no devDependency', () => {
    const top = readdirSync(installed).sort();
    expect(top).toEqual(expect.arrayContaining(['dist', 'package.json', 'scripts']));
    for (const absent of ['src', 'test', 'bench', 'nix', 'node_modules', 'tsconfig.json']) expect(top).not.toContain(absent);
    expect(readdirSync(path.join(installed, 'scripts'))).toEqual(['restore.sh']);
    const modules = readdirSync(path.join(prefix, 'node_modules'));
    for (const dev of ['typescript', 'vitest', 'eslint', 'tsx', '@types']) expect(modules).not.toContain(dev);
    expect(modules).toEqual(expect.arrayContaining(['openpgp', 'pg', 'zod', 'commander']));
  });

  it('--version and --help run', async () => {
    const v = await permafrost(['--version']);
    expect(v.stderr).toBe('');
    expect(v.stdout.trim()).toBe(version);
    const h = await permafrost(['restore', '--help']);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/^Usage: permafrost restore /);
  });

  it('a passphrase vault: backup, list, check, restore give an equal database', async () => {
    const ws = makeWorkspace(cluster.get(), 'source');
    spaces.push(ws);
    const m = await roundTrip(ws, 'restored_passphrase');
    expect(m.files[0]!.keys).toMatchObject({ passphrase: true });
  });

  it('recipients + a signed manifest: backup, list, check, restore --identity give an equal database', async () => {
    const keys = mkdtempSync(path.join(scratch, 'keys-'));
    const admin = makeGpgKey(keys, 'admin');
    const signer = makeGpgKey(keys, 'signer');
    const ws = makeWorkspace(cluster.get(), 'source');
    spaces.push(ws);
    const recipient = path.join(ws.dir, 'admin.pub.asc');
    writeFileSync(recipient, readFileSync(admin.publicFile));
    const signingKeyFile = path.join(ws.dir, 'signing.sec.asc');
    copyFileSync(signer.secretFile, signingKeyFile);
    chmodSync(signingKeyFile, 0o600);
    rmSync(ws.passFile);
    ws.writeConfig({ vault: { passphraseFile: undefined, recipients: [recipient], signingKeyFile, signerKeyFile: signer.publicFile } });
    const m = await roundTrip(ws, 'restored_recipients', ['--identity', admin.secretFile]);
    expect(m.signedBy).toBe(signer.fingerprint);
    expect(m.files[0]!.keys).toMatchObject({ passphrase: false, recipients: [{ fingerprint: admin.fingerprint }] });
  });
});
