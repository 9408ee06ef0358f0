/**
 * A streaming writer of symmetrically encrypted OpenPGP messages (RFC 4880), as `gpg -c` writes
 * them and gpg 2.2 reads them:
 *
 *   SKESK v4 (AES-256, iterated+salted S2K with SHA-256)
 *   SEIPD v1 (AES-256-CFB, MDC: SHA-1 over the whole plaintext)
 *     Compressed Data (ZIP = raw deflate, optional)
 *       Literal Data (binary)
 *
 * Why not openpgp.js here: measured on a 300 MB Mastodon-shaped database, openpgp.js spends more
 * main-thread CPU on its web streams than the whole dump costs, and its compression runs at zlib's
 * default level 6 without a knob. This writer uses Node's native zlib (which runs on the libuv
 * thread pool, i.e. on the other core while pg_dump and the server use this one) and OpenSSL's
 * AES/SHA through node:crypto, so pg_dump can write an uncompressed archive (its fastest mode)
 * and compression happens in parallel. Every message it writes is read back by stock `gpg -d`
 * (and by openpgp.js) in the tests.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes, type Cipher, type Hash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { constants as zlibConstants, createDeflateRaw, deflateRawSync } from 'node:zlib';

const TAG = { skesk: 3, compressed: 8, literal: 11, seipd: 18, mdc: 19 } as const;
const AES256 = 9;
const SHA256 = 8;
const ZIP = 1;
/** S2K count byte 224: 16 MiB hashed per key derivation (openpgp.js's default). */
export const S2K_COUNT_BYTE = 224;
/** Partial body chunks of 2^20 bytes: framing overhead is one byte per MiB. */
const CHUNK_LOG2 = 20;

/** Encodes a definite body length (RFC 4880 §4.2.2). */
export function definiteLength(n: number): Buffer {
  if (n < 192) return Buffer.from([n]);
  if (n < 8384) {
    const m = n - 192;
    return Buffer.from([(m >> 8) + 192, m & 0xff]);
  }
  const b = Buffer.alloc(5);
  b[0] = 0xff;
  b.writeUInt32BE(n, 1);
  return b;
}

/** The number of bytes the iterated S2K hashes for a count byte. */
export function s2kCount(c: number): number {
  return (16 + (c & 15)) << ((c >> 4) + 6);
}

/** Iterated and salted S2K (RFC 4880 §3.7.1.3) with SHA-256: a 32-byte AES-256 key. */
export function s2kIterated(passphrase: Buffer, salt: Buffer, countByte: number): Buffer {
  const data = Buffer.concat([salt, passphrase]);
  let left = Math.max(s2kCount(countByte), data.length);
  const hash = createHash('sha256');
  const reps = Math.max(1, Math.floor(65536 / data.length));
  const block = Buffer.concat(Array.from({ length: reps }, () => data));
  while (left >= block.length) {
    hash.update(block);
    left -= block.length;
  }
  if (left > 0) hash.update(block.subarray(0, left));
  return hash.digest();
}

/**
 * Frames a stream as the body of one packet with a new-format header, using partial body lengths
 * (2^CHUNK_LOG2 bytes each) and a definite length for the last piece.
 */
export class PacketFramer extends Transform {
  private pieces: Buffer[] = [];
  private held = 0;
  private started = false;

  constructor(
    private readonly tag: number,
    bodyPrefix?: Buffer,
    private readonly chunkLog2 = CHUNK_LOG2,
  ) {
    super();
    if (bodyPrefix) {
      this.pieces.push(bodyPrefix);
      this.held = bodyPrefix.length;
    }
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.push(Buffer.from([0xc0 | this.tag]));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.start();
    this.pieces.push(chunk);
    this.held += chunk.length;
    const size = 1 << this.chunkLog2;
    while (this.held >= size) {
      this.push(Buffer.from([0xe0 | this.chunkLog2]));
      let need = size;
      while (need > 0) {
        const p = this.pieces[0]!;
        if (p.length <= need) {
          this.push(p);
          need -= p.length;
          this.pieces.shift();
        } else {
          this.push(p.subarray(0, need));
          this.pieces[0] = p.subarray(need);
          need = 0;
        }
      }
      this.held -= size;
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.start();
    this.push(definiteLength(this.held));
    for (const p of this.pieces) this.push(p);
    this.pieces = [];
    cb();
  }
}

/** AES-256-CFB with a zero IV over (random prefix ‖ plaintext ‖ MDC packet): a SEIPD v1 body without its version byte. */
class SeipdEncryptor extends Transform {
  private readonly cipher: Cipher;
  private readonly mdc: Hash = createHash('sha1');

