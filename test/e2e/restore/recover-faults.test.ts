import { existsSync, readFileSync, readdirSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, startCli, type CliResult, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { parsePromText, sampleValue } from '../../harness/prom-text.js';
import { clusterPerFile } from '../../harness/suite.js';
import { holdSession, type HeldSession } from '../../harness/table-lock.js';
import { mountTmpfs, type Tmpfs } from '../../harness/tmpfs.js';

// issue 9 items 8 (temp folder faults), 12 (sessions on the restore target), 13 (last_verify_success).
const cluster = clusterPerFile('source', 'target');
let ws: Workspace | undefined;
let fs: Tmpfs | undefined;
let session: HeldSession | undefined;

afterEach(async () => {
  await session?.release();
  session = undefined;
  fs?.unmount();
  fs = undefined;
  ws?.cleanup();
  ws = undefined;
});

async function backup(w: Workspace): Promise<Manifest> {
  const r = await runCli(['--config', w.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

function databasePart(m: Manifest) {
  return m.files.find((f) => f.part === 'database')!;
}

function verifyRecords(w: Workspace): Record<string, unknown> {
  const file = path.join(w.vault, '.permafrost-verify.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { snapshots: Record<string, unknown> }).snapshots : {};
}

function databaseExists(name: string): boolean {
  return cluster.get().psql('postgres', `SELECT count(*) FROM pg_database WHERE datname = '${name}'`).trim() === '1';
}

/** Runs the CLI but gives up after `ms` (killing it), so a hang fails the test instead of stalling the suite. */
async function runWithin(ms: number, args: string[]): Promise<CliResult & { ms: number }> {
  const t0 = Date.now();
  const { child, result } = startCli(args);
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  try {
    return { ...(await result), ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

describe('a temp folder this host cannot use is exit 1 naming it, never an integrity verdict (item 8)', () => {
  it('verify and restore into a tempDir too small for the part: exit 1 with the path, the space needed and free; nothing recorded, target untouched', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const manifest = await backup(ws);
    const part = databasePart(manifest);
    fs = mountTmpfs(Math.max(16 * 1024, Math.floor(part.plainBytes / 4)));
    ws.writeConfig({ vault: { tempDir: fs.dir } });
    const free = (() => {
      const s = statfsSync(fs.dir);
      return s.bavail * s.bsize;
    })();
    expect(free).toBeLessThan(part.plainBytes);

    const v = await runCli(['--config', ws.configFile, 'verify']);
    expect(v.code, v.stderr).toBe(1);
    const sentence = errorSentence(v.stderr);
    expect(sentence).toContain(`Not enough space in vault.tempDir (${fs.dir}) to decrypt snapshot ${manifest.id}`);
    expect(sentence).toContain(`(${part.plainBytes} bytes)`);
    expect(sentence).toContain(`(${free} bytes) is free`);
    expect(v.stderr).not.toContain('integrity');
    expect(verifyRecords(ws)[manifest.id]).toBeUndefined();

    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'fresh_target']);
    expect(r.code, r.stderr).toBe(1);
    expect(errorSentence(r.stderr)).toContain(`Not enough space in vault.tempDir (${fs.dir})`);
    expect(databaseExists('fresh_target')).toBe(false);
    expect(readdirSync(fs.dir)).toEqual([]);
  });

  it("gpg running out of space while it writes (the manifest's size passed the check): exit 1, the same sentence, no ✗ recorded", async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const manifest = await backup(ws);
    const part = databasePart(manifest);
    // Understate the size so the free-space check passes and gpg itself hits ENOSPC.
    const manifestFile = path.join(ws.vault, manifest.id, 'manifest.json');
    const edited = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    databasePart(edited).plainBytes = 1;
    writeFileSync(manifestFile, JSON.stringify(edited, null, 2));
    fs = mountTmpfs(Math.max(16 * 1024, Math.floor(part.plainBytes / 4)));
    ws.writeConfig({ vault: { tempDir: fs.dir } });

    const v = await runCli(['--config', ws.configFile, 'verify']);
    expect(v.code, v.stderr).toBe(1);
    expect(errorSentence(v.stderr)).toMatch(
      new RegExp(
        `^Not enough space in vault\\.tempDir \\(${fs.dir}\\) to decrypt snapshot ${manifest.id}: database\\.pgdump\\.gpg needs .* is free; `,
      ),
    );
    expect(verifyRecords(ws)[manifest.id]).toBeUndefined();
    expect(readdirSync(fs.dir)).toEqual([]);
  });

  it('a read-only tempDir: exit 1 naming it, nothing recorded', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const manifest = await backup(ws);
    fs = mountTmpfs(1024 * 1024, { readOnly: true });
    ws.writeConfig({ vault: { tempDir: fs.dir } });
    const v = await runCli(['--config', ws.configFile, 'verify']);
    expect(v.code, v.stderr).toBe(1);
    expect(errorSentence(v.stderr)).toBe(
      `Cannot decrypt into vault.tempDir (${fs.dir}): it is on a read-only filesystem; use a writable one, or set vault.tempDir to another folder.`,
    );
    expect(verifyRecords(ws)[manifest.id]).toBeUndefined();
  });

  it('a missing tempDir is refused at config load (exit 2, key and path named)', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const missing = path.join(ws.dir, 'no-such-folder');
    ws.writeConfig({ vault: { tempDir: missing } });
    const v = await runCli(['--config', ws.configFile, 'verify']);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain(`vault.tempDir: folder ${missing} does not exist`);
  });
});

describe('restore into a database other sessions use (item 12)', () => {
  it('refuses at once naming the session, before decrypting, target unchanged; --terminate-sessions ends it and restores', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const manifest = await backup(ws);
    pg.psql('target', "UPDATE accounts SET note = 'target only'");
    session = await holdSession(pg, 'target', 'held-by-test');
    const before = fingerprint(pg, 'target');

    const r = await runWithin(20_000, ['--config', ws.configFile, 'restore', 'latest', '--database', 'target', '--force']);
    expect(r.code, `${r.stderr} (after ${r.ms} ms)`).toBe(1);
    const sentence = errorSentence(r.stderr);
    expect(sentence).toMatch(
      /^Database "target" has 1 other session \(held-by-test from local socket since \d{4}-\d\d-\d\dT[\d:.]+Z \(pid \d+\)\)/,
    );
    expect(sentence).toContain('--terminate-sessions');
    expect(r.stderr).not.toContain('decrypt');
    expect(readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'))).toEqual([]);
    expect(fingerprint(pg, 'target')).toEqual(before);

    const t = await runWithin(60_000, [
      '--config',
      ws.configFile,
      'restore',
      'latest',
      '--database',
      'target',
      '--force',
      '--terminate-sessions',
    ]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^ended session held-by-test from local socket since .* on "target"$/m);
    expect(t.stdout).toContain(`restored snapshot ${manifest.id} into database "target"`);
    expect(pg.psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'held-by-test'").trim()).toBe('0');
    expect(fingerprint(pg, 'target')).toEqual(fingerprint(pg, 'source'));
  });
});

describe('permafrost_last_verify_success follows every verify run (item 13)', () => {
  it('a CLI verify that cannot reach a verdict (wrong passphrase) sets it to 0 without marking the snapshot; the next good one sets it to 1', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const manifest = await backup(ws);
    const metric = async (): Promise<number | undefined> =>
      sampleValue(parsePromText((await runCli(['--config', ws!.configFile, 'metrics'])).stdout), 'permafrost_last_verify_success');

    expect((await runCli(['--config', ws.configFile, 'verify'])).code).toBe(0);
    expect(await metric()).toBe(1);

    const good = readFileSync(ws.passFile);
    writeFileSync(ws.passFile, 'not the passphrase\n');
    const bad = await runCli(['--config', ws.configFile, 'verify']);
    expect(bad.code).toBe(2);
    writeFileSync(ws.passFile, good);
    expect(await metric()).toBe(0);
    expect(verifyRecords(ws)[manifest.id]).toMatchObject({ ok: true });

    expect((await runCli(['--config', ws.configFile, 'verify'])).code).toBe(0);
    expect(await metric()).toBe(1);
  });
});
