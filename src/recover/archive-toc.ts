/**
 * The data offsets of a pg_dump custom-format archive, found while gpg writes it and written into
 * its table of contents before pg_restore reads it.
 *
 * pg_dump writes a custom archive to a pipe (our backup does) in one pass: header, table of
 * contents, then one data block per TABLE DATA / BLOBS entry. It cannot seek back, so every entry's
 * offset field says K_OFFSET_POS_NOT_SET, and `pg_restore -j` must then scan the file for each
 * block (skipping every chunk of every table before it, once per worker) and cannot order the
 * tables by size. Here the archive is read as it grows (src/bin/pg_dump/pg_backup_archiver.c
 * ReadHead/ReadToc, pg_backup_custom.c _ReadExtraToc/_readBlockHeader/_skipData/_skipLOs), the
 * position of every data block recorded, and, once the whole file is read and found consistent,
 * each entry's offset field rewritten in place as K_OFFSET_POS_SET with that position (the same
 * number of bytes: nothing else in the file moves), exactly what pg_dump writes to a seekable file.
 *
 * Never worse than before: an archive this does not fully understand (another format, a version
 * outside the ones pg_dump 12–17 writes, an unknown block type, a block no entry owns, a file that
 * does not end where the last block does) is left exactly as it was, and pg_restore scans as before.
 */
import { open, type FileHandle } from 'node:fs/promises';

/** K_VERS_x_y of pg_backup_archiver.h: ((major * 256) + minor) * 256 + revision. */
const vers = (minor: number): number => (1 * 256 + minor) * 256;
/** The oldest version read here: 1.14 (pg_dump 12–15 write it, 16 writes 1.15, 17 writes 1.16). */
const OLDEST = vers(14);
/** The newest version whose layout is known here (pg_dump 17); a newer one is left alone. */
const NEWEST = vers(16) + 255;

/** The longest table-of-contents string read (an object's definition); a longer one leaves the archive as it is. */
const MAX_STRING = 64 << 20;
const FORMAT_CUSTOM = 1;
const BLK_DATA = 1;
const BLK_BLOBS = 3;
const K_OFFSET_POS_NOT_SET = 1;
const K_OFFSET_POS_SET = 2;
const K_OFFSET_NO_DATA = 3;

/** One table-of-contents entry, as far as the offsets need it. */
export interface TocSlot {
  dumpId: number;
  desc: string;
  tag: string;
  /** Where the entry's offset field (flag byte, then offSize bytes) is in the file. */
  offsetAt: number;
  /** The flag found there: K_OFFSET_POS_NOT_SET (1), K_OFFSET_POS_SET (2) or K_OFFSET_NO_DATA (3). */
  flag: number;
  /** The position written after the flag (meaningful when the flag is K_OFFSET_POS_SET). */
  position: number;
}

/** What a complete scan found. */
export interface ArchiveLayout {
  version: string;
  intSize: number;
  offSize: number;
  entries: TocSlot[];
  /** Where each data block starts (its block-type byte), by dumpId. */
  blocks: Map<number, number>;
  /** The archive's length: the end of its last block. */
  size: number;
}

/** Why the archive is left as it is (not an error of the snapshot: pg_restore reads it as before). */
export class UnknownLayout extends Error {}

/**
 * Random access to a file that may still be growing: `read` waits for bytes not written yet until
 * `end(size)` says the file is complete.
 */
export class GrowingFile {
  private final: number | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly fh: FileHandle,
    private readonly pollMs = 20,
  ) {}

  /** The file is complete at `size` bytes. */
  end(size: number): void {
    this.final = size;
    this.wake?.();
  }

  /** Stops every pending and later read (they reject with UnknownLayout). */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** Reads from `pos` into `buf`: at least `min` bytes (fewer only at the final end), as many as are there up to buf's length. */
  async read(buf: Buffer, pos: number, min: number): Promise<number> {
    let got = 0;
    for (;;) {
      if (this.stopped) throw new UnknownLayout('stopped');
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, pos + got);
      got += bytesRead;
      if (got >= min) return got;
      if (this.final !== null && pos + got >= this.final) return got;
      if (bytesRead > 0) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }
}