  constructor(key: Buffer) {
    super();
    this.cipher = createCipheriv('aes-256-cfb', key, Buffer.alloc(16));
    const prefix = randomBytes(16);
    const head = Buffer.concat([prefix, prefix.subarray(14, 16)]);
    this.mdc.update(head);
    this.push(this.cipher.update(head));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.mdc.update(chunk);
    cb(null, this.cipher.update(chunk));
  }

  override _flush(cb: TransformCallback): void {
    const mdcHeader = Buffer.from([0xc0 | TAG.mdc, 20]);
    this.mdc.update(mdcHeader);
    this.push(this.cipher.update(Buffer.concat([mdcHeader, this.mdc.digest()])));
    this.push(this.cipher.final());
    cb();
  }
}

/** The SKESK v4 packet announcing AES-256 with an iterated+salted SHA-256 S2K; also returns the derived key. */
export function skeskPacket(passphrase: string, countByte = S2K_COUNT_BYTE): { packet: Buffer; key: Buffer } {
  const salt = randomBytes(8);
  const body = Buffer.concat([Buffer.from([4, AES256, 3, SHA256]), salt, Buffer.from([countByte])]);
  const key = s2kIterated(Buffer.from(passphrase, 'utf8'), salt, countByte);
  return { packet: Buffer.concat([Buffer.from([0xc0 | TAG.skesk]), definiteLength(body.length), body]), key };
}

export interface EncryptOptions {
  /** Deflate level 1–9 for an OpenPGP compressed-data packet (ZIP); 0 or undefined: no compression. */
  compressLevel?: number;
  /**
   * Who deflates: `igzip` (ISA-L, Debian package isal: ~4× less CPU than zlib at level 1 with a
   * slightly smaller output; levels 1–3), `zlib` (Node's, on the thread pool), or `auto` (default:
   * igzip when installed and the level is at most 3, else zlib).
   */
  compressor?: 'auto' | 'igzip' | 'zlib';
  /** Literal packet date (seconds since the epoch); default now. */
  date?: number;
}

let igzipFound: string | null | undefined;

/** The igzip executable on PATH, or null. PERMAFROST_COMPRESSOR=zlib turns it off. */
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

/** Which compressor a message gets: null for none. */
export function chooseCompressor(opts: EncryptOptions, igzip: string | null = findIgzip()): 'igzip' | 'zlib' | null {
  const level = opts.compressLevel ?? 0;
  if (level <= 0) return null;
  const want = opts.compressor ?? 'auto';
  if (want === 'zlib') return 'zlib';
  if (want === 'igzip') return 'igzip';
  return igzip && level <= 3 ? 'igzip' : 'zlib';
}

/**
 * Turns igzip's gzip output (one member, no name: `-n`) into the raw deflate stream an OpenPGP ZIP
 * packet holds: drops the 10-byte header and holds back the 8-byte trailer, whose ISIZE is checked
 * against what was fed in (mod 2^32) so a short output cannot pass unnoticed.
 */
export class GzipToRawDeflate extends Transform {
  private header = Buffer.alloc(0);
  private headerDone = false;
  private tail = Buffer.alloc(0);

  /** ISIZE from the trailer: the input size mod 2^32 (set once the stream ended). */
  isize: number | undefined;

  /** `inputBytes`: what was fed to igzip, checked against ISIZE; omit when the input bypassed us. */
  constructor(private readonly inputBytes?: () => number) {
    super();
  }

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
    const isize = this.tail.readUInt32LE(4);
    this.isize = isize;
    if (this.inputBytes && isize !== this.inputBytes() % 2 ** 32) return cb(new Error('igzip output does not cover all the input'));
    cb();
  }
}

