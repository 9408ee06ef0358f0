import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openVault } from '../../../src/vault/layout.js';
import { findSnapshot, listSnapshots, partPath, versionCopies } from '../../../src/vault/store.js';

let vault: string;
beforeEach(() => {
  vault = mkdtempSync(path.join(tmpdir(), 'permafrost-store-'));
});
afterEach(() => rmSync(vault, { recursive: true, force: true }));

const sha = (b: string): string => createHash('sha256').update(b).digest('hex');

/** A manifest naming one database part with `body`'s size and SHA-256. */
function manifest(id: string, body: string): string {
  const t = `${id.slice(0, 10)}T${id.slice(11, 19).replace(/-/g, ':')}Z`;
  return JSON.stringify({
    formatVersion: 1,
    id,
    host: 'h',
    startedAt: t,
    finishedAt: t,
    tool: { name: 'permafrost', version: '0.1.0' },
    database: { name: 'm', serverVersion: '15', pgDumpVersion: '15', compression: 'openpgp-zip:1' },
    mastodon: null,
    files: [{ part: 'database', name: 'database.pgdump.gpg', bytes: body.length, sha256: sha(body), plainBytes: 1, durationMs: 1 }],
  });
}

function put(rel: string, body: string): void {
  mkdirSync(path.dirname(path.join(vault, rel)), { recursive: true });
  writeFileSync(path.join(vault, rel), body);
}

describe("Syncthing's .stversions on a backup device", () => {
  it('a part changed after commit: partPath gives the kept copy that matches the manifest, and says it is a version', async () => {
    const id = '2026-11-26T09-40-00Z';
    put(`${id}/manifest.json`, manifest(id, 'good bytes'));
    put(`${id}/database.pgdump.gpg`, 'evil bytes');
    put(`.stversions/${id}/database.pgdump~20261126-100000.gpg`, 'good bytes');
    put(`.stversions/${id}/database.pgdump~20261126-110000.gpg`, 'other byte');
    const [s] = await listSnapshots(vault);
    const loc = await partPath(s!, 'database.pgdump.gpg');
    expect(loc.path).toBe(path.join(vault, '.stversions', id, 'database.pgdump~20261126-100000.gpg'));
    expect(loc.version?.stamp).toBe('20261126-100000');
    expect((await versionCopies(openVault(vault), id)).map((c) => c.name)).toEqual(['database.pgdump.gpg', 'database.pgdump.gpg']);
  });

  it('a sound current file is used as it is, versions or not', async () => {
    const id = '2026-11-26T09-40-00Z';
    put(`${id}/manifest.json`, manifest(id, 'good bytes'));
    put(`${id}/database.pgdump.gpg`, 'good bytes');
    put(`.stversions/${id}/database.pgdump~20261126-100000.gpg`, 'older byte');
    const [s] = await listSnapshots(vault);
    expect(await partPath(s!, 'database.pgdump.gpg')).toEqual({ path: path.join(vault, id, 'database.pgdump.gpg') });
  });

  it('a snapshot pruned on the server and kept in .stversions is listed with versions: true, found by id, never as latest', async () => {
    const kept = '2026-11-25T09-40-00Z';
    const current = '2026-11-26T09-40-00Z';
    put(`${current}/manifest.json`, manifest(current, 'now'));
    put(`${current}/database.pgdump.gpg`, 'now');
    put(`.stversions/${kept}/manifest~20261126-094100.json`, manifest(kept, 'then'));
    put(`.stversions/${kept}/database.pgdump~20261126-094100.gpg`, 'then');
    put('.stversions/2026-11-24T09-40-00Z/database.pgdump~20261125-094100.gpg', 'no manifest');
    expect((await listSnapshots(vault)).map((s) => s.id)).toEqual([current]);
    const all = await listSnapshots(vault, { versions: true });
    expect(all.map((s) => [s.id, s.versionsOnly ?? false, s.problem ?? null])).toEqual([
      [current, false, null],
      [kept, true, null],
      ['2026-11-24T09-40-00Z', true, expect.stringContaining('holds no copy of manifest.json')],
    ]);
    const found = await findSnapshot(vault, kept);
    expect(found.versionsOnly).toBe(true);
    expect((await partPath(found, 'database.pgdump.gpg')).path).toBe(
      path.join(vault, '.stversions', kept, 'database.pgdump~20261126-094100.gpg'),
    );
    expect((await findSnapshot(vault, 'latest')).id).toBe(current);
  });
});

describe('a hostile manifest.json never hangs or floods the listing', () => {
  it('a FIFO, a symlink and a 5 MiB file named manifest.json are damaged entries, read without blocking (list, check, status, doctor and backup list the vault this way)', async () => {
    const fifo = '2026-11-26T09-40-00Z';
    const link = '2026-11-26T10-40-00Z';
    const huge = '2026-11-26T11-40-00Z';
    const good = '2026-11-26T12-40-00Z';
    mkdirSync(path.join(vault, fifo));
    expect(spawnSync('mkfifo', [path.join(vault, fifo, 'manifest.json')]).status).toBe(0);
    put(`${good}/manifest.json`, manifest(good, 'good bytes'));
    put(`${good}/database.pgdump.gpg`, 'good bytes');
    mkdirSync(path.join(vault, link));
    symlinkSync(path.join(vault, good, 'manifest.json'), path.join(vault, link, 'manifest.json'));
    mkdirSync(path.join(vault, huge));
    writeFileSync(path.join(vault, huge, 'manifest.json'), '');
    truncateSync(path.join(vault, huge, 'manifest.json'), 5 * 1024 * 1024); // sparse: no RAM or disk used
    const listed = await listSnapshots(vault);
    const problem = (id: string): string | undefined => listed.find((s) => s.id === id)?.problem;
    expect(problem(fifo)).toBe(`${path.join(vault, fifo, 'manifest.json')} is not a regular file`);
    expect(problem(link)).toMatch(/manifest\.json cannot be read \(ELOOP\)$/);
    expect(problem(huge)).toBe(`${path.join(vault, huge, 'manifest.json')} is 5242880 bytes, more than any manifest (at most 4194304)`);
    expect(listed.find((s) => s.id === good)?.manifest?.id).toBe(good);
  }, 5_000);
});