/** Reads the custom format's integers and strings through a window over the file. */
class Cursor {
  pos = 0;
  private win: Buffer;
  private winStart = 0;
  private winLen = 0;
  intSize = 4;
  version = 0;

  constructor(
    private readonly file: GrowingFile,
    windowBytes: number,
  ) {
    this.win = Buffer.allocUnsafe(windowBytes);
  }

  /** Makes `n` bytes at pos readable from the window; false at the end of the file (fewer there). */
  async ensure(n: number): Promise<boolean> {
    if (this.pos >= this.winStart && this.pos + n <= this.winStart + this.winLen) return true;
    if (n > this.win.length) this.win = Buffer.allocUnsafe(n);
    this.winStart = this.pos;
    this.winLen = await this.file.read(this.win, this.pos, n);
    return this.winLen >= n;
  }

  /** Whether `n` bytes at pos are in the window already (no await needed). */
  has(n: number): boolean {
    return this.pos >= this.winStart && this.pos + n <= this.winStart + this.winLen;
  }

  async need(n: number): Promise<void> {
    if (!(await this.ensure(n))) throw new UnknownLayout(`the file ends inside a field at ${this.pos}`);
  }

  /** Whether the file ends exactly here. */
  async atEnd(): Promise<boolean> {
    return !(await this.ensure(1)) && this.pos === this.winStart + this.winLen;
  }

  /** The byte `i` after pos, in the window. */
  peek(i: number): number {
    return this.win[this.pos + i - this.winStart]!;
  }

  byteNow(): number {
    return this.win[this.pos++ - this.winStart]!;
  }

  async byte(): Promise<number> {
    await this.need(1);
    return this.byteNow();
  }

  /** ReadInt: a sign byte, then intSize bytes, least significant first (needs 1 + intSize bytes in the window). */
  intNow(): number {
    const at = this.pos - this.winStart;
    const negative = this.win[at] !== 0;
    let v = 0;
    for (let i = this.intSize; i >= 1; i--) v = v * 256 + this.win[at + i]!;
    this.pos += 1 + this.intSize;
    return negative ? -v : v;
  }

  async int(): Promise<number> {
    await this.need(1 + this.intSize);
    return this.intNow();
  }

  /** ReadStr: a length (negative: NULL), then that many bytes. */
  async str(): Promise<string | null> {
    const len = await this.int();
    if (len < 0) return null;
    // Read from an archive not verified yet: a length no definition has is not given memory.
    if (len > MAX_STRING) throw new UnknownLayout(`a string of ${len} bytes at ${this.pos}`);
    await this.need(len);
    const at = this.pos - this.winStart;
    this.pos += len;
    return this.win.toString('utf8', at, at + len);
  }

  skip(n: number): void {
    this.pos += n;
  }
}

/** ReadHead: everything before the table of contents; throws UnknownLayout for what is not read here. */
async function readHead(c: Cursor): Promise<{ version: number; offSize: number }> {
  await c.need(5);
  const magic = [0, 1, 2, 3, 4].map(() => String.fromCharCode(c.byteNow())).join('');
  if (magic !== 'PGDMP') throw new UnknownLayout('not a pg_dump archive');
  const major = await c.byte();
  const minor = await c.byte();
  const rev = await c.byte();
  const version = (major * 256 + minor) * 256 + rev;
  if (version < OLDEST || version > NEWEST) throw new UnknownLayout(`archive version ${major}.${minor}.${rev}`);
  c.version = version;
  c.intSize = await c.byte();
  const offSize = await c.byte();
  // Positions are JavaScript numbers: exact up to 2^53, so 8-byte offsets are fine, wider are not expected.
  if (c.intSize < 1 || c.intSize > 6 || offSize < 1 || offSize > 8) throw new UnknownLayout(`sizes ${c.intSize}/${offSize}`);
  if ((await c.byte()) !== FORMAT_CUSTOM) throw new UnknownLayout('not the custom format');
  // 1.15 (pg_dump 16) names the compression in one byte; before, the level as an int.
  if (version >= vers(15)) await c.byte();
  else await c.int();
  for (let i = 0; i < 7; i++) await c.int(); // creation time: sec, min, hour, mday, mon, year, isdst
  await c.str(); // the database's name
  await c.str(); // the server's version (1.10+)
  await c.str(); // pg_dump's version
  return { version, offSize };
}

