import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { encryptOpenPgpStream, type EncryptOptions } from './openpgp-stream.js';

/**
 * Encrypts a byte stream on the fly as a symmetric OpenPGP message that gpg 2.2 reads (`gpg -c`:
 * SKESK v4, AES-256, SEIPD with MDC), optionally with an OpenPGP compressed-data packet (zlib
 * level `compressLevel`, computed on another core). See openpgp-stream.ts for why.
 */
export function encryptStream(plain: Readable, passphrase: string, opts: EncryptOptions = {}): Promise<Readable> {
  return Promise.resolve(encryptOpenPgpStream(plain, passphrase, opts));
}

/** A pass-through that counts bytes and computes SHA-256 of what flows through it. */
export class HashCounter extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  private digest: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  /** Hex SHA-256 of everything that passed; call once the stream has ended. */
  sha256(): string {
    this.digest ??= this.hash.digest('hex');
    return this.digest;
  }
}

/** SHA-256 and size of a file, read once in 1 MiB chunks. */
export async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}
