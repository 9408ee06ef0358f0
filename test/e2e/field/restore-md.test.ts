/**
 * RESTORE.md's commands, extracted from the rendered file and run verbatim in a root shell, onto
 * fresh clusters set up as Debian sets them up: peer authentication on the socket, so only the
 * postgres OS user is the superuser, and a vault copy only root can read (0750, as the vault
 * folders are). /root is a private tmpfs (a mount namespace), so /root/passphrase is the test's own.
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, makeWorkspace, runCli, type CliResult, type Workspace } from '../../harness/env.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import { createOwnedSource } from '../../harness/restore-sh.js';

let source: PgCluster;
let ws: Workspace;
let md: string;
let dir: string;
let bin: string;
const fresh: PgCluster[] = [];

beforeAll(async () => {
  source = startCluster();
  createOwnedSource(source, 'mastodon_production');
  ws = makeWorkspace(source, 'mastodon_production');
  const r = await runCli(['--config', ws.configFile, 'backup']);
  expect(r.code, r.stderr).toBe(0);
  md = readFileSync(path.join(ws.vault, 'RESTORE.md'), 'utf8');
  dir = mkdtempSync(path.join(tmpdir(), 'permafrost-restore-md-'));
  chmodSync(dir, 0o755);
  // `permafrost` on PATH, as an installed one is.
  bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'permafrost'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
}, 120_000);

afterAll(() => {
  for (const c of fresh) destroyCluster(c);
  if (source) destroyCluster(source);
  ws?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The indented code block of RESTORE.md whose first line matches `first`, as its lines. */
function block(first: RegExp): string[] {
  const blocks: string[][] = [];
  let current: string[] | null = null;
  for (const line of md.split('\n')) {
    if (line.startsWith('    ')) (current ??= []).push(line.slice(4));
    else if (line.trim() !== '' || current === null) {
      if (current) blocks.push(current);
      current = null;
    }
  }
  if (current) blocks.push(current);
  const found = blocks.find((b) => first.test(b[0]!));
  if (!found) throw new Error(`RESTORE.md has no code block starting like ${first}:\n${md}`);
  return found;
}

/** A copy of the vault only root can read, as the vault's folders are (0750, root). */
function vaultCopy(name: string): string {
  const copy = path.join(dir, name);
  cpSync(ws.vault, copy, { recursive: true });
  chmodSync(copy, 0o750);
  return copy;
}

/** Runs `lines` in a root shell in `cwd`, with /root a private tmpfs and the passphrase typed on stdin. */
function rootShell(lines: string[], cwd: string, pg: PgCluster): Promise<CliResult> {
  const script = ['set -e', 'mount -t tmpfs -o mode=0700 tmpfs /root', `cd ${cwd}`, ...lines].join('\n');
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
    env: {
      // What a root shell on Debian has: libpq's socket default (here the fresh cluster's) and the tools on PATH.
      PATH: `${pg.binDir}:${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOME: '/root',
      LANG: 'C.UTF-8',
      PGHOST: pg.socketDir,
      PGPORT: String(pg.port),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(readFileSync(ws.passFile));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function restored(pg: PgCluster): { owner: string; accounts: string } {
  const owner = pg.psql('postgres', "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mastodon_production'").trim();
  return { owner, accounts: pg.psql('mastodon_production', 'SELECT count(*) FROM accounts').trim() };
}

const passphraseLine = () => block(/^umask 077; cat > \/root\/passphrase/)[0]!;
const want = () => ({ owner: 'mastodon', accounts: source.psql('mastodon_production', 'SELECT count(*) FROM accounts').trim() });

describe("RESTORE.md's commands, verbatim, onto a fresh Debian cluster (peer authentication)", () => {
  it('with restore.sh, as root: the vault and the passphrase stay root-only, psql and pg_restore run as postgres', async () => {
    const pg = startCluster(5432, { peer: true });
    fresh.push(pg);
    const lines = [passphraseLine(), block(/^sh restore\.sh --passphrase-file \/root\/passphrase/)[0]!];
    expect(lines[1]).toBe('sh restore.sh --passphrase-file /root/passphrase            # the newest snapshot');
    const r = await rootShell(lines, vaultCopy('copy-sh'), pg);
    expect(r.stderr).toContain('restored snapshot');
    expect(r.code, r.stderr).toBe(0);
    expect(restored(pg)).toEqual(want());
  });

  it('by hand with stock commands', async () => {
    const pg = startCluster(5432, { peer: true });
    fresh.push(pg);
    const lines = [passphraseLine(), 'SNAP=$(ls -1d 20*Z | tail -n 1)', ...block(/^umask 077$/)];
    expect(lines.join('\n')).toContain('runuser -u postgres -- pg_restore --exit-on-error -d mastodon_production < /root/db.pgdump');
    const r = await rootShell(lines, vaultCopy('copy-hand'), pg);
    expect(r.code, r.stderr).toBe(0);
    expect(restored(pg)).toEqual(want());
  });

  it('with restore.sh run as postgres where it can read the folder, the passphrase on standard input (--passphrase-file -)', async () => {
    const pg = startCluster(5432, { peer: true });
    fresh.push(pg);
    const inline = /`(runuser -u postgres -- sh restore\.sh --passphrase-file - < \/root\/passphrase)`/.exec(md.replace(/\n/g, ' '))?.[1];
    expect(inline).toBeDefined();
    const lines = [passphraseLine(), block(/^chgrp -R postgres \. /)[0]!, inline!];
    const r = await rootShell(lines, vaultCopy('copy-sh-postgres'), pg);
    expect(r.code, r.stderr).toBe(0);
    expect(restored(pg)).toEqual(want());
  });

  it('with permafrost, run as postgres on a copy it can read, the passphrase on standard input', async () => {
    const pg = startCluster(5432, { peer: true });
    fresh.push(pg);
    const lines = [passphraseLine(), ...block(/^chgrp -R postgres \. /)];
    expect(lines[2]).toBe('runuser -u postgres -- permafrost restore --vault "$PWD" --passphrase-file - < /root/passphrase');
    const r = await rootShell(lines, vaultCopy('copy-permafrost'), pg);
    expect(r.code, r.stderr).toBe(0);
    expect(restored(pg)).toEqual(want());
  });
});
