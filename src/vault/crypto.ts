import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { ToolError } from '../errors.js';
import { gpgDecryptArgv, gpgDecryptFile } from '../tools/gpg.js';
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

export type DecryptFailure = 'wrong-passphrase' | 'corrupt';

export class DecryptError extends Error {
  constructor(
    readonly reason: DecryptFailure,
    options: { cause: unknown },
  ) {
    super(reason === 'wrong-passphrase' ? 'wrong passphrase' : 'corrupt or truncated OpenPGP message', options);
  }
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
  const r = await gpgDecryptFile(encPath, passphrase, outPath);
  if (r.ok) return { sha256: r.sha256, bytes: r.bytes, plainBytes: r.plainBytes };
  await rm(outPath, { force: true });
  if (r.failure === 'missing-tool') {
    throw new ToolError('Cannot run gpg to decrypt the snapshot: install gnupg (apt-get install gnupg).', {
      argv: gpgDecryptArgv('GNUPGHOME', encPath),
      exitStatus: null,
      stderr: r.stderr,
    });
  }
  throw new DecryptError(r.failure ?? 'corrupt', { cause: new Error(r.stderr) });
}
