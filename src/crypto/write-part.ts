import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashCounter } from './hash.js';
import { fsyncFile } from '../vault/fs-durable.js';
import { messageKeysFor, type EncryptionKeys } from './keys.js';
import { encryptOpenPgpStream, type EncryptOptions } from './openpgp-stream.js';
import { PART_FILE, type ManifestFile } from '../vault/manifest.js';

/** Counts the plaintext bytes that flow into encryption (nothing is stored). */
function plainCounter(onChunk: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onChunk(chunk.length);
      cb(null, chunk);
    },
  });
}

/** Where one encrypted part goes and how: the snapshot folder, the part (its file name follows), the keys. */
export interface PartTarget {
  dir: string;
  part: ManifestFile['part'];
  keys: EncryptionKeys;
  /** Told the plaintext bytes seen so far. */
  progress?: (plainBytes: number) => void;
  encrypt?: EncryptOptions;
}

/**
 * Encrypts `plain` into the part's file on the fly (no plaintext byte touches the disk), fsyncs
 * it, and returns its manifest entry.
 */
export async function writeEncryptedPart(target: PartTarget, plain: Readable): Promise<ManifestFile> {
  const { dir, part, keys, progress, encrypt: opts = {} } = target;
  const { message, facts } = await messageKeysFor(keys);
  const name = PART_FILE[part];
  const started = Date.now();
  let plainBytes = 0;
  const counted = plain.pipe(
    plainCounter((n) => {
      plainBytes += n;
      progress?.(plainBytes);
    }),
  );
  plain.once('error', (err) => counted.destroy(err));
  const encrypted = encryptOpenPgpStream(counted, message, opts);
  const hasher = new HashCounter();
  const file = path.join(dir, name);
  await pipeline(encrypted, hasher, createWriteStream(file, { mode: 0o640, flags: 'wx' }));
  await fsyncFile(file);
  return { name, part, bytes: hasher.bytes, sha256: hasher.sha256(), plainBytes, durationMs: Date.now() - started, keys: facts };
}
