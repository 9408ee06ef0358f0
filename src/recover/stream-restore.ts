/**
 * A full snapshot's pg_dump archive restored as gpg decrypts it, without its plaintext on disk.
 * The ciphertext was copied into the private temp folder and checked against the signed manifest
 * first (decrypt.ts copyVerifiedCipher), so what gpg writes is the archive the manifest names,
 * before gpg's own verdict at its end. The custom format (archive-toc.ts) is read as it arrives:
 * its header and table of contents go to a small private file, on which `pg_restore
 * --section=pre-data` runs at once; every TABLE DATA block's rows are cut at row boundaries into
 * pieces loaded by COPY on `jobs` sessions (pieces of one table on several sessions); after gpg's
 * verdict, the data entries without a block (SEQUENCE SET) and `pg_restore -j N
 * --section=post-data` run on the same small file. Everything goes into `_incoming`, which the
 * caller drops on any failure.
 *
 * An archive this does not fully understand (pg_dump's own compression, large objects, a data
 * block of another kind, a COPY statement of another shape, no ENCODING entry) is recognised at
 * its table of contents, before anything runs: NotStreamable, and the caller takes the file path.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { connect, type PgServer } from '../tools/postgres.js';
import { PermafrostError, errorMessage } from '../errors.js';
import { readArchiveHead, UnknownLayout, type ArchiveHead, type ByteSource, type TocSlot } from './archive-toc.js';
import type { PlainSink } from './decrypt.js';

/** The archive is one this module does not stream (the reason says why); nothing has run yet. */
export class NotStreamable extends Error {}

/** The rows handed to one COPY at a time. */
const PIECE_BYTES = 512 << 10;
/** A table of contents longer than this is not streamed. */
const MAX_TOC_BYTES = 64 << 20;
const K_OFFSET_NO_DATA = 3;
const SECTION_NONE = 1;
const SECTION_DATA = 3;
const BLK_DATA = 1;

/** An identifier as pg_dump's fmtId writes it: plain lower case, or double-quoted with "" for ". */
const IDENT = '(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")';
/** pg_dump's COPY statement (dumpTableData): `COPY schema.table (col, …) FROM stdin;`, the column list empty for a table without columns. */
const COPY_STMT = new RegExp(`^COPY ${IDENT}\\.${IDENT} (?:\\(${IDENT}(?:, ${IDENT})*\\))? FROM stdin;\\n$`);
/** The ENCODING entry's definition. */
const ENCODING_DEFN = /^SET client_encoding = '([A-Za-z0-9_]+)';\n$/;

/** Whether `stmt` is a COPY statement exactly as pg_dump writes one (nothing else may run through a COPY session). */
export function isDumpCopyStatement(stmt: string | null): boolean {
  return stmt !== null && COPY_STMT.test(stmt);
}

/** The plan read from the table of contents: what streams, and the client encoding of the rows. */
export interface StreamPlan {
  head: ArchiveHead;
  encoding: string;
  /** TABLE DATA entries by dumpId: each has a block whose rows are loaded by its COPY statement. */
  tables: Map<number, TocSlot>;
  /** The data-section entries without a block (SEQUENCE SET), restored by pg_restore after the rows. */
  blockless: number[];
  /**
   * Post-data entries built while other tables still load (an index, a key): by dumpId, the TABLE
   * DATA entries every table they depend on (directly or through other entries) is loaded by.
   */
  early: Map<number, number[]>;
}

/** What may be built as soon as its tables are loaded: indexes and constraints only (never ACLs, triggers, refreshes). */
const EARLY = new Set(['INDEX', 'CONSTRAINT', 'FK CONSTRAINT']);
const SECTION_POST_DATA = 4;

/**
 * The post-data entries that can run before the end: an index or constraint whose dependencies
 * (followed through every entry) reach at least one loaded table and no data entry without a block,
 * and whose post-data dependencies can run early too (so pg_restore sees them in the same or an
 * earlier list).
 */
