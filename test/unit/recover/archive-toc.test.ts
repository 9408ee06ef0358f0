import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encryptOpenPgpStream, skeskPacket } from '../../../src/crypto/openpgp-stream.js';
import { decryptVerifiedPart, privateTemp, vaultTempBase } from '../../../src/recover/decrypt.js';
import { runContext } from '../../../src/run-context.js';
import type { ManifestFile } from '../../../src/vault/manifest.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';
import { followArchive, GrowingFile, scanArchive, type ArchiveLayout } from '../../../src/recover/archive-toc.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { clusterPerFile } from '../../harness/suite.js';

const pg = clusterPerFile();
const root = mkdtempSync(path.join(tmpdir(), 'permafrost-archive-toc-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Every kind of entry the offsets concern: rows (many chunks), none, excluded data, sequences, partitions, large objects, unicode. */
const SOURCE_SQL = `
CREATE TABLE statuses (id bigserial PRIMARY KEY, body text NOT NULL);
INSERT INTO statuses (body) SELECT repeat(md5(g::text), 1 + g % 5) FROM generate_series(1, 20000) g;
CREATE TABLE empty_one (id int);
CREATE TABLE skipped (id int);
INSERT INTO skipped SELECT generate_series(1, 50);
CREATE SEQUENCE lonely_seq START 42;
SELECT nextval('lonely_seq');
CREATE TABLE events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events SELECT DATE '2025-06-01' + (g % 400), 'e' || g FROM generate_series(1, 3000) g;
CREATE TABLE "tête_ü表" ("naïve ☃" text);
INSERT INTO "tête_ü表" VALUES ('crème brûlée'), ('日本語');
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8'));
SELECT lo_from_bytea(0, '\\x00ff'::bytea);
CREATE INDEX ON statuses (body);
CREATE MATERIALIZED VIEW status_count AS SELECT count(*) AS n FROM statuses;
`;

/** pg_dump -Fc -Z0 of `db` written to a pipe, as a backup writes it: no offsets in its table of contents. */
function dumpThroughPipe(db: string, extra: string[] = []): Buffer {
  const c = pg.get();
  const r = spawnSync(path.join(c.binDir, 'pg_dump'), ['-Fc', '-Z0', ...extra, '-h', c.socketDir, '-p', String(c.port), '-U', c.user, db], {
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  return r.stdout;
}

function pgTool(name: string, args: string[]): string {
  const c = pg.get();
  const r = spawnSync(path.join(c.binDir, name), [...args], {
    encoding: 'utf8',
    env: { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user },
  });
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** pg_restore -l without its header (which names the file's creation time): the entries as pg_restore reads them. */
const listing = (file: string): string => pgTool('pg_restore', ['-l', file]).replace(/^;.*\n/gm, '');

async function scanFile(file: string): Promise<ArchiveLayout> {
  const fh = await open(file, 'r');
  try {
    const g = new GrowingFile(fh);
    g.end((await fh.stat()).size);
    return await scanArchive(g, 4096);
  } finally {
    await fh.close();
  }
}

/** Follows a copy of `bytes` written in pieces (as gpg writes), finishes, and returns the file. */
async function indexCopy(bytes: Buffer, name: string, pieces = 1): Promise<{ file: string; patched: number }> {
  const file = path.join(root, name);
  const indexer = followArchive(file);
  const fh = await open(file, 'wx', 0o600);
  const step = Math.ceil(bytes.length / pieces);
  for (let at = 0; at < bytes.length; at += step) {
    await fh.write(bytes, at, Math.min(step, bytes.length - at), at);
    await new Promise((r) => setTimeout(r, 5));
  }
  await fh.close();
  return { file, patched: await indexer.finish(bytes.length) };
}

const offsetsOf = (l: ArchiveLayout): Record<string, number | null> =>
  Object.fromEntries(l.entries.map((e) => [`${e.dumpId} ${e.desc} ${e.tag}`, e.flag === 2 ? e.position : e.flag === 3 ? -1 : null]));

describe('data offsets of a custom archive written through a pipe', () => {
  let piped: Buffer;
  beforeAll(() => {
    pg.createDb('src', false);
    pg.get().psql('src', SOURCE_SQL);
    piped = dumpThroughPipe('src', ['--exclude-table-data=skipped']);
  });

  it('finds every data block, and writes exactly the offsets pg_dump writes to a seekable file', async () => {
    const before = await scanFile(writeTo('piped.dump', piped));
    const withData = before.entries.filter((e) => e.flag !== 3);
    // As pg_dump left it: every entry with data says "not set" (what pg_restore -j has to scan for).
    expect(withData.every((e) => e.flag === 1)).toBe(true);
    // One block per table with rows dumped (the empty one too) and one for the large objects; the
    // excluded table, the partitioned parent, sequences and the matview have none.
    expect(withData.map((e) => `${e.desc} ${e.tag}`).sort()).toEqual([
      'BLOBS BLOBS',
      'TABLE DATA empty_one',
      'TABLE DATA events_2025',
      'TABLE DATA events_2026',
      'TABLE DATA statuses',
      'TABLE DATA tête_ü表',
    ]);
    expect([...before.blocks.keys()].sort()).toEqual(withData.map((e) => e.dumpId).sort());
    expect(before.entries.filter((e) => e.desc === 'SEQUENCE SET' || e.tag === 'skipped').map((e) => e.flag)).toEqual([3, 3, 3]);

    const { file, patched } = await indexCopy(piped, 'patched.dump', 37);
    expect(patched).toBe(before.blocks.size);
    const after = await scanFile(file);
    expect(after.entries.filter((e) => e.flag === 1)).toEqual([]);
    // Nothing but the offset fields changed: same length, same listing.
    expect(readFileSync(file).length).toBe(piped.length);
    expect(listing(file)).toBe(listing(writeTo('piped-again.dump', piped)));

    // pg_dump to a file (seekable) writes the offsets itself: ours are the same positions.
    const seekable = path.join(root, 'seekable.dump');
    pgTool('pg_dump', ['-Fc', '-Z0', '--exclude-table-data=skipped', '-f', seekable, 'src']);
    expect(offsetsOf(after)).toEqual(offsetsOf(await scanFile(seekable)));
  });

  it('pg_restore -j2 restores the patched archive equal to the source, large objects included', async () => {
    const { file } = await indexCopy(piped, 'restore.dump', 5);
    pg.get().psql('postgres', 'CREATE DATABASE restored');
    pgTool('pg_restore', ['--exit-on-error', '-j2', '-d', 'restored', file]);
    const lo = "SELECT string_agg(md5(lo_get(oid)), ',' ORDER BY md5(lo_get(oid))) FROM pg_largeobject_metadata";
    expect(pg.get().psql('restored', lo)).toBe(pg.get().psql('src', lo));
    const fp = fingerprint(pg.get(), 'restored');
    expect({ ...fp, 'rows:public.skipped': '' }).toEqual({ ...fingerprint(pg.get(), 'src'), 'rows:public.skipped': '' });
    expect(fp['rows:public.skipped']).toMatch(/^0:/);
  });

  it('leaves an archive it does not fully understand exactly as it was', async () => {
    const cases: Record<string, Buffer> = {
      // Cut inside the last block: the scan never reaches an end that matches.
      truncated: piped.subarray(0, piped.length - 3),
      // One byte too many after the last block.
      trailing: Buffer.concat([piped, Buffer.from([1])]),
      // A version newer than the ones known here (1.17).
      newer: Buffer.from(piped).fill(17, 6, 7),
      // The tar format's byte.
      tar: Buffer.from(piped).fill(3, 10, 11),
      plain: Buffer.from('--\n-- PostgreSQL database dump\n--\nSET statement_timeout = 0;\n'),
      empty: Buffer.alloc(0),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      const { file, patched } = await indexCopy(bytes, `odd-${name}.dump`, 3);
      expect({ name, patched }).toEqual({ name, patched: 0 });
      expect(readFileSync(file).equals(bytes)).toBe(true);
    }
  });

  it('decryptVerifiedPart with indexArchive hands over the verified archive with its offsets set (without: as decrypted)', async () => {
    const dir = mkdtempSync(path.join(root, 'snap-'));
    const chunks: Buffer[] = [];
    for await (const c of encryptOpenPgpStream(Readable.from([piped]), skeskPacket('pass'), { compressLevel: 1 })) chunks.push(c as Buffer);
    const enc = Buffer.concat(chunks);
    writeFileSync(path.join(dir, 'database.pgdump.gpg'), enc);
    const file: ManifestFile = {
      name: 'database.pgdump.gpg',
      part: 'database',
      bytes: enc.length,
      sha256: createHash('sha256').update(enc).digest('hex'),
      plainBytes: piped.length,
      durationMs: 1,
    };
    const snapshot = { id: 'S1', dir, time: new Date(), manifest: null } as SnapshotEntry;
    for (const indexArchive of [true, false]) {
      const temp = await privateTemp(vaultTempBase(root));
      try {
        const out = await decryptVerifiedPart(
          { snapshot, secret: { kind: 'passphrase', passphrase: 'pass' }, temp },
          file,
          runContext(),
          'decrypt',
          {
            indexArchive,
          },
        );
        const layout = await scanFile(out);
        expect({ indexArchive, notSet: layout.entries.filter((e) => e.flag === 1).length }).toEqual({
          indexArchive,
          notSet: indexArchive ? 0 : layout.blocks.size,
        });
        if (!indexArchive) expect(readFileSync(out).equals(piped)).toBe(true);
      } finally {
        await temp.dispose();
      }
    }
  });

  it('abandoning (a failed decryption) leaves the file untouched and never throws', async () => {
    const file = path.join(root, 'abandoned.dump');
    const indexer = followArchive(file);
    writeFileSync(file, piped.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 50));
    await indexer.abandon();
    expect(readFileSync(file).equals(piped.subarray(0, 1000))).toBe(true);
    // Never created at all.
    await followArchive(path.join(root, 'never.dump')).abandon();
    expect(await followArchive(path.join(root, 'never2.dump')).finish(0)).toBe(0);
  });
});

function writeTo(name: string, bytes: Buffer): string {
  const file = path.join(root, name);
  writeFileSync(file, bytes);
  return file;
}

/**
 * A small custom archive as pg_dump's WriteHead/WriteToc/_StartData write it for archive version 1.`minor`
 * (pg_backup_archiver.c, pg_backup_custom.c), to a pipe: offsets not set. Returns it and where each block starts.
 */
function syntheticArchive(minor: number): { bytes: Buffer; blocks: Record<number, number> } {
  const out: number[] = [];
  const int = (v: number): void => {
    out.push(v < 0 ? 1 : 0);
    let a = Math.abs(v);
    for (let i = 0; i < 4; i++) {
      out.push(a & 255);
      a = Math.floor(a / 256);
    }
  };
  const str = (s: string | null): void => {
    if (s === null) return int(-1);
    const b = Buffer.from(s, 'utf8');
    int(b.length);
    out.push(...b);
  };
  out.push(...Buffer.from('PGDMP'), 1, minor, 0, 4, 8, 1);
  if (minor >= 15) out.push(0);
  else int(0);
  for (let i = 0; i < 7; i++) int(i);
  str('db');
  str('17.2');
  str('17.2');
  const entries = [
    { id: 1, data: false, desc: 'TABLE', tag: 'plain' },
    { id: 2, data: true, desc: 'TABLE DATA', tag: 'plain' },
    { id: 3, data: true, desc: 'TABLE DATA', tag: 'tête' },
    { id: 4, data: true, desc: 'BLOBS', tag: 'BLOBS' },
  ];
  int(entries.length);
  for (const e of entries) {
    int(e.id);
    int(e.data ? 1 : 0);
    str('1259');
    str(String(16000 + e.id));
    str(e.tag);
    str(e.desc);
    int(e.data ? 3 : 2);
    str(e.data ? '' : 'CREATE TABLE x ();');
    str('');
    str(e.desc === 'TABLE DATA' ? 'COPY x FROM stdin;\n' : '');
    str('public');
    str('');
    if (minor >= 14) str(e.data || e.desc === 'BLOBS' ? '' : 'heap');
    if (minor >= 16) int(114);
    str('owner');
    str('false');
    if (e.id > 1) str('1');
    str(null);
    out.push(e.data ? 1 : 3, 0, 0, 0, 0, 0, 0, 0, 0);
  }
  const blocks: Record<number, number> = {};
  const chunk = (s: string): void => {
    const b = Buffer.from(s);
    int(b.length);
    out.push(...b);
  };
  blocks[2] = out.length;
  out.push(1);
  int(2);
  for (let i = 0; i < 300; i++) chunk(`${i}\trow ${i}\n`);
  int(0);
  blocks[3] = out.length;
  out.push(1);
  int(3);
  int(0);
  blocks[4] = out.length;
  out.push(3);
  int(4);
  int(16385);
  chunk('large object');
  int(0);
  int(0);
  return { bytes: Buffer.from(out), blocks };
}

describe('the layouts pg_dump 12–17 write (archive versions 1.14, 1.15, 1.16)', () => {
  for (const minor of [14, 15, 16]) {
    it(`1.${minor}: every block found and its offset written`, async () => {
      const { bytes, blocks } = syntheticArchive(minor);
      const { file, patched } = await indexCopy(bytes, `synthetic-1.${minor}.dump`, 4);
      expect(patched).toBe(3);
      const layout = await scanFile(file);
      expect(layout.version).toBe(`1.${minor}.0`);
      expect(Object.fromEntries(layout.entries.map((e) => [e.dumpId, e.flag === 2 ? e.position : e.flag]))).toEqual({
        1: 3,
        2: blocks[2],
        3: blocks[3],
        4: blocks[4],
      });
    });
  }

  it('1.13 and 1.17: not a layout known here, left as they are', async () => {
    for (const minor of [13, 17]) {
      const { bytes } = syntheticArchive(minor);
      const { file, patched } = await indexCopy(bytes, `synthetic-1.${minor}.dump`);
      expect(patched).toBe(0);
      expect(readFileSync(file).equals(bytes)).toBe(true);
    }
  });
});

describe('an archive read before it is verified', () => {
  it('a string length no definition has (4 GiB) is refused before any memory is given to it: the archive is left as it is', async () => {
    const { bytes } = syntheticArchive(14);
    // The database name's length field in the header (after magic, version, sizes, format, level and 7 time ints).
    const at = 5 + 3 + 3 + 5 + 7 * 5;
    const huge = Buffer.from(bytes);
    huge.writeUInt8(0, at);
    huge.writeUIntLE(2 ** 32 - 1, at + 1, 4);
    await expect(scanFile(writeTo('huge-string-scan.dump', huge))).rejects.toThrow(/a string of 4294967295 bytes/);
    const { file, patched } = await indexCopy(huge, 'huge-string.dump');
    expect(patched).toBe(0);
    expect(readFileSync(file).equals(huge)).toBe(true);
  });
});
