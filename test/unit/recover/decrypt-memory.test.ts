import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { encryptOpenPgpStream, skeskPacket } from '../../../src/crypto/openpgp-stream.js';
import { decryptPartInto, privateTemp, vaultTempBase } from '../../../src/recover/decrypt.js';
import { parallelRowsSink } from '../../../src/recover/parallel-rows.js';
import { runContext } from '../../../src/run-context.js';
import type { ManifestFile } from '../../../src/vault/manifest.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';

// Its own file: the measure is of the whole process (vitest runs each file in its own fork).
const root = mkdtempSync(path.join(tmpdir(), 'permafrost-decrypt-mem-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PASS = 'correct horse battery staple';
const MIB = 2 ** 20;

describe('decryptPartInto into parallel sessions: the memory a base of 96 MiB holds', () => {
  it('real gpg writes the plaintext into the rows file, read back through fixed buffers: array buffers stay within 12 MiB of where they started', async () => {
    // A base's rows part: settings, two COPY blocks of 48 MiB each.
    const line = `123456\t${'x'.repeat(57)}\n`;
    const mib = line.repeat(MIB / line.length);
    const parts = ['SET statement_timeout = 0;\n'];
    for (const table of ['s', 't']) {
      parts.push(`COPY "public"."${table}" ("id", "t") FROM stdin;\n`);
      for (let i = 0; i < 48; i++) parts.push(mib);
      parts.push('\\.\n\n');
    }
    const plainBytes = parts.reduce((n, p) => n + Buffer.byteLength(p), 0);
    const dir = mkdtempSync(path.join(root, 'snap-'));
    const enc = path.join(dir, 'rows.sql.gpg');
    await pipeline(
      encryptOpenPgpStream(Readable.from(parts.map((p) => Buffer.from(p))), skeskPacket(PASS), { compressLevel: 1 }),
      createWriteStream(enc),
    );
    const bytes = readFileSync(enc);
    const file: ManifestFile = {
      name: 'rows.sql.gpg',
      part: 'rows',
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      plainBytes,
      durationMs: 1,
    };
    const snapshot = { id: 'S1', dir, time: new Date(), manifest: null } as SnapshotEntry;
    const temp = await privateTemp(vaultTempBase(root));
    // Settle what the set-up left behind before the measure starts.
    await new Promise((r) => setTimeout(r, 200));
    const start = process.memoryUsage().arrayBuffers;
    let peak = start;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 2);
    try {
      await decryptPartInto(
        { snapshot, secret: { kind: 'passphrase', passphrase: PASS }, temp },
        file,
        (signal) =>
          parallelRowsSink(path.join(temp.dir, 'base-rows.sql'), { argv: ['sh', '-c', 'cat > /dev/null'], doing: 'loading' }, 2, signal),
        runContext(),
      );
      expect(readdirSync(temp.dir)).toEqual([]);
    } finally {
      clearInterval(sample);
      await temp.dispose();
    }
    console.log(`array buffers: +${((peak - start) / MIB).toFixed(1)} MiB`);
    expect((peak - start) / MIB).toBeLessThan(12);
  }, 120_000);
});