function earlyEntries(
  entries: readonly TocSlot[],
  sections: Map<number, number>,
  tables: Map<number, TocSlot>,
  blockless: Set<number>,
): Map<number, number[]> {
  const byId = new Map(entries.map((e) => [e.dumpId, e]));
  const dataOfTable = new Map<number, number>();
  for (const t of tables.values()) for (const d of t.deps) if (byId.get(d)?.desc === 'TABLE') dataOfTable.set(d, t.dumpId);
  const memo = new Map<number, Set<number> | null>();
  const needs = (id: number): Set<number> | null => {
    const known = memo.get(id);
    if (known !== undefined) return known;
    const out = new Set<number>();
    memo.set(id, out); // a cycle adds nothing
    for (const d of byId.get(id)?.deps ?? []) {
      if (blockless.has(d) || !byId.has(d)) {
        memo.set(id, null);
        return null;
      }
      const data = tables.has(d) ? d : dataOfTable.get(d);
      if (data !== undefined) out.add(data);
      const sub = needs(d);
      if (sub === null) {
        memo.set(id, null);
        return null;
      }
      for (const x of sub) out.add(x);
    }
    return out;
  };
  const ok = new Map<number, boolean>();
  const eligible = (e: TocSlot): boolean => {
    const known = ok.get(e.dumpId);
    if (known !== undefined) return known;
    ok.set(e.dumpId, false);
    const n = needs(e.dumpId);
    const self = sections.get(e.dumpId) === SECTION_POST_DATA && EARLY.has(e.desc) && n !== null && n.size > 0;
    const result = self && e.deps.every((d) => sections.get(d) !== SECTION_POST_DATA || eligible(byId.get(d)!));
    ok.set(e.dumpId, result);
    return result;
  };
  const early = new Map<number, number[]>();
  for (const e of entries) if (eligible(e)) early.set(e.dumpId, [...needs(e.dumpId)!]);
  return early;
}

/** Judges a table of contents: the plan, or NotStreamable naming what is not understood. */
export function streamPlan(head: ArchiveHead): StreamPlan {
  if (head.compressed) throw new NotStreamable('pg_dump compressed the data itself');
  const encoding = ENCODING_DEFN.exec(head.entries.find((e) => e.desc === 'ENCODING')?.defn ?? '')?.[1];
  if (!encoding) throw new NotStreamable('no ENCODING entry');
  const tables = new Map<number, TocSlot>();
  const blockless: number[] = [];
  const sections = new Map<number, number>();
  // pg_restore puts an entry without a section where the entry before it is (ProcessArchiveRestoreOptions).
  let section = 2;
  for (const e of head.entries) {
    if (e.section !== SECTION_NONE) section = e.section;
    sections.set(e.dumpId, section);
    if (e.flag !== K_OFFSET_NO_DATA) {
      if (e.desc !== 'TABLE DATA') throw new NotStreamable(`a data block of kind ${e.desc}`);
      if (!isDumpCopyStatement(e.copyStmt)) throw new NotStreamable(`the COPY statement of entry ${e.dumpId}`);
      tables.set(e.dumpId, e);
    } else if (section === SECTION_DATA && !['ENCODING', 'STDSTRINGS', 'SEARCHPATH'].includes(e.desc)) blockless.push(e.dumpId);
  }
  return { head, encoding, tables, blockless, early: earlyEntries(head.entries, sections, tables, new Set(blockless)) };
}

/** The bytes received so far, read by the table-of-contents parser; `ranOut` when it wanted more. */
class HeldBytes implements ByteSource {
  ranOut = false;
  constructor(private readonly bytes: Buffer) {}
  read(buf: Buffer, pos: number, min: number): Promise<number> {
    const n = Math.max(0, Math.min(buf.length, this.bytes.length - pos));
    this.bytes.copy(buf, 0, pos, pos + n);
    if (n < min) this.ranOut = true;
    return Promise.resolve(n);
  }
}

/** Session settings of every COPY session, as pg_restore sets them (_doSetFixedOutputState), plus restore's own. */
function sessionSql(encoding: string, role: string | undefined, escape: (s: string) => string): string {
  return [
    'SET statement_timeout = 0',
    'SET lock_timeout = 0',
    'SET idle_in_transaction_session_timeout = 0',
    `SET client_encoding = '${encoding}'`,
    'SET standard_conforming_strings = on',
    "SELECT pg_catalog.set_config('search_path', '', false)",
    'SET check_function_bodies = false',
    'SET xmloption = content',
    'SET client_min_messages = warning',
    'SET row_security = off',
    'SET synchronous_commit = off',
    ...(role ? [`SET ROLE ${escape(role)}`] : []),
  ].join('; ');
}

/** Where and how the stream is restored. */
export interface StreamTarget {
  server: PgServer;
  database: string;
  /** COPY sessions. */
  jobs: number;
  role?: string;
  /** The private temp folder: the header and table of contents are written there. */
  dir: string;
  /** Runs pg_restore of `section` on the table-of-contents file (pre-data now; data and post-data later by the caller). */
  preData: (tocFile: string) => Promise<void>;
  /** Runs pg_restore of the post-data entries `ids` (listed with -L) on the table-of-contents file, while rows still load. */
  postData: (tocFile: string, ids: number[]) => Promise<void>;
  signal: AbortSignal;
  /** Names the snapshot in messages. */
  snapshot: string;
}

