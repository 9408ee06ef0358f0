/**
 * A streaming writer of encrypted OpenPGP messages (RFC 4880), as `gpg -c` / `gpg -e` write them
 * and gpg 2.2 reads them:
 *
 *   key packets: SKESK v4 (AES-256, iterated+salted S2K with SHA-256) and/or PKESK v3 (one per
 *     recipient, built in keys.ts with openpgp.js: only the session key passes through it)
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
import { createCipheriv, createHash, randomBytes, type Cipher, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { constants as zlibConstants, createDeflateRaw, deflateRawSync } from 'node:zlib';

const TAG = { skesk: 3, compressed: 8, literal: 11, seipd: 18, mdc: 19 } as const;
const AES256 = 9;
const SHA256 = 8;
const ZIP = 1;
/** S2K count byte 224: 16 MiB hashed per key derivation (openpgp.js's default). */
const S2K_COUNT_BYTE = 224;
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
function s2kIterated(passphrase: Buffer, salt: Buffer, countByte: number): Buffer {
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
class PacketFramer extends Transform {
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

/** What a message starts with and the AES-256 key its SEIPD packet is encrypted with. */
export interface MessageKeys {
  /** The key packets (SKESK, PKESK), concatenated, in their framing. */
  packets: Buffer;
  /** The 32-byte session key. */
  key: Buffer;
}

/**
 * The SKESK v4 packet announcing AES-256 with an iterated+salted SHA-256 S2K. Without
 * `sessionKey` the derived key is the session key (what `gpg -c` writes); with one, the packet
 * carries it encrypted under the derived key (RFC 4880 §5.3), so PKESKs can share it.
 */
export function skeskPacket(passphrase: string, sessionKey?: Buffer, countByte = S2K_COUNT_BYTE): MessageKeys {
  const salt = randomBytes(8);
  const derived = s2kIterated(Buffer.from(passphrase, 'utf8'), salt, countByte);
  const parts = [Buffer.from([4, AES256, 3, SHA256]), salt, Buffer.from([countByte])];
  if (sessionKey) {
    const cipher = createCipheriv('aes-256-cfb', derived, Buffer.alloc(16));
    parts.push(cipher.update(Buffer.concat([Buffer.from([AES256]), sessionKey])), cipher.final());
  }
  const body = Buffer.concat(parts);
  return { packets: Buffer.concat([Buffer.from([0xc0 | TAG.skesk]), definiteLength(body.length), body]), key: sessionKey ?? derived };
}

export interface EncryptOptions {
  /** Deflate level 1–9 for an OpenPGP compressed-data packet (ZIP, by Node's zlib); 0 or undefined: no compression. */
  compressLevel?: number;
  /** Literal packet date (seconds since the epoch); default now. */
  date?: number;
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

/** The message's output: the key packets first, then whatever is piped in (the SEIPD packet). */
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
 * Encrypts `plain` as an OpenPGP message under `keys`, streaming: memory stays flat whatever the
 * size. Errors of `plain` propagate to the returned stream.
 */
export function encryptOpenPgpStream(plain: Readable, keys: MessageKeys, opts: EncryptOptions = {}): Readable {
  const { packets, key } = keys;
  // Literal data: format 'b', empty file name, date.
  const literal = new PacketFramer(TAG.literal, Buffer.concat([Buffer.from([0x62, 0]), literalDate(opts.date)]));
  const out = startingWith(packets);
  let prev: Readable = link(plain, literal);
  if ((opts.compressLevel ?? 0) > 0) {
    prev = link(
      link(prev, createDeflateRaw({ level: opts.compressLevel, chunkSize: 1 << 20 })),
      new PacketFramer(TAG.compressed, Buffer.from([ZIP])),
    );
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
export function encryptPreDeflated(rawDeflate: Readable, keys: MessageKeys, opts: { date?: number } = {}): Readable {
  const { packets, key } = keys;
  const literalHeader = Buffer.concat([Buffer.from([0x80 | (TAG.literal << 2) | 3, 0x62, 0]), literalDate(opts.date)]);
  const head = deflateRawSync(literalHeader, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  const out = startingWith(packets);
  const compressed = new PacketFramer(TAG.compressed, Buffer.concat([Buffer.from([ZIP]), head]));
  let prev: Readable = link(rawDeflate, compressed);
  prev = link(link(prev, new SeipdEncryptor(key)), new PacketFramer(TAG.seipd, Buffer.from([1])));
  return link(prev, out);
}
