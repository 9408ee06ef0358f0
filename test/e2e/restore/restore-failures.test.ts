import { appendFileSync, chmodSync, readFileSync, readdirSync, truncateSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

// The target already holds data (a different dataset), so any change to it would show.
const cluster = clusterPerFile('source', 'target');
let ws: Workspace;

beforeAll(() => {
  cluster.get().psql('target', "DELETE FROM follows; UPDATE accounts SET note = 'target only'");
});
afterEach(() => ws?.cleanup());

async function snapshot(): Promise<{ manifest: Manifest; file: string }> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  const manifest = JSON.parse(r.stdout) as Manifest;
  return { manifest, file: path.join(ws.vault, manifest.id, 'database.pgdump.gpg') };
}

function leftovers(): string[] {
  return readdirSync(ws.dir).filter((n) => n.startsWith('permafrost-'));
}

describe('restore refuses damaged or wrong input and leaves the target untouched', () => {
  it.each([
    [
      'one byte flipped',
      (f: string) => {
        const buf = readFileSync(f);
        const at = Math.floor(buf.length / 2);
        buf[at] = buf[at]! ^ 0x01;
        writeFileSync(f, buf);
      },
    ],
    ['truncated', (f: string) => truncateSync(f, Math.floor(statSync(f).size * 0.7))],
    [
      'one byte flipped in the header',
      (f: string) => {
        const buf = readFileSync(f);
        buf[20] = buf[20]! ^ 0x40;
        writeFileSync(f, buf);
      },
    ],
    ['garbage appended', (f: string) => appendFileSync(f, Buffer.from('trailing junk'))],
  ])('%s: fails naming the snapshot and "integrity"', async (_name, damage) => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const { manifest, file } = await snapshot();
    damage(file);
    const before = fingerprint(pg, 'target');
    const r = await runCli(['--config', ws.configFile, 'restore', manifest.id, '--database', 'target', '--force']);
    expect(r.code).toBe(3);
    const sentence = errorSentence(r.stderr);
    expect(sentence).toContain(manifest.id);
    expect(sentence).toContain('integrity');
    expect(fingerprint(pg, 'target')).toEqual(before);
    expect(leftovers()).toEqual([]);
  });

  it('wrong passphrase: one clear sentence, target unchanged', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    const { manifest } = await snapshot();
    writeFileSync(ws.passFile, 'not the passphrase\n');
    const before = fingerprint(pg, 'target');
    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'target', '--force']);
    expect(r.code).toBe(2);
    expect(errorSentence(r.stderr)).toBe(
      `Cannot decrypt snapshot ${manifest.id}: the passphrase in vault.passphraseFile is not the one it was encrypted with.`,
    );
    expect(r.stderr).not.toContain('not the passphrase');
    expect(fingerprint(pg, 'target')).toEqual(before);
    expect(leftovers()).toEqual([]);
  });

  it('a non-empty target without --force is refused and unchanged', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    await snapshot();
    const before = fingerprint(pg, 'target');
    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'target']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Database "target" is not empty .*--force/);
    expect(fingerprint(pg, 'target')).toEqual(before);
  });

  it('--force replaces a non-empty target with the snapshot', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    await snapshot();
    pg.psql('postgres', 'CREATE DATABASE forced');
    pg.psql('forced', 'CREATE TABLE accounts (id int); INSERT INTO accounts VALUES (1)');
    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'forced', '--force', '--jobs', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(fingerprint(pg, 'forced')).toEqual(fingerprint(pg, 'source'));
  });

  it('an unknown snapshot name is a user error', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const r = await runCli(['--config', ws.configFile, 'restore', '2001-01-01T00-00-00Z', '--database', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('No snapshot named 2001-01-01T00-00-00Z');
  });

  it('a world-readable passphrase file is refused with the chmod that fixes it', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    chmodSync(ws.passFile, 0o644);
    const r = await runCli(['--config', ws.configFile, 'backup']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`run \`chmod 600 ${ws.passFile}\``);
    expect(readdirSync(ws.vault)).toEqual([]);
  });
});