interface Session {
  client: pg.Client;
  busy: Promise<void> | null;
}

/**
 * The sink decryptPartInto pipes gpg's plaintext into. `done` resolves once every row is loaded,
 * with the plan and the table-of-contents file (for the caller's data and post-data steps); rejects
 * with NotStreamable before anything ran, or with the failure of a step.
 */
export class ArchiveStreamLoad {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private nextTry = 4096;
  plan: StreamPlan | null = null;
  readonly tocFile: string;
  private preData: Promise<void> | null = null;
  private sessions: Session[] = [];
  private connecting: Promise<void> | null = null;
  private failure: Error | null = null;
  // The data blocks' parser.
  private carry: Buffer = Buffer.alloc(0);
  private mode: 'block' | 'len' | 'bytes' = 'block';
  private table: TocSlot | null = null;
  private left = 0;
  /** The rows gathered for the next COPY, copied out of gpg's chunks without the chunk headers. */
  private piece: Buffer = Buffer.allocUnsafe(PIECE_BYTES);
  private pieceLen = 0;
  /** Where the row being read starts in `piece`. */
  private rowStart = 0;
  private terminated = false;
  private readonly seen = new Set<number>();
  /** Per TABLE DATA entry being loaded: its pieces not loaded yet; a table whose block ended is loaded at 0. */
  private readonly pending = new Map<number, number>();
  private readonly loaded = new Set<number>();
  private readonly ended = new Set<number>();
  /** Post-data entries already handed to pg_restore while rows load. */
  readonly built = new Set<number>();
  private building: Promise<void> | null = null;
  private again = false;
  readonly stdin: Writable;
  readonly done: Promise<void>;

  constructor(private readonly target: StreamTarget) {
    this.tocFile = path.join(target.dir, 'archive-toc.pgdump');
    let finished!: () => void;
    let broke!: (err: Error) => void;
    this.done = new Promise<void>((resolve, reject) => {
      finished = resolve;
      broke = reject;
    });
    this.done.catch(() => undefined);
    this.stdin = new Writable({
      highWaterMark: 64 << 10,
      write: (chunk: Buffer, _enc, cb) => {
        this.take(chunk).then(
          () => cb(),
          (err: Error) => {
            this.failure ??= err;
            cb(err);
          },
        );
      },
      final: (cb) => {
        this.finish().then(
          () => {
            cb();
            finished();
          },
          (err: Error) => {
            this.failure ??= err;
            cb(err);
          },
        );
      },
    });
    this.stdin.once('close', () => {
      if (this.failure) {
        void this.close().finally(() => broke(this.failure!));
      } else if (!this.stdin.writableFinished) {
        this.failure = new Error('the decrypted stream broke off');
        void this.close().finally(() => broke(this.failure!));
      }
    });
  }

  /** The sink for decryptPartInto. */
  sink(): PlainSink {
    return { stdin: this.stdin, done: this.done };
  }

