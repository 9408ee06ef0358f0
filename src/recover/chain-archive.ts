/**
 * A chain's restore as one pg_dump archive, so that pg_restore's own scheduler loads it as it loads a
 * full snapshot: the biggest tables first, each table's indexes and constraints built as soon as its
 * rows are in, beside the other tables' loads. The base's schema part is a custom-format archive
 * without data; its rows part is SQL (settings, one `COPY … FROM stdin` block per table, the
 * sequences' setval). Here the two become one archive in the private temp folder: the schema's
 * header and table of contents, copied as they are, one `TABLE DATA` entry per COPY block (as
 * pg_dump writes them: the COPY statement, the table's entry as its dependency), then each block's
 * rows in data chunks, the rows a chain's deltas replaced or deleted left out (chain-plan.ts) and
 * the rows that win appended to their table's block, every entry's data offset set (pg_restore -j
 * seeks, and sizes each table by them). The rows' SQL other than COPY (the setval lines after the
 * blocks) is returned, to be run by psql. Anything not in the form permafrost writes is
 * UnknownLayout, and the caller restores the rows as before.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { qualified } from '../capture/delta-sql.js';
import {
  BLK_DATA,
  GrowingFile,
  K_OFFSET_NO_DATA,
  offsetField,
  scanArchive,
  UnknownLayout,
  vers,
  type ArchiveLayout,
  type TocSlot,
} from './archive-toc.js';
import { parseCopyHeader, type BaseRowsFilter, type ChainPlan } from './chain-plan.js';
import { readFully, RowsSplitter, settingsOnly, type RowsSegment } from './parallel-rows.js';
import type { PlainSink } from './decrypt.js';

/** SECTION_DATA of pg_backup_archiver.h. */
const SECTION_DATA = 3;
/** The buffer rows are read through and the data chunk they are written in. */
const BUFFER = 1 << 20;
const END_OF_DATA = Buffer.from('\\.\n');

/** What chainArchiveSink made: the archive's tables with rows, and the rows' other SQL to run (settings, the sequences). */
export interface ChainArchive {
  tables: number;
  sql: string;
}

/** One table's data entry: its TABLE entry, COPY statement, ID and where its block starts. */
interface TableData {
  table: TocSlot;
  copyStmt: string;
  dumpId: number;
  position: number;
}

/** Reads the whole of a complete file's range into a new buffer (short ranges only: a header line). */
async function readRange(fh: FileHandle, start: number, end: number): Promise<Buffer> {
  const buf = Buffer.alloc(end - start);
  for (let got = 0; got < buf.length; ) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
    if (bytesRead === 0) throw new UnknownLayout('a file ended inside a block');
    got += bytesRead;
  }
  return buf;
}

/** The first line of a COPY segment (its statement, without the newline) and where the rows start. */
async function copyLine(fh: FileHandle, seg: RowsSegment): Promise<{ line: string; bodyAt: number }> {
  const head = await readRange(fh, seg.start, Math.min(seg.end, seg.start + 64 * 1024));
  const nl = head.indexOf(0x0a);
  if (nl < 0) throw new UnknownLayout('a COPY statement longer than 64 KiB');
  const tail = await readRange(fh, seg.end - END_OF_DATA.length, seg.end);
  if (!tail.equals(END_OF_DATA) || seg.start + nl + 1 > seg.end - END_OF_DATA.length)
    throw new UnknownLayout('a COPY block without its end');
  return { line: head.toString('utf8', 0, nl), bodyAt: seg.start + nl + 1 };
}

/** The schema archive's layout, when it is one this writer can add data to: no data, UTF-8, a known version. */
async function schemaLayout(file: string): Promise<ArchiveLayout> {
  const fh = await open(file, 'r');
  try {
    const growing = new GrowingFile(fh);
    growing.end((await fh.stat()).size);
    const layout = await scanArchive(growing);
    if (layout.blocks.size > 0 || layout.entries.some((e) => e.flag !== K_OFFSET_NO_DATA))
      throw new UnknownLayout('the schema archive holds data');
    // The rows were captured as UTF-8 (delta-sql.ts SQL_FILE_HEADER); pg_restore sets the archive's encoding.
    const encoding = layout.entries.find((e) => e.desc === 'ENCODING');
    if (encoding?.defn !== "SET client_encoding = 'UTF8';\n") throw new UnknownLayout('the schema archive is not UTF-8');
    return layout;
  } finally {
    await fh.close();
  }
}

/** The custom format's integers, strings and offsets (pg_backup_archiver.c WriteInt, WriteStr, WriteOffset). */
class TocWriter {
  private readonly parts: Buffer[] = [];
  length = 0;

  constructor(private readonly layout: ArchiveLayout) {}

