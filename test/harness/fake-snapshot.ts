/**
 * Hand-made snapshot folders (full, or of a database.delta chain) whose files match their
 * manifests, so `check` passes on them until a test breaks one: for retention, check and list
 * tests that need snapshots at chosen dates, which the CLI cannot make.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PART_FILE, type Chain, type Manifest } from '../../src/vault/manifest.js';
import { snapshotIdFor } from '../../src/vault/store.js';

const DDL = 'd'.repeat(64);

/**
 * Writes snapshot `iso` into the vault `dir`, as `backup` would have left it then: a full snapshot
 * (a `database` part) without `on`, a base when `on` is null, else a delta on `on`.
 */
export function fakeSnapshot(dir: string, iso: string, on?: Manifest | null): Manifest {
  const id = snapshotIdFor(new Date(iso));
  const folder = path.join(dir, id);
  mkdirSync(folder, { recursive: true });
  const parts = on === undefined ? (['database'] as const) : on ? (['delta'] as const) : (['schema', 'rows'] as const);
  const files = parts.map((part) => {
    const bytes = Buffer.from(`${part} of ${id}\n`);
    writeFileSync(path.join(folder, PART_FILE[part]), bytes);
    return {
      name: PART_FILE[part],
      part,
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      plainBytes: bytes.length,
      durationMs: 1,
    };
  });
  const chain: Chain | undefined =
    on === undefined
      ? undefined
      : on?.chain
        ? { kind: 'delta', base: on.chain.base, reference: on.id, depth: on.chain.depth + 1, ddl: DDL, tables: [] }
        : { kind: 'base', base: id, reference: null, depth: 0, ddl: DDL, tables: [], reason: 'first' };
  const manifest: Manifest = {
    formatVersion: 1,
    id,
    startedAt: iso,
    finishedAt: iso,
    tool: { name: 'permafrost', version: '0.0.0-test' },
    host: 'test',
    database: { name: 'source', serverVersion: '16', pgDumpVersion: '16', compression: '1' },
    mastodon: null,
    files,
    ...(chain ? { chain } : {}),
  };
  writeFileSync(path.join(folder, 'manifest.json'), JSON.stringify(manifest));
  return manifest;
}

/** Hourly snapshots from `start`, `count` of them, a new base every `baseEvery`; oldest first. */
export function fakeChain(dir: string, start: string, count: number, baseEvery: number): Manifest[] {
  const out: Manifest[] = [];
  for (let i = 0; i < count; i++) {
    const iso = new Date(Date.parse(start) + i * 3_600_000).toISOString();
    out.push(fakeSnapshot(dir, iso, i % baseEvery === 0 ? null : out.at(-1)!));
  }
  return out;
}

/**
 * Moves snapshot `id` out of the vault into `.stversions/<id>/` under Syncthing's simple-versioning
 * names (`delta.sql~20261201-130000.gpg`), as a device's Syncthing does when the server prunes it.
 */
export function moveToVersions(vault: string, id: string, stamp = '20261201-130000'): void {
  const from = path.join(vault, id);
  const to = path.join(vault, '.stversions', id);
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const dot = name.lastIndexOf('.');
    renameSync(path.join(from, name), path.join(to, `${name.slice(0, dot)}~${stamp}${name.slice(dot)}`));
  }
  rmdirSync(from);
}
