/**
 * igzip (ISA-L, Debian package isal): ~4× less CPU than zlib at level 1 with a slightly smaller
 * output, levels 1–3 only. The backup reads pg_dump's archive through it over an OS pipe, so the
 * plaintext never passes through this process; its gzip output becomes the raw deflate stream of
 * an OpenPGP compressed-data packet.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { startTool, type RunningTool } from './run.js';

/** The highest level igzip offers; above it Node's zlib compresses. */
const IGZIP_MAX_LEVEL = 3;

let igzipFound: string | null | undefined;

/** The igzip executable on PATH (looked up once per process), or null. PERMAFROST_COMPRESSOR=zlib turns it off. */
export function findIgzip(): string | null {
  if (process.env.PERMAFROST_COMPRESSOR === 'zlib') return null;
  if (igzipFound !== undefined) return igzipFound;
  igzipFound = null;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir || '.', 'igzip');
    try {
      accessSync(candidate, constants.X_OK);
      igzipFound = candidate;
      break;
    } catch {
      // not here
    }
  }
  return igzipFound;
}

/** Who deflates at `compressLevel` (0 or unset: nobody): igzip when installed and the level is at most 3, else zlib. */
export function chooseCompressor(opts: { compressLevel?: number }, igzip: string | null = findIgzip()): 'igzip' | 'zlib' | null {
  const level = opts.compressLevel ?? 0;
  if (level <= 0) return null;
  return igzip && level <= IGZIP_MAX_LEVEL ? 'igzip' : 'zlib';
}

/** igzip argv: stdin to stdout at `level` (clamped to 1–3), no file name or date in the gzip header. */
export function igzipArgv(bin: string, level: number): string[] {
  return [bin, `-${Math.min(IGZIP_MAX_LEVEL, Math.max(1, level))}`, '-c', '-n'];
}

/** Starts igzip reading its stdin (hand `stdin` to the producing program) and writing gzip on `stdout`. */
export function startIgzip(bin: string, level: number, doing: string): RunningTool {
  return startTool({ argv: igzipArgv(bin, level), doing }, { stdin: 'pipe' });
}

/**
 * Turns igzip's gzip output (one member, no name: `-n`) into the raw deflate stream an OpenPGP ZIP
 * packet holds: drops the 10-byte header and holds back the 8-byte trailer, whose ISIZE (the input
 * size mod 2^32) it keeps. Output that is not gzip, or ends before the trailer, is an error.
 */
export class GzipToRawDeflate extends Transform {
  private header = Buffer.alloc(0);
  private headerDone = false;
  private tail = Buffer.alloc(0);

  /** ISIZE from the trailer: the input size mod 2^32 (set once the stream ended). */
  isize: number | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.headerDone) {
      this.header = Buffer.concat([this.header, chunk]);
      if (this.header.length < 10) return cb();
      if (this.header[0] !== 0x1f || this.header[1] !== 0x8b || this.header[2] !== 8 || this.header[3] !== 0) {
        return cb(new Error('igzip wrote an unexpected gzip header'));
      }
      this.headerDone = true;
      chunk = this.header.subarray(10);
    }
    if (chunk.length >= 8) {
      // No copy of the data: the held-back tail is released, the new one kept.
      if (this.tail.length) this.push(this.tail);
      this.tail = Buffer.from(chunk.subarray(chunk.length - 8));
      return cb(null, chunk.subarray(0, chunk.length - 8));
    }
    const all = Buffer.concat([this.tail, chunk]);
    this.tail = Buffer.from(all.subarray(Math.max(0, all.length - 8)));
    cb(null, all.length > 8 ? all.subarray(0, all.length - 8) : undefined);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.headerDone || this.tail.length !== 8) return cb(new Error('igzip output ended early'));
    this.isize = this.tail.readUInt32LE(4);
    cb();
  }
}