/** ReadToc with the custom format's _ReadExtraToc: every entry and where its offset field is. */
async function readToc(c: Cursor, offSize: number): Promise<TocSlot[]> {
  const count = await c.int();
  if (count < 0) throw new UnknownLayout('negative entry count');
  const entries: TocSlot[] = [];
  for (let i = 0; i < count; i++) {
    const dumpId = await c.int();
    if (dumpId <= 0) throw new UnknownLayout(`entry ID ${dumpId}`);
    await c.int(); // hadDumper
    await c.str(); // catalog table oid
    await c.str(); // oid
    const tag = (await c.str()) ?? '';
    const desc = (await c.str()) ?? '';
    await c.int(); // section (1.11+)
    await c.str(); // defn
    await c.str(); // dropStmt
    await c.str(); // copyStmt
    await c.str(); // namespace
    await c.str(); // tablespace (1.10+)
    if (c.version >= vers(14)) await c.str(); // tableam
    if (c.version >= vers(16)) await c.int(); // relkind
    await c.str(); // owner
    await c.str(); // "false": WITH OIDS (1.9+)
    while ((await c.str()) !== null); // dependencies, ended by a NULL string
    await c.need(1 + offSize);
    const offsetAt = c.pos;
    const flag = c.byteNow();
    if (flag !== K_OFFSET_POS_NOT_SET && flag !== K_OFFSET_POS_SET && flag !== K_OFFSET_NO_DATA) {
      throw new UnknownLayout(`offset flag ${flag} of entry ${dumpId}`);
    }
    let position = 0;
    for (let b = offSize - 1; b >= 0; b--) position = position * 256 + c.peek(b);
    c.skip(offSize);
    entries.push({ dumpId, desc, tag, offsetAt, flag, position });
  }
  return entries;
}

/** _skipData: chunks of `int length` + bytes, ended by length 0; only the lengths are read. */
async function skipChunks(c: Cursor): Promise<void> {
  const n = 1 + c.intSize;
  for (;;) {
    // One chunk per row in an uncompressed dump: the window is awaited only when it runs out.
    if (!c.has(n)) await c.need(n);
    const len = c.intNow();
    if (len === 0) return;
    if (len < 0) throw new UnknownLayout(`chunk length ${len} at ${c.pos - n}`);
    c.skip(len);
  }
}

/** The data blocks from the end of the table of contents to the end of the file: where each starts. */
async function readBlocks(c: Cursor, entries: TocSlot[]): Promise<Map<number, number>> {
  const withData = new Set(entries.filter((e) => e.flag !== K_OFFSET_NO_DATA).map((e) => e.dumpId));
  const blocks = new Map<number, number>();
  while (!(await c.atEnd())) {
    const at = c.pos;
    const type = await c.byte();
    const id = await c.int();
    if (!withData.has(id) || blocks.has(id)) throw new UnknownLayout(`block of entry ${id} at ${at}`);
    blocks.set(id, at);
    if (type === BLK_DATA) await skipChunks(c);
    else if (type === BLK_BLOBS) {
      // _skipLOs: per large object its oid, then its chunks; oid 0 ends the block.
      while ((await c.int()) !== 0) await skipChunks(c);
    } else throw new UnknownLayout(`block type ${type} at ${at}`);
  }
  return blocks;
}

