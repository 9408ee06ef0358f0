import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { IntegrityError, PermafrostError, ToolError, UserError } from '../../../src/errors.js';
import { mountTmpfs } from '../../harness/tmpfs.js';
import { decryptPartInto, decryptVerifiedPart, privateTemp, vaultTempBase } from '../../../src/recover/decrypt.js';
import { parallelRowsSink } from '../../../src/recover/parallel-rows.js';
import type { ManifestFile } from '../../../src/vault/manifest.js';
import { encryptOpenPgpStream, skeskPacket } from '../../../src/crypto/openpgp-stream.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';
import { runContext } from '../../../src/run-context.js';

const root = mkdtempSync(path.join(tmpdir(), 'permafrost-decrypt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const PASS = 'correct horse battery staple';
let n = 0;

/** A snapshot folder with one encrypted part and the manifest entry a backup would have written. */
async function snapshotWith(
  plain: Buffer,
  part: Pick<ManifestFile, 'name' | 'part'> = { name: 'redis.rdb.gpg', part: 'redis' },
): Promise<{ snapshot: SnapshotEntry; file: ManifestFile; enc: string }> {
  const dir = mkdtempSync(path.join(root, 'snap-'));
  const enc = path.join(dir, part.name);
  await pipeline(encryptOpenPgpStream(Readable.from([plain]), skeskPacket(PASS), { compressLevel: 1 }), createWriteStream(enc));
  const bytes = readFileSync(enc);
  const file: ManifestFile = {
    ...part,
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    plainBytes: plain.length,
    durationMs: 1,
  };
  const snapshot = { id: `S${++n}`, dir, time: new Date(), manifest: null } as SnapshotEntry;
  return { snapshot, file, enc };
}

async function attempt(snapshot: SnapshotEntry, file: ManifestFile, passphrase = PASS) {
  const temp = await privateTemp(vaultTempBase(root));
  try {
    const out = await decryptVerifiedPart({ snapshot, secret: { kind: 'passphrase', passphrase }, temp }, file, runContext()).catch(
      (e: unknown) => e,
    );
    return { out, left: readdirSync(temp.dir) };
  } finally {
    await temp.dispose();
  }
}

describe('decryptVerifiedPart', () => {
  const data = randomBytes(200_000);

  it('returns the plaintext in a 0600 file inside the 0700 temp folder when everything matches', async () => {
    const { snapshot, file } = await snapshotWith(data);
    const temp = await privateTemp(vaultTempBase(root));
    try {
      expect(statSync(temp.dir).mode & 0o777).toBe(0o700);
      let seen = 0;
      const out = await decryptVerifiedPart(
        { snapshot, secret: { kind: 'passphrase', passphrase: PASS }, temp },
        file,
        runContext({
          events: { bytes: (_phase, b) => (seen = b) },
        }),
        'decrypt',
      );
      expect(path.dirname(out)).toBe(temp.dir);
      expect(readFileSync(out).equals(data)).toBe(true);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      expect(seen).toBe(data.length);
    } finally {
      await temp.dispose();
    }
    expect(existsSync(temp.dir)).toBe(false);
  });

  it('a flipped byte or a truncated part is an IntegrityError and leaves no plaintext', async () => {
    for (const damage of [(b: Buffer) => ((b[b.length >> 1]! ^= 1), b), (b: Buffer) => b.subarray(0, b.length - 100)]) {
      const { snapshot, file, enc } = await snapshotWith(data);
      writeFileSync(enc, damage(Buffer.from(readFileSync(enc))));
      const { out, left } = await attempt(snapshot, file);
      expect(out).toBeInstanceOf(IntegrityError);
      expect((out as Error).message).toMatch(/redis\.rdb\.gpg does not match the SHA-256 in the manifest/);
      expect(left).toEqual([]);
    }
  });

  it('a wrong passphrase is a UserError naming vault.passphraseFile, and leaves no plaintext', async () => {
    const { snapshot, file } = await snapshotWith(data);
    const { out, left } = await attempt(snapshot, file, 'not the passphrase');
    expect(out).toBeInstanceOf(UserError);
    expect((out as Error).message).toMatch(/passphrase in vault\.passphraseFile is not the one/);
    expect(left).toEqual([]);
  });

  it('a plaintext size other than the manifest says is an IntegrityError', async () => {
    const { snapshot, file } = await snapshotWith(data);
    const { out, left } = await attempt(snapshot, { ...file, plainBytes: file.plainBytes + 1 });
    expect(out).toBeInstanceOf(IntegrityError);
    expect((out as Error).message).toMatch(/decrypts to 200000 bytes where the manifest says 200001/);
    expect(left).toEqual([]);
  });

  it('a missing part is an IntegrityError saying so', async () => {
    const { snapshot, file, enc } = await snapshotWith(data);
    rmSync(enc);
    const { out, left } = await attempt(snapshot, file);
    expect(out).toBeInstanceOf(IntegrityError);
    expect((out as Error).message).toMatch(/redis\.rdb\.gpg is missing/);
    expect(left).toEqual([]);
  });
});

/** A consumer standing in for psql: copies its stdin to `out` (or fails without reading, as psql does on a bad first statement). */
function consumer(script: string): string {
  const file = path.join(root, `consumer-${++n}.sh`);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, 0o755);
  return file;
}

const DELTA = { name: 'delta.sql.gpg', part: 'delta' } as const;

/** Streams the part into the consumer; what it threw, the last progress, and what the temp folder still holds. */
async function stream(snapshot: SnapshotEntry, file: ManifestFile, bin: string, passphrase = PASS) {
  const temp = await privateTemp(vaultTempBase(root));
  let seen = 0;
  try {
    const err = await decryptPartInto(
      { snapshot, secret: { kind: 'passphrase', passphrase }, temp },
      file,
      { argv: [bin], doing: 'applying it' },
      runContext({ events: { bytes: (_phase, b) => (seen = b) } }),
      'apply',
    ).then(
      () => null,
      (e: unknown) => e,
    );
    return { err, seen, left: readdirSync(temp.dir) };
  } finally {
    await temp.dispose();
  }
}

describe('decryptPartInto: gpg straight into another program, no plaintext on disk', () => {
  const data = randomBytes(300_000);

  it('hands the consumer exactly the plaintext and leaves nothing in the temp folder', async () => {
    const { snapshot, file } = await snapshotWith(data, DELTA);
    const out = path.join(root, 'got');
    const r = await stream(snapshot, file, consumer(`cat > '${out}'`));
    expect(r.err).toBeNull();
    expect(readFileSync(out).equals(data)).toBe(true);
    expect(r.seen).toBe(data.length);
    expect(r.left).toEqual([]);
  });

  it('a flipped byte is an IntegrityError even though the consumer read to the end', async () => {
    const { snapshot, file, enc } = await snapshotWith(data, DELTA);
    const b = Buffer.from(readFileSync(enc));
    b[b.length >> 1]! ^= 1;
    writeFileSync(enc, b);
    const r = await stream(snapshot, file, consumer('cat > /dev/null'));
    expect(r.err).toBeInstanceOf(IntegrityError);
    expect((r.err as Error).message).toBe(
      `Snapshot ${snapshot.id} failed its integrity check: delta.sql.gpg does not match the SHA-256 in the manifest (tampered or truncated); use another snapshot.`,
    );
    expect(r.left).toEqual([]);
  });

  it('a plaintext size other than the manifest says is an IntegrityError', async () => {
    const { snapshot, file } = await snapshotWith(data, DELTA);
    const r = await stream(snapshot, { ...file, plainBytes: file.plainBytes - 1 }, consumer('cat > /dev/null'));
    expect(r.err).toBeInstanceOf(IntegrityError);
    expect((r.err as Error).message).toMatch(/decrypts to 300000 bytes where the manifest says 299999/);
  });

  it('a wrong passphrase is the UserError naming where it came from, not damage (gpg stopped reading early)', async () => {
    const { snapshot, file } = await snapshotWith(data, DELTA);
    const r = await stream(snapshot, file, consumer('cat > /dev/null'), 'not the passphrase');
    expect(r.err).toBeInstanceOf(UserError);
    expect((r.err as Error).message).toMatch(/passphrase in vault\.passphraseFile is not the one/);
    expect(r.left).toEqual([]);
  });

  it('a consumer that fails without reading is its own ToolError, not a damaged part', async () => {
    const { snapshot, file } = await snapshotWith(data, DELTA);
    const r = await stream(snapshot, file, consumer('echo "psql:<stdin>:3: ERROR:  relation does not exist" >&2; exit 3'));
    expect(r.err).toBeInstanceOf(ToolError);
    expect((r.err as ToolError).message).toMatch(/failed while applying it: relation does not exist/);
    expect((r.err as ToolError).exitStatus).toBe(3);
    expect(r.left).toEqual([]);
  });

  it('a missing part is an IntegrityError saying so', async () => {
    const { snapshot, file, enc } = await snapshotWith(data, DELTA);
    rmSync(enc);
    const r = await stream(snapshot, file, consumer('cat > /dev/null'));
    expect(r.err).toBeInstanceOf(IntegrityError);
    expect((r.err as Error).message).toMatch(/delta\.sql\.gpg is missing/);
    expect(existsSync(enc)).toBe(false);
  });
});

describe('decryptPartInto with parallelRowsSink: a base’s rows on several sessions', () => {
  const header = "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n";
  const blocks = ['a', 'b', 'c', 'd'].map(
    (t, i) => `COPY "public"."${t}" ("x") FROM stdin;\n${`${t}${i}\n`.repeat(20_000 * (i + 1))}\\.\n`,
  );
  const trailer = 'SELECT pg_catalog.setval(\'"public"."a_seq"\', 5, true);\n';
  const rows = Buffer.from(`${header}${blocks.join('\n')}\n${trailer}`);
  const ROWS = { name: 'rows.sql.gpg', part: 'rows' } as const;

  async function parallel(snapshot: SnapshotEntry, file: ManifestFile, script: string, tempDir = root) {
    const temp = await privateTemp(vaultTempBase(tempDir));
    const outs = path.join(root, `sessions-${++n}`);
    mkdirSync(outs);
    try {
      const err = await decryptPartInto(
        { snapshot, secret: { kind: 'passphrase', passphrase: PASS }, temp },
        file,
        (signal) =>
          parallelRowsSink(
            path.join(temp.dir, 'base-rows.sql'),
            { argv: [consumer(script.replaceAll('OUTS', outs))], doing: 'applying it' },
            2,
            signal,
          ),
        runContext(),
      ).then(
        () => null,
        (e: unknown) => e,
      );
      const got = readdirSync(outs).map((f) => readFileSync(path.join(outs, f), 'utf8'));
      return { err, got, left: readdirSync(temp.dir) };
    } finally {
      await temp.dispose();
    }
  }

  it('every session runs the settings first; each block reaches exactly one session whole, the trailer comes last; no plaintext is left', async () => {
    const { snapshot, file } = await snapshotWith(rows, ROWS);
    const r = await parallel(snapshot, file, `cat > "OUTS/$$"`);
    expect(r.err).toBeNull();
    expect(r.got).toHaveLength(2);
    for (const g of r.got) expect(g.startsWith(header)).toBe(true);
    const bodies = r.got.map((g) => g.slice(header.length));
    // Which session takes which block is scheduling (the blocks go to whichever is idle): on a loaded
    // machine one session can take them all, so only where each block went whole is asserted.
    const all = bodies.join('');
    for (const b of blocks) expect(all.split(b)).toHaveLength(2);
    expect(bodies.some((b) => b.endsWith(`\n${trailer}`))).toBe(true);
    expect(all.length).toBe(blocks.join('').length + trailer.length + 1);
    expect(r.left).toEqual([]);
  });

  it('a flipped byte is an IntegrityError after the sessions ran, and the plaintext file is gone', async () => {
    const { snapshot, file, enc } = await snapshotWith(rows, ROWS);
    const b = Buffer.from(readFileSync(enc));
    b[b.length >> 1]! ^= 1;
    writeFileSync(enc, b);
    const r = await parallel(snapshot, file, 'cat > /dev/null');
    expect(r.err).toBeInstanceOf(IntegrityError);
    expect(r.left).toEqual([]);
  });

  it('gpg filling the temp folder while it writes the rows file: the sentence of a full temp folder, not a damaged snapshot, and nothing left', async () => {
    const big = Buffer.from(`${header}COPY "public"."s" ("id") FROM stdin;\n${'123456\n'.repeat(300_000)}\\.\n`);
    const { snapshot, file } = await snapshotWith(big, ROWS);
    const small = mountTmpfs(512 * 1024);
    try {
      const r = await parallel(snapshot, file, 'cat > /dev/null', small.dir);
      expect(r.err).toBeInstanceOf(PermafrostError);
      expect((r.err as Error).message).toMatch(
        new RegExp(`^Not enough space in vault\\.tempDir \\(${small.dir}\\) to decrypt snapshot ${snapshot.id}: rows\\.sql\\.gpg needs `),
      );
      expect(r.left).toEqual([]);
    } finally {
      small.unmount();
    }
  });

  it('a session that fails is the error (not the ones stopped because of it), and the plaintext file is gone', async () => {
    const { snapshot, file } = await snapshotWith(rows, ROWS);
    // The first session to see block "b" fails as psql would on a bad row; the other is stopped.
    const r = await parallel(
      snapshot,
      file,
      `while IFS= read -r l; do case "$l" in *'"b"'*) echo 'ERROR: bad row' >&2; exit 3;; esac; done`,
    );
    expect(r.err).toBeInstanceOf(ToolError);
    expect((r.err as ToolError).exitStatus).toBe(3);
    expect((r.err as ToolError).stderrTail).toContain('ERROR: bad row');
    expect(r.left).toEqual([]);
  });
});