  private async take(chunk: Buffer): Promise<void> {
    if (this.target.signal.aborted) throw new Error('stopped');
    if (this.plan) return this.data(chunk);
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes < this.nextTry) return;
    const bytes = Buffer.concat(this.held);
    this.held = [bytes];
    const source = new HeldBytes(bytes);
    let head: ArchiveHead;
    try {
      head = await readArchiveHead(source);
    } catch (err) {
      if (!(err instanceof UnknownLayout)) throw err;
      if (!source.ranOut) throw new NotStreamable(err.message);
      if (bytes.length > MAX_TOC_BYTES) throw new NotStreamable('a table of contents longer than 64 MiB');
      this.nextTry = bytes.length * 2;
      return;
    }
    this.plan = streamPlan(head);
    this.held = [];
    // Only the header and the table of contents: pg_restore reads nothing else for pre-data and post-data.
    await writeFile(this.tocFile, bytes.subarray(0, head.tocEnd), { flag: 'wx', mode: 0o600 });
    this.preData = this.target.preData(this.tocFile);
    this.preData.catch(() => undefined);
    this.connecting = this.connect();
    this.connecting.catch(() => undefined);
    await this.data(bytes.subarray(head.tocEnd));
  }

  private async connect(): Promise<void> {
    const { server, database, jobs, role } = this.target;
    for (let i = 0; i < Math.max(1, jobs); i++) {
      const client = await connect(server, database);
      this.sessions.push({ client, busy: null });
      await client.query(sessionSql(this.plan!.encoding, role, (s) => client.escapeIdentifier(s)));
    }
  }

  /** Parses data blocks: per block its type and entry, then chunks (length, bytes) ended by a length of 0. */
  private async data(chunk: Buffer): Promise<void> {
    const n = 1 + this.plan!.head.intSize;
    let buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = Buffer.alloc(0);
    let i = 0;
    while (i < buf.length) {
      if (this.mode === 'len') i = this.wholeRows(buf, i, n);
      if (i >= buf.length) break;
      if (this.mode === 'bytes') {
        const take = Math.min(this.left, buf.length - i);
        buf.copy(this.piece, this.pieceLen, i, i + take);
        this.pieceLen += take;
        this.left -= take;
        i += take;
        if (this.left === 0) {
          this.mode = 'len';
          this.endRow();
        }
        continue;
      }
      const need = this.mode === 'block' ? 1 + n : n;
      if (buf.length - i < need) {
        this.carry = Buffer.from(buf.subarray(i));
        return;
      }
      if (this.mode === 'block') {
        const type = buf[i]!;
        const id = readInt(buf, i + 1, n);
        const table = this.plan!.tables.get(id);
        if (type !== BLK_DATA || !table || this.seen.has(id))
          throw new Error(`a data block of entry ${id} (type ${type}) not in the archive's table of contents`);
        this.seen.add(id);
        this.pending.set(id, 0);
        this.table = table;
        this.terminated = false;
        this.mode = 'len';
        i += need;
      } else {
        const len = readInt(buf, i, n);
        i += need;
        if (len < 0) throw new Error(`a chunk length of ${len}`);
        if (len === 0) {
          const rest = buf.subarray(i);
          await this.endBlock();
          buf = rest;
          i = 0;
          this.mode = 'block';
        } else {
          if (this.pieceLen + len > this.piece.length) {
            // The row does not fit: the rows before it go first (the rest of this buffer kept meanwhile).
            if (this.pieceLen > 0) {
              const rest = buf.subarray(i);
              await this.dispatch();
              buf = rest;
              i = 0;
            }
            if (len > this.piece.length) this.piece = Buffer.allocUnsafe(len);
          }
          this.rowStart = this.pieceLen;
          this.mode = 'bytes';
          this.left = len;
        }
      }
    }
  }

  /**
   * The common case in one tight loop: rows whose chunk header and bytes are all in `buf` and that
   * fit in the piece, copied without the chunk headers; stops (for the general parser) at anything
   * else: a row split across buffers, a full piece, the block's end or its end marker. Returns
   * where it stopped.
   */
  private wholeRows(buf: Buffer, from: number, n: number): number {
    const piece = this.piece;
    let i = from;
    let at = this.pieceLen;
    while (i + n <= buf.length) {
      const len = readInt(buf, i, n);
      const s = i + n;
      if (len <= 0 || s + len > buf.length || at + len > piece.length) break;
      // A row starting with `\.` at a line start: the end marker, for endRow to judge.
      if (buf[s] === 0x5c && buf[s + 1] === 0x2e && (at === 0 || piece[at - 1] === 0x0a)) break;
      if (this.terminated) break;
      buf.copy(piece, at, s, s + len);
      at += len;
      i = s + len;
    }
    this.pieceLen = at;
    return i;
  }

  /** One chunk of a block is complete in `piece` (pg_dump writes one per row, then `\.` and blank lines). */
  private endRow(): void {
    if (this.terminated) throw new Error(`rows after the end of the data of ${this.table!.tag}`);
    const s = this.rowStart;
    const atLineStart = s === 0 || this.piece[s - 1] === 0x0a;
    if (atLineStart && this.piece[s] === 0x5c && this.piece[s + 1] === 0x2e) {
      if (!/^\\\.\n*$/.test(this.piece.toString('latin1', s, this.pieceLen)))
        throw new Error(`data after the end marker of ${this.table!.tag}`);
      this.pieceLen = s;
      this.terminated = true;
    }
  }

  private async endBlock(): Promise<void> {
    if (this.pieceLen > 0) await this.dispatch();
    const id = this.table!.dumpId;
    this.table = null;
    this.ended.add(id);
    if (this.pending.get(id) === 0) this.tableLoaded(id);
  }

  /** A table's rows are all in: the indexes and keys waiting only for loaded tables are built meanwhile. */
  private tableLoaded(id: number): void {
    this.loaded.add(id);
    this.build();
  }

  /** One pg_restore at a time builds what is ready; what became ready meanwhile goes in the next. */
  private build(): void {
    if (this.building) {
      this.again = true;
      return;
    }
    const ready = [...this.plan!.early]
      .filter(([id, needs]) => !this.built.has(id) && needs.every((d) => this.loaded.has(d)))
      .map(([id]) => id);
    if (ready.length === 0) return;
    for (const id of ready) this.built.add(id);
    this.building = this.target.postData(this.tocFile, ready).then(
      () => {
        this.building = null;
        if (this.again) {
          this.again = false;
          this.build();
        }
      },
      (err: Error) => {
        this.failure ??= err;
        this.building = null;
      },
    );
  }

  /** Waits until no early build runs (each may start the next). */
  private async builds(): Promise<void> {
    while (this.building) await this.building;
  }

  /** Hands the rows gathered to the next idle session (waiting for pre-data and one idle session). */
  private async dispatch(): Promise<void> {
    const table = this.table!;
    const rows = this.piece.subarray(0, this.pieceLen);
    this.piece = Buffer.allocUnsafe(PIECE_BYTES);
    this.pieceLen = 0;
    // A line starting with `\.` would end COPY early and drop the rows after it: not pg_dump's output.
    if (rows.at(-1) !== 0x0a || (rows[0] === 0x5c && rows[1] === 0x2e) || rows.indexOf('\n\\.') >= 0)
      throw new Error(`rows of ${table.tag} that are not whole COPY lines`);
    await this.preData;
    await this.connecting;
    for (;;) {
      if (this.failure) throw this.failure;
      const idle = this.sessions.find((s) => s.busy === null);
      if (idle) {
        const id = table.dumpId;
        this.pending.set(id, this.pending.get(id)! + 1);
        idle.busy = this.copy(idle, table, rows).then(
          () => {
            idle.busy = null;
            const left = this.pending.get(id)! - 1;
            this.pending.set(id, left);
            if (left === 0 && this.ended.has(id)) this.tableLoaded(id);
          },
          (err: unknown) => {
            this.failure ??= this.copyError(table, err);
            throw this.failure;
          },
        );
        idle.busy.catch(() => undefined);
        return;
      }
      await Promise.race(this.busy()).catch(() => undefined);
    }
  }

  private busy(): Promise<void>[] {
    return this.sessions.map((s) => s.busy).filter((b): b is Promise<void> => b !== null);
  }

  private async copy(s: Session, table: TocSlot, rows: Buffer): Promise<void> {
    const stream = s.client.query(copyFrom(table.copyStmt!.trimEnd()));
    await new Promise<void>((resolve, reject) => {
      stream.on('error', reject);
      stream.on('finish', resolve);
      stream.end(rows);
    });
  }

  private copyError(table: TocSlot, err: unknown): Error {
    return new PermafrostError(
      'server',
      `Loading the rows of table ${table.tag} of snapshot ${this.target.snapshot} into "${this.target.database}" failed (${errorMessage(err)}); the target database was not touched: fix the cause and run restore again.`,
      { cause: err },
    );
  }

  /** The end of the plaintext: every block whole, every table's rows loaded. */
  private async finish(): Promise<void> {
    if (!this.plan) {
      // Shorter than the try threshold: read what there is.
      this.nextTry = 0;
      await this.take(Buffer.alloc(0));
      if (!this.plan) throw new NotStreamable('no complete table of contents');
    }
    if (this.mode !== 'block' || this.carry.length > 0) throw new Error('the archive ends inside a data block');
    const missing = [...this.plan.tables.keys()].filter((id) => !this.seen.has(id));
    if (missing.length > 0) throw new Error(`no data block for entries ${missing.join(', ')}`);
    await this.preData;
    await this.connecting;
    await Promise.all(this.busy());
    await this.builds();
    if (this.failure) throw this.failure;
    await this.close();
  }

  /** Ends the sessions (a COPY in flight is aborted by the server when its connection goes). */
  async close(): Promise<void> {
    await this.connecting?.catch(() => undefined);
    await this.builds();
    await Promise.all(this.sessions.map((s) => s.client.end().catch(() => undefined)));
    this.sessions = [];
  }

  /** Removes the table-of-contents file. */
  async dispose(): Promise<void> {
    await this.close();
    await rm(this.tocFile, { force: true });
  }
}

/** ReadInt at `at`: a sign byte, then the bytes least significant first (`n` counts the sign byte). */
function readInt(buf: Buffer, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 1; i--) v = v * 256 + buf[at + i]!;
  return buf[at] !== 0 ? -v : v;
}

/** The `-L` list selecting `ids` (pg_restore reads the leading number of each line). */
export function restoreList(ids: readonly number[]): string {
  return ids.map((id) => `${id};\n`).join('');
}
