import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';

/**
 * What gpg 2.2 reads: v4 symmetric-key packet with iterated S2K, SEIPD v1 (MDC), AES-256.
 * No OpenPGP compression: the pg_dump archive is already compressed, and recompressing
 * costs time and grows the file.
 */
const ENCRYPT_CONFIG = {
  aeadProtect: false,
  v6Keys: false,
  s2kType: openpgp.enums.s2k.iterated,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
} as const;

/** Plaintext is released before the final MDC check; callers write it only to a private temp file. */
const DECRYPT_CONFIG = { allowUnauthenticatedStream: true } as const;

/** Encrypts a byte stream on the fly as an OpenPGP symmetric message, like `gpg -c`. */
export async function encryptStream(plain: Readable, passphrase: string): Promise<Readable> {
  const message = await openpgp.createMessage({
    binary: Readable.toWeb(plain) as unknown as ReadableStream<Uint8Array>,
    format: 'binary',
  });
  const encrypted = await openpgp.encrypt({
    message,
    passwords: [passphrase],
    format: 'binary',
    config: ENCRYPT_CONFIG,
  });
  return Readable.fromWeb(encrypted as unknown as WebReadableStream<Uint8Array>);
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

export type DecryptFailure = 'wrong-passphrase' | 'corrupt';

export class DecryptError extends Error {
  constructor(
    readonly reason: DecryptFailure,
    options: { cause: unknown },
  ) {
    super(reason === 'wrong-passphrase' ? 'wrong passphrase' : 'corrupt or truncated OpenPGP message', options);
  }
}

function classify(err: unknown): DecryptFailure {
  const text = err instanceof Error ? err.message : String(err);
  return /session key decryption failed|password|passphrase/i.test(text) ? 'wrong-passphrase' : 'corrupt';
}

/**
 * Decrypts an OpenPGP file into `outPath` (created 0600), returning the SHA-256 and size of
 * the ciphertext read. Rejects with DecryptError when the passphrase is wrong or the message
 * fails its integrity check; the caller must then discard `outPath`.
 */
export async function decryptFile(
  encPath: string,
  passphrase: string,
  outPath: string,
): Promise<{ sha256: string; bytes: number; plainBytes: number }> {
  const counter = new HashCounter();
  const source = createReadStream(encPath).pipe(counter);
  let plainBytes = 0;
  try {
    const message = await openpgp.readMessage({
      binaryMessage: Readable.toWeb(source) as unknown as ReadableStream<Uint8Array>,
      config: DECRYPT_CONFIG,
    });
    const { data } = await openpgp.decrypt({
      message,
      passwords: [passphrase],
      format: 'binary',
      config: DECRYPT_CONFIG,
    });
    const plain = Readable.fromWeb(data as unknown as WebReadableStream<Uint8Array>);
    plain.on('data', (chunk: Buffer) => {
      plainBytes += chunk.length;
    });
    await pipeline(plain, createWriteStream(outPath, { mode: 0o600, flags: 'wx' }));
  } catch (err) {
    source.destroy();
    throw new DecryptError(classify(err), { cause: err });
  }
  return { sha256: counter.sha256(), bytes: counter.bytes, plainBytes };
}
