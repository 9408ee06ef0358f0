import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/cli/registry.js';
import { REPO } from '../../harness/env.js';

/**
 * tsc's entry, not the shipped bundle: the probe names our modules one by one. The bundle
 * (scripts/bundle.mjs) keeps each dynamic import() a chunk of its own, so it loads what these do.
 */
const CLI = path.join(REPO, 'dist/cli/main.js');
import { fakeSnapshot } from '../../harness/fake-snapshot.js';

/**
 * `permafrost --version` and `permafrost <cmd> --help` load only what they print (issue 21 item 1:
 * they loaded every command, zod, openpgp, pg, hono… — 0.5–1 s and 86 MiB). A module hook records
 * every module the CLI resolves; the time and memory this saves are measured by bench/startup.ts.
 */

const scratch = mkdtempSync(path.join(tmpdir(), 'permafrost-startup-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let runs = 0;

// Runs in node's module-hooks thread: appends each resolved URL to the file given at registration.
const HOOKS = `
import { appendFileSync } from 'node:fs';
let out;
export async function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(out, r.url + '\\n');
  return r;
}`;

/** The CLI's exit code and the modules it loaded: packages from node_modules by name, our own files relative to dist/. */
function modulesLoadedBy(args: string[]): { code: number | null; stdout: string; packages: string[]; ours: string[] } {
  const out = path.join(scratch, `modules-${++runs}.txt`);
  const register = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)}, { data: { out: ${JSON.stringify(out)} } });`;
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, CLI, ...args], {
    encoding: 'utf8',
    cwd: REPO,
  });
  const urls = [...new Set(readFileSync(out, 'utf8').split('\n').filter(Boolean))];
  const files = urls.filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u));
  const packages = new Set<string>();
  for (const f of files) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f);
    if (m) packages.add(m[1]!);
  }
  const ours = files.filter((f) => f.startsWith(path.join(REPO, 'dist') + path.sep)).map((f) => path.relative(path.join(REPO, 'dist'), f));
  return { code: r.status, stdout: r.stdout, packages: [...packages].sort(), ours: ours.sort() };
}

describe('start-up loads only what it prints', () => {
  it('the probe sees what a command run loads (it is not vacuous)', () => {
    const r = modulesLoadedBy(['list', '--vault', scratch]);
    expect(r.code).toBe(0);
    expect(r.packages).toEqual(expect.arrayContaining(['commander', 'zod', 'yaml']));
    expect(r.ours).toEqual(expect.arrayContaining(['cli/main.js', 'cli/commands/list.js', 'vault/store.js']));
  });

  it('a backup with a passphrase never loads openpgp (recipients, signatures and identities load it on use)', () => {
    const pass = path.join(scratch, 'pass');
    writeFileSync(pass, 'a passphrase long enough\n', { mode: 0o600 });
    const config = path.join(scratch, 'backup.yaml');
    writeFileSync(
      config,
      `database:\n  name: nodb\n  host: ${path.join(scratch, 'nosocket')}\nvault:\n  dir: ${path.join(scratch, 'vault')}\n  passphraseFile: ${pass}\n`,
    );
    // No server there: the run fails once it connects, after the backup's modules have loaded.
    const r = modulesLoadedBy(['--config', config, 'backup']);
    expect(r.code).toBe(1);
    expect(r.ours).toEqual(expect.arrayContaining(['ops/runs.js', 'ops/backup.js', 'crypto/keys.js']));
    expect(r.packages).toContain('pg');
    expect(r.packages).not.toContain('openpgp');
  });

  it('a full backup loads, before its dump starts, neither verify, check, the device watch, delta mode nor the steps after the commit', () => {
    const pass = path.join(scratch, 'pass-full');
    writeFileSync(pass, 'a passphrase long enough\n', { mode: 0o600 });
    const config = path.join(scratch, 'backup-full.yaml');
    mkdirSync(path.join(scratch, 'vault-full'));
    writeFileSync(
      config,
      `database:\n  name: nodb\n  host: ${path.join(scratch, 'nosocket')}\nvault:\n  dir: ${path.join(scratch, 'vault-full')}\n  passphraseFile: ${pass}\n`,
    );
    // No server there: the run fails where the capture session connects, just before the dump would start.
    const r = modulesLoadedBy(['--config', config, 'backup']);
    expect(r.code).toBe(1);
    expect(r.ours).toEqual(expect.arrayContaining(['ops/runs.js', 'ops/backup.js', 'capture/postgres.js', 'crypto/write-capture.js']));
    const unused = [
      'ops/check.js',
      'ops/verify.js',
      'ops/watch.js',
      'ops/overview.js',
      'ops/backup-delta.js',
      'ops/prune.js',
      'vault/runbook.js',
      'replicate/rescan.js',
    ];
    expect(r.ours.filter((f) => unused.includes(f))).toEqual([]);
  });

  it('a check of a vault folder never loads the S3 SDK (the bucket side is imported only for s3:// and --target)', () => {
    const vault = path.join(scratch, 'check-vault');
    fakeSnapshot(vault, '2026-12-01T08:00:00Z');
    const r = modulesLoadedBy(['check', '--vault', vault]);
    expect(r.code).toBe(0);
    expect(r.ours).toEqual(expect.arrayContaining(['ops/check.js', 'vault/storage-fs.js']));
    expect(r.ours).not.toContain('ops/check-bucket.js');
    expect(r.packages.filter((p) => p.startsWith('@aws-sdk/') || p.startsWith('@smithy/'))).toEqual([]);
  });

  it('--version alone loads no package and no command; beside --config, commander and no command', () => {
    const version = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
    const alone = modulesLoadedBy(['--version']);
    expect(alone.code).toBe(0);
    expect(alone.stdout).toBe(`${version}\n`);
    expect(alone.packages).toEqual([]);
    expect(alone.ours.filter((f) => f.startsWith('cli/commands/'))).toEqual([]);
    const withConfig = modulesLoadedBy(['--config', '/nonexistent.yaml', '--version']);
    expect(withConfig.code).toBe(0);
    expect(withConfig.stdout).toBe(`${version}\n`);
    expect(withConfig.packages).toEqual(['commander']);
    expect(withConfig.ours.filter((f) => f.startsWith('cli/commands/'))).toEqual([]);
  });

  it.each([[['--help']], [['help', 'restore']], ...Object.keys(COMMANDS).map((c) => [[c, '--help']]), [['sync', 'apply', '--help']]])(
    '%j loads no package but commander',
    (args) => {
      const r = modulesLoadedBy(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: permafrost/);
      expect(r.packages).toEqual(['commander']);
    },
  );
});
