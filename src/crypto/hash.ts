import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

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

/** The bytes each read takes (a pipe takes 64 KiB at a time): one buffer for a hash, two in turn for a feed. */
const READ_BUFFER = 256 * 1024;
/** Read buffers kept for the next file (a chain's check hashes dozens in turn, a restore feeds several deltas at once): at most this many. */
const SPARE_BUFFERS = 10;
const spare: Buffer[] = [];
const takeBuffer = (): Buffer => spare.pop() ?? Buffer.allocUnsafe(READ_BUFFER);
const giveBack = (...bufs: Buffer[]): void => {
  for (const b of bufs) if (spare.length < SPARE_BUFFERS) spare.push(b);
};

/** A file's bytes in turn through `buf` (reused: each chunk is valid until the next is asked for). */
export async function* fileChunks(fh: FileHandle, buf: Buffer): AsyncGenerator<Buffer> {
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) return;
    yield buf.subarray(0, bytesRead);
  }
}

/**
 * SHA-256 and size of a file, read once through one reused buffer: a stream would allocate a
 * buffer per chunk, garbage that piles up between collections while a chain of parts is checked.
 */
export async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const fh = await open(file, 'r');
  const buf = takeBuffer();
  try {
    for await (const chunk of fileChunks(fh, buf)) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  } finally {
    await fh.close();
    giveBack(buf);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Writes a file into `dest` (a program's stdin) and ends it, returning the SHA-256 and size of
 * exactly what was written. Two buffers are read into in turn, one filling while the other's write
 * drains, so nothing is allocated per chunk. On any failure (the file missing, the program gone:
 * EPIPE) `dest` is destroyed, so the program sees its input end, and the error rejects.
 */
export async function feedFile(file: string, dest: Writable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const broke: { err: Error | null } = { err: null };
  const failure = (): Error | null => broke.err;
  // An 'error' event without a listener would end the process; the write callbacks carry it too.
  dest.on('error', (err) => (broke.err ??= err));
  try {
    const fh = await open(file, 'r');
    const bufs = [takeBuffer(), takeBuffer()];
    const written: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
    try {
      for (let turn = 0; ; turn ^= 1) {
        await written[turn];
        const f = failure();
        if (f) throw f;
        const { bytesRead } = await fh.read(bufs[turn]!, 0, READ_BUFFER, null);
        if (bytesRead === 0) break;
        const chunk = bufs[turn]!.subarray(0, bytesRead);
        hash.update(chunk);
        bytes += bytesRead;
        written[turn] = new Promise<void>((resolve) =>
          dest.write(chunk, (err) => {
            if (err) broke.err ??= err;
            resolve();
          }),
        );
      }
      await Promise.all(written);
      const f = failure();
      if (f) throw f;
      // Every write is done with them (after a failure one may still hold its buffer: those are dropped).
      giveBack(...bufs);
    } finally {
      await fh.close();
    }
    // Not end's callback: node 20 never calls it on a stream destroyed without an error (a child's
    // stdin, when the program exits after our last write and before the end).
    if (dest.destroyed) throw new Error('the program exited before its input ended');
    dest.end();
    await finished(dest, { readable: false });
  } catch (err) {
    dest.destroy();
    throw err;
  }
  return { sha256: hash.digest('hex'), bytes };
}