  private push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }

  int(v: number): void {
    const b = Buffer.alloc(1 + this.layout.intSize);
    b[0] = v < 0 ? 1 : 0;
    let rest = Math.abs(v);
    for (let i = 1; i <= this.layout.intSize; i++) {
      b[i] = rest % 256;
      rest = Math.floor(rest / 256);
    }
    this.push(b);
  }

  str(s: string | null): void {
    if (s === null) return this.int(-1);
    const b = Buffer.from(s, 'utf8');
    this.int(b.length);
    this.push(b);
  }

  /** The data offset field, set to `position`. */
  offset(position: number): void {
    if (position >= 2 ** Math.min(53, this.layout.offSize * 8)) throw new UnknownLayout('the archive is too big for its offsets');
    this.push(offsetField(position, this.layout.offSize));
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A TABLE DATA entry as pg_dump's dumpTableData writes it, its data offset set. */
function dataEntry(w: TocWriter, t: TableData, layout: ArchiveLayout): void {
  w.int(t.dumpId);
  w.int(1); // a data dumper
  w.str('0');
  w.str('0');
  w.str(t.table.tag);
  w.str('TABLE DATA');
  w.int(SECTION_DATA);
  w.str('');
  w.str('');
  w.str(`${t.copyStmt}\n`);
  w.str(t.table.namespace);
  w.str(null);
  if (layout.versionNumber >= vers(14)) w.str(null);
  if (layout.versionNumber >= vers(16)) w.int(0);
  w.str(t.table.owner);
  w.str('false');
  w.str(String(t.table.dumpId));
  w.str(null);
  w.offset(t.position);
}

/** Writes an archive's bytes in order: raw pieces, and data chunks (`int length`, then the bytes) filled through one buffer. */
class BlockWriter {
  private readonly chunk: Buffer;
  private used: number;

  constructor(
    private readonly out: FileHandle,
    private readonly int: (v: number) => Buffer,
    /** Where the next byte goes. */
    public at = 0,
  ) {
    this.chunk = Buffer.allocUnsafe(BUFFER);
    this.used = 0;
  }

  async raw(b: Buffer): Promise<void> {
    for (let done = 0; done < b.length; ) {
      const { bytesWritten } = await this.out.write(b, done, b.length - done, this.at + done);
      done += bytesWritten;
    }
    this.at += b.length;
  }

  /** Adds src[start, end) to the chunk being filled; a chunk is written when full (a range bigger than one is a chunk of its own). */
  async add(src: Buffer, start: number, end: number): Promise<void> {
    if (end - start > this.chunk.length - this.used) await this.flush();
    if (end - start > this.chunk.length) {
      await this.raw(this.int(end - start));
      await this.raw(src.subarray(start, end));
      return;
    }
    this.used += src.copy(this.chunk, this.used, start, end);
  }

  /** Writes the chunk being filled, if it holds anything. */
  async flush(): Promise<void> {
    if (this.used === 0) return;
    const n = this.used;
    this.used = 0;
    await this.raw(this.int(n));
    await this.raw(this.chunk.subarray(0, n));
  }
}

/**
 * Streams `[from, to)` of `fh` (whole lines) into the block, through `filter` when given (which has
 * seen the block's COPY line): a line the filter cannot finish in the buffer is read again at the
 * start of the next read.
 */
async function copyRows(
  fh: FileHandle,
  from: number,
  to: number,
  block: BlockWriter,
  filter: BaseRowsFilter | null,
  reader: { buf: Buffer },
): Promise<void> {
  let buf = reader.buf;
  const ranges: number[] = [];
  for (let pos = from; pos < to; ) {
    const got = Math.min(buf.length, to - pos);
    await readFully(fh, buf, got, pos);
    let used = got;
    ranges.length = 0;
    if (filter) {
      used = filter.take(buf, 0, got, (s, e) => ranges.push(s, e));
      if (pos + got === to && used < got) {
        ranges.push(used, got);
        used = got;
      }
    } else ranges.push(0, got);
    for (let i = 0; i < ranges.length; i += 2) await block.add(buf, ranges[i]!, ranges[i + 1]!);
    if (used === 0) {
      // One line longer than the buffer: a bigger one.
      buf = Buffer.allocUnsafe(buf.length * 2);
      reader.buf = buf;
      continue;
    }
    pos += used;
  }
}

/** The head's room before the first data block: the schema's header and entries, and per table a bound on its data entry. */
function headRoom(layout: ArchiveLayout): number {
  const tables = layout.entries.filter((e) => e.desc === 'TABLE');
  const bytes = (x: string | null): number => (x === null ? 0 : Buffer.byteLength(x));
  // A data entry: 18 integers and string lengths (7 bytes at most each), the offset (9), short strings, the tag, schema and
  // owner, and the COPY statement, whose column list is shorter than the table's CREATE statement.
  return layout.tocEnd + 64 + tables.reduce((n, t) => n + 256 + 3 * (bytes(t.tag) + bytes(t.namespace)) + bytes(t.owner) + t.defnBytes, 0);
}

/** What a chainArchiveSink made of the rows: the archive, or why the rows were left as they are (then `out` is not to be used). */
export type ChainArchiveResult = { archive: ChainArchive } | { unknown: string };

/**
 * The state of one archive being written behind gpg: the rows file as it grows, cut into its
 * segments; each COPY block, once complete (and the plan read), written as its table's data block
 * after room left for the head, which is written last, when every block's offset is known.
 */
class ArchiveFollower {
  private handle: FileHandle | null = null;
  private growing: GrowingFile | null = null;
  private readonly segs: RowsSegment[] = [];
  private ended = false;
  private wake: () => void = () => undefined;
  private readonly splitter = new RowsSplitter((s) => {
    this.segs.push(s);
    this.wake();
  });
  private following: Promise<void> = Promise.resolve();
  /** The buffer the blocks are read through (grown for a line longer than it). */
  private readonly reader = { buf: Buffer.allocUnsafe(BUFFER) };
  readonly result: Promise<ChainArchiveResult>;
  private opened!: () => void;

  constructor(private readonly opts: { rowsFile: string; schema: string; plan: Promise<ChainPlan | null>; out: string }) {
    const isOpen = new Promise<void>((r) => (this.opened = r));
    this.result = isOpen
      .then(() => this.write())
      .catch((err: unknown) => {
        if (err instanceof UnknownLayout) return { unknown: err.message };
        throw err;
      });
    this.result.catch(() => undefined);
  }

  /** Creates the file gpg writes the rows into (0600) and starts following it; its descriptor. */
  async open(progress?: (bytes: number) => void): Promise<number> {
    this.handle = await open(this.opts.rowsFile, 'wx+', 0o600);
    this.growing = new GrowingFile(this.handle);
    this.following = this.follow(this.growing, progress);
    this.opened();
    return this.handle.fd;
  }

  /** gpg has exited: the file is complete at `bytes` (null: never opened). */
  end(bytes: number | null): void {
    if (bytes === null || !this.growing) {
      this.ended = true;
      this.opened();
    } else this.growing.end(bytes);
    this.wake();
  }

  private async follow(growing: GrowingFile, progress?: (bytes: number) => void): Promise<void> {
    const buf = Buffer.allocUnsafe(BUFFER);
    let at = 0;
    try {
      for (;;) {
        const n = await growing.read(buf, at, 1);
        if (n === 0) break;
        this.splitter.push(buf.subarray(0, n));
        at += n;
        progress?.(at);
      }
      this.splitter.end();
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  /** The next complete segment, or null once the file has ended and every one was taken. */
  private async next(i: number): Promise<RowsSegment | null> {
    for (;;) {
      if (i < this.segs.length) return this.segs[i]!;
      if (this.ended) {
        await this.following;
        if (i < this.segs.length) return this.segs[i]!;
        return null;
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  private async write(): Promise<ChainArchiveResult> {
    const rows = this.handle;
    if (!rows) throw new UnknownLayout('the rows were never written');
    const layout = await schemaLayout(this.opts.schema);
    const plan = await this.opts.plan;
    const tables = new Map(
      layout.entries.filter((e) => e.desc === 'TABLE' && e.namespace !== null).map((e) => [qualified(e.namespace!, e.tag), e]),
    );
    // The plan's winning rows, by table (one block per delta that has some).
    const winning = new Map<string, { seg: RowsSegment; bodyAt: number }[]>();
    const winningFile = plan && plan.blocks.length > 0 ? await open(plan.blocks[0]!.file!, 'r') : null;
    const out = await open(this.opts.out, 'wx', 0o600);
    try {
      for (const seg of plan?.blocks ?? []) {
        const { line, bodyAt } = await copyLine(winningFile!, seg);
        const h = parseCopyHeader(line);
        const name = h ? qualified(h.schema, h.table) : '';
        if (!h || !tables.has(name)) throw new UnknownLayout(`winning rows not of a table of the schema: ${line.slice(0, 200)}`);
        winning.set(name, [...(winning.get(name) ?? []), { seg, bodyAt }]);
      }
      const int = (v: number): Buffer => {
        const tw = new TocWriter(layout);
        tw.int(v);
        return tw.bytes();
      };
      const room = headRoom(layout);
      const block = new BlockWriter(out, int, room);
      const data: TableData[] = [];
      const done = new Set<string>();
      let nextId = Math.max(0, ...layout.entries.map((e) => e.dumpId)) + 1;
      let headerSql = '';
      let afterSql = '';
      for (let i = 0, seg = await this.next(0); seg; seg = await this.next(++i)) {
        if (seg.kind === 'sql') {
          const text = (await readRange(rows, seg.start, seg.end)).toString('utf8');
          if (data.length === 0) headerSql += text;
          else afterSql += text;
          continue;
        }
        if (afterSql !== '') throw new UnknownLayout('SQL between the COPY blocks');
        if (data.length === 0 && (!settingsOnly(headerSql) || !headerSql.includes("SET client_encoding = 'UTF8';")))
          throw new UnknownLayout('the rows start with other SQL than settings');
        const { line, bodyAt } = await copyLine(rows, seg);
        const h = parseCopyHeader(line);
        const name = h ? qualified(h.schema, h.table) : '';
        const table = tables.get(name);
        if (!h || !table || done.has(name)) throw new UnknownLayout(`a COPY block not of one table of the schema: ${line.slice(0, 200)}`);
        done.add(name);
        const t: TableData = { table, copyStmt: line, dumpId: nextId++, position: block.at };
        data.push(t);
        await block.raw(Buffer.concat([Buffer.from([BLK_DATA]), int(t.dumpId)]));
        const filter = plan ? plan.baseFilter() : null;
        if (filter) {
          // The filter learns the table from the COPY line, which is not written.
          const head = await readRange(rows, seg.start, bodyAt);
          filter.take(head, 0, head.length, () => undefined);
        }
        await copyRows(rows, bodyAt, seg.end - END_OF_DATA.length, block, filter, this.reader);
        for (const w of winning.get(name) ?? []) {
          const { line: wline } = await copyLine(winningFile!, w.seg);
          if (wline !== line) throw new UnknownLayout(`winning rows in other columns than the base's: ${wline.slice(0, 200)}`);
          await copyRows(winningFile!, w.bodyAt, w.seg.end - END_OF_DATA.length, block, null, this.reader);
        }
        await block.flush();
        await block.raw(int(0));
      }
      if (data.length === 0) throw new UnknownLayout('the rows hold no COPY block');
      for (const name of winning.keys())
        if (!done.has(name)) throw new UnknownLayout(`winning rows of ${name}, which has no rows in the base`);
      await this.writeHead(out, layout, data, int, room);
      return { archive: { tables: data.length, sql: headerSql + afterSql } };
    } finally {
      await Promise.all([winningFile?.close(), out.close()]);
    }
  }

  /** The head, at the start of `out`: the schema's header (compression none: the chunks are plain) and entries, then one data entry per table with its offset. */
  private async writeHead(
    out: FileHandle,
    layout: ArchiveLayout,
    data: TableData[],
    int: (v: number) => Buffer,
    room: number,
  ): Promise<void> {
    const schema = await open(this.opts.schema, 'r');
    let head: Buffer;
    try {
      head = await readRange(schema, 0, layout.tocEnd);
    } finally {
      await schema.close();
    }
    if (layout.versionNumber >= vers(15)) head[layout.compressionAt] = 0;
    else head.fill(0, layout.compressionAt, layout.compressionAt + 1 + layout.intSize);
    const entries = new TocWriter(layout);
    for (const t of data) dataEntry(entries, t, layout);
    const firstEntry = layout.entries[0]?.start ?? layout.tocEnd;
    const whole = Buffer.concat([
      head.subarray(0, layout.tocAt),
      int(layout.entries.length + data.length),
      head.subarray(firstEntry, layout.tocEnd),
      entries.bytes(),
    ]);
    // Between the head and the first block: bytes pg_restore never reads (every entry's data is found by its offset).
    if (whole.length > room) throw new UnknownLayout(`the table of contents (${whole.length} bytes) outgrew its room (${room})`);
    for (let done = 0; done < whole.length; ) done += (await out.write(whole, done, whole.length - done, done)).bytesWritten;
  }

  /** Waits for the follower, then closes the rows file (which the caller removes). */
  async close(): Promise<void> {
    await this.following.catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
  }
}

/**
 * A sink for decryptPartInto: gpg writes the base's rows into `rowsFile` (0600, must not exist),
 * followed as it grows; each COPY block, once complete, is written into the archive `out` (filtered
 * by the plan). `result` tells the archive or why the rows were left as they are; the caller removes both files.
 */
export function chainArchiveSink(opts: { rowsFile: string; schema: string; plan: Promise<ChainPlan | null>; out: string }): PlainSink & {
  result: Promise<ChainArchiveResult>;
} {
  const f = new ArchiveFollower(opts);
  const result = f.result.finally(() => f.close());
  result.catch(() => undefined);
  return {
    file: { open: (progress) => f.open(progress), end: (bytes) => f.end(bytes) },
    done: result.then(() => undefined),
    result,
  };
}