/** Deflates through an igzip process: returns the stream to write into and the raw deflate stream. */
function igzipDeflate(bin: string, level: number): { input: Transform; output: Readable } {
  const child = spawn(bin, [`-${Math.min(3, Math.max(1, level))}`, '-c', '-n'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let fed = 0;
  let stderr = '';
  const input = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      fed += chunk.length;
      cb(null, chunk);
    },
  });
  const output = new GzipToRawDeflate(() => fed);
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  child.stdin.on('error', () => undefined); // a dead igzip shows in its exit status
  input.pipe(child.stdin);
  child.stdout.pipe(output, { end: false });
  const fail = (why: string): void => {
    output.destroy(new Error(`igzip ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
  };
  child.once('error', (err) => fail(`could not start (${err.message})`));
  // 'close': the exit status and all of stdout are in.
  child.once('close', (code, signal) => {
    if (code === 0) output.end();
    else fail(`failed (${code ?? signal})`);
  });
  input.once('error', () => child.kill('SIGTERM'));
  output.once('close', () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  });
  return { input, output };
}

/** The literal packet's date field: seconds since the epoch, big-endian. */
function literalDate(date: number | undefined): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32BE((date ?? Math.floor(Date.now() / 1000)) >>> 0);
  return buf;
}

/** Pipes `from` into `to`, carrying `from`'s errors over (pipe() alone does not). */
function link(from: Readable, to: Transform): Transform {
  from.once('error', (err) => to.destroy(err));
  return from.pipe(to);
}

/** The message's output: the SKESK packet first, then whatever is piped in (the SEIPD packet). */
function startingWith(packet: Buffer): Transform {
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, chunk);
    },
  });
  out.push(packet);
  return out;
}

/**
 * Encrypts `plain` as a symmetric OpenPGP message, streaming: memory stays flat whatever the size.
 * Errors of `plain` propagate to the returned stream.
 */
export function encryptOpenPgpStream(plain: Readable, passphrase: string, opts: EncryptOptions = {}): Readable {
  const { packet, key } = skeskPacket(passphrase);
  // Literal data: format 'b', empty file name, date.
  const literal = new PacketFramer(TAG.literal, Buffer.concat([Buffer.from([0x62, 0]), literalDate(opts.date)]));
  const out = startingWith(packet);
  let prev: Readable = link(plain, literal);
  const compressor = chooseCompressor(opts);
  if (compressor === 'igzip') {
    const { input, output } = igzipDeflate(findIgzip() ?? 'igzip', opts.compressLevel!);
    link(prev, input);
    prev = link(output, new PacketFramer(TAG.compressed, Buffer.from([ZIP])));
  } else if (compressor === 'zlib') {
    prev = link(link(prev, createDeflateRaw({ level: opts.compressLevel, chunkSize: 1 << 20 })), new PacketFramer(TAG.compressed, Buffer.from([ZIP])));
  }
  prev = link(link(prev, new SeipdEncryptor(key)), new PacketFramer(TAG.seipd, Buffer.from([1])));
  return link(prev, out);
}

/**
 * Encrypts data that was deflated elsewhere (igzip reading pg_dump's stdout directly, so the
 * plaintext never passes through this process). The compressed packet holds one deflate stream:
 * the literal packet's header, deflated here and byte-aligned with a sync flush (a non-final
 * block), followed by the external raw deflate stream of the data, which starts with an empty
 * window and so can be appended as is. The literal packet has an old-format indeterminate length
 * (RFC 4880 §4.2.1): it ends where the compressed data ends, as gpg reads it.
 */
export function encryptPreDeflated(rawDeflate: Readable, passphrase: string, opts: { date?: number } = {}): Readable {
  const { packet, key } = skeskPacket(passphrase);
  const literalHeader = Buffer.concat([Buffer.from([0x80 | (TAG.literal << 2) | 3, 0x62, 0]), literalDate(opts.date)]);
  const head = deflateRawSync(literalHeader, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const out = startingWith(packet);
  const compressed = new PacketFramer(TAG.compressed, Buffer.concat([Buffer.from([ZIP]), head]));
  let prev: Readable = link(rawDeflate, compressed);
  prev = link(link(prev, new SeipdEncryptor(key)), new PacketFramer(TAG.seipd, Buffer.from([1])));
  return link(prev, out);
}