/**
 * Reads a custom-format archive (as it grows, through `file`) to its end: the table of contents and
 * where every data block starts. Throws UnknownLayout for anything not understood.
 */
export async function scanArchive(file: GrowingFile, windowBytes = 1 << 20): Promise<ArchiveLayout> {
  const c = new Cursor(file, windowBytes);
  const { version, offSize } = await readHead(c);
  const entries = await readToc(c, offSize);
  const blocks = await readBlocks(c, entries);
  const v = (x: number, s: number): number => (x >> s) & 255;
  return { version: `${v(version, 16)}.${v(version, 8)}.${v(version, 0)}`, intSize: c.intSize, offSize, entries, blocks, size: c.pos };
}

/**
 * Writes K_OFFSET_POS_SET and the block's position into the offset field of every entry whose data
 * block was found and whose offset is not set; returns how many were written. Entries already set
 * are left as they are (pg_dump wrote them to a seekable file, or this ran before).
 */
export async function patchOffsets(fh: FileHandle, layout: ArchiveLayout): Promise<number> {
  const max = 2 ** Math.min(53, layout.offSize * 8);
  let written = 0;
  for (const e of layout.entries) {
    const at = layout.blocks.get(e.dumpId);
    if (e.flag !== K_OFFSET_POS_NOT_SET || at === undefined || at >= max) continue;
    const field = Buffer.alloc(1 + layout.offSize);
    field[0] = K_OFFSET_POS_SET;
    let rest = at;
    for (let i = 1; i <= layout.offSize; i++) {
      field[i] = rest % 256;
      rest = Math.floor(rest / 256);
    }
    await fh.write(field, 0, field.length, e.offsetAt);
    written++;
  }
  return written;
}

/** An archive being followed while it is written: `finish` patches it once it is complete and verified. */
export interface ArchiveIndexer {
  /**
   * The file is complete at `size` bytes and verified: waits for the scan and writes the offsets
   * (when the scan understood the whole file, ending at `size`). Returns how many entries were patched.
   */
  finish(size: number): Promise<number>;
  /** Stops following (the decryption failed); never throws. */
  abandon(): Promise<void>;
}

/**
 * Follows `filePath` while another program writes it (it may not exist yet), scanning it as a
 * custom-format archive. Nothing is written to it before `finish`.
 */
export function followArchive(filePath: string): ArchiveIndexer {
  let fh: FileHandle | null = null;
  let file: GrowingFile | null = null;
  let abandoned = false;
  let final: number | null = null;
  const opened = (async (): Promise<FileHandle | null> => {
    // The writer creates the file; until then, wait for it.
    for (;;) {
      if (abandoned) return null;
      try {
        return await open(filePath, 'r+');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return null;
        if (final !== null) return null;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  const scanned = opened.then(async (h) => {
    if (!h) return null;
    fh = h;
    file = new GrowingFile(h);
    if (abandoned) file.stop();
    else if (final !== null) file.end(final);
    try {
      return await scanArchive(file);
    } catch {
      // Not understood (or a read failed): the file is left as it is.
      return null;
    }
  });
  const close = async (): Promise<void> => {
    await scanned;
    await fh?.close().catch(() => undefined);
  };
  return {
    async finish(size: number): Promise<number> {
      final = size;
      file?.end(size);
      try {
        const layout = await scanned;
        if (!layout || !fh || layout.size !== size) return 0;
        // A write that fails midway leaves the entries before it set (correct) and the rest as they were.
        return await patchOffsets(fh, layout).catch(() => 0);
      } finally {
        await close();
      }
    },
    async abandon(): Promise<void> {
      abandoned = true;
      file?.stop();
      await close().catch(() => undefined);
    },
  };
}
