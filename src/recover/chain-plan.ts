/**
 * A delta chain restored without replaying it (issue 22): the final state of a keyed table is the
 * newest version of each key across the deltas (newest first) plus the base rows whose key no delta
 * deleted or replaced; a table copied whole by a delta (TRUNCATE + COPY: a table without a key, or
 * one with too many changes) is that copy plus the newer deltas' versions, and the base and older
 * deltas no longer count for it. So the deltas are read first, newest first (they are small), into
 * the set of decided keys and a private file of the rows that win; the base's rows are then
 * filtered in this process as they stream into COPY, and the winning delta rows loaded beside them:
 * no DELETE, no temporary index, one load.
 *
 * A delta is parsed strictly, as capture/delta.ts deltaRows writes it; none of its text ever
 * becomes SQL: its keys are read as data, its rows go into COPY data only (no line of them may
 * start with the end marker `\.`), its sequences' setval lines are matched exactly. A delta in
 * another form (DeltaFormError), or a chain whose key set would not fit the memory budget
 * (PlanTooBig), is restored the old way, by replay (recover/chain.ts). Whatever the plan gives is
 * judged by the same check as a replay: every restored table's count and hash against the manifest.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { qualified, quoteIdent } from '../capture/delta-sql.js';
import { fileChunks } from '../crypto/hash.js';
import type { ChainTable } from '../vault/manifest.js';
import { KeySet } from './key-set.js';
import { settingsOnly, type RowsSegment } from './parallel-rows.js';

/** The decided keys of a chain may take this much memory (node's whole budget is 150 MiB); more: replay. */
export const PLAN_BUDGET = 48 * 1024 * 1024;
/** The winning delta rows are copied into a buffer of this size before they are written. */
const BLOCK_BUFFER = 1024 * 1024;
/** Estimated bytes of memory per key of a delta's key list held as a string (an array slot and a string header) besides its text. */
const LISTED_KEY_OVERHEAD = 64;

/** A delta not in the form deltaRows writes: the chain is replayed instead. */
export class DeltaFormError extends Error {}
/** The chain's decided keys would not fit PLAN_BUDGET: the chain is replayed instead. */
export class PlanTooBig extends Error {}

const NL = 0x0a;
const TAB = 0x09;
const BACKSLASH = 0x5c;

/** One table's decided state across the deltas read so far (newest first). */
interface TablePlan {
  key: string[] | null;
  /** Keys whose final version (or absence) a newer delta decided: the base's and older deltas' rows with them do not count. */
  decided: KeySet;
  /** A delta copied the table whole: nothing older counts. */
  closed: boolean;
  /** A bit set over the decided keys' hashes (built once every delta was read): most base rows are told apart without a string. */
  bloom?: Uint32Array;
}

/** FNV-1a over bytes [start, end) of `buf`, continuing from `h`. */
function fnv(buf: Buffer, start: number, end: number, h: number): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 16777619);
  return h;
}

const FNV_START = 2166136261;

/** The two bit positions of a key's hash in a bloom of `mask` + 1 bits. */
function bloomBits(h: number, mask: number): [number, number] {
  const h2 = Math.imul(h ^ (h >>> 15), 2246822519);
  return [h & mask, (h2 ^ (h2 >>> 13)) & mask];
}

function bloomOf(keys: Set<string>): Uint32Array {
  let bits = 1024;
  while (bits < keys.size * 16) bits *= 2;
  const bloom = new Uint32Array(bits / 32);
  for (const k of keys) {
    const [a, b] = bloomBits(fnv(Buffer.from(k, 'latin1'), 0, k.length, FNV_START), bits - 1);
    bloom[a >>> 5]! |= 1 << (a & 31);
    bloom[b >>> 5]! |= 1 << (b & 31);
  }
  return bloom;
}

/** Where the field of a one-column key starts in the row at [start, end): `pos` has the key's column last. */
function keyFieldStart(buf: Buffer, start: number, end: number, pos: Int32Array): number {
  let fs = start;
  for (let col = 0; col < pos.length - 1; col++) {
    const fe = fieldEnd(buf, fs, end);
    if (fe === end) throw new DeltaFormError('a row has fewer fields than its COPY statement');
    fs = fe + 1;
  }
  return fs;
}

/**
 * Whether a newer delta decided the key of the row at [start, end): a one-column key looked up from
 * its bytes (an int64 without a string; a text key first in the bloom, when its field holds no escape).
 */
function isDecided(t: TablePlan, buf: Buffer, start: number, end: number, pos: Int32Array): boolean {
  if (t.key!.length > 1) return t.decided.has(rowKey(buf, start, end, pos));
  let fs = start;
  for (let col = 0; col < pos.length - 1; col++) fs = fieldEnd(buf, fs, end) + 1;
  // A row without its key's field has no key a delta decided (and is psql's to reject).
  if (fs > end) return false;
  const fe = fieldEnd(buf, fs, end);
  const bloom = t.bloom;
  if (bloom) {
    let plain = true;
    for (let i = fs; i < fe; i++) if (buf[i] === BACKSLASH) plain = false;
    if (plain) {
      const [a, b] = bloomBits(fnv(buf, fs, fe, FNV_START), bloom.length * 32 - 1);
      if ((bloom[a >>> 5]! & (1 << (a & 31))) === 0 || (bloom[b >>> 5]! & (1 << (b & 31))) === 0) return false;
    }
  }
  return t.decided.hasBytes(buf, fs, fe, () => copyField(buf, fs, fe));
}

/** A COPY statement's table and columns, as copyHeader writes it: `COPY "s"."t" ("a", "b") FROM stdin;`. */
export interface CopyHeader {
  schema: string;
  table: string;
  columns: string[];
}

/** Reads one quoted identifier at `at`; returns it and the position after it, or null. */
function readIdent(s: string, at: number): { name: string; end: number } | null {
  if (s[at] !== '"') return null;
  let name = '';
  let i = at + 1;
  for (;;) {
    const q = s.indexOf('"', i);
    if (q < 0) return null;
    name += s.slice(i, q);
    if (s[q + 1] === '"') {
      name += '"';
      i = q + 2;
      continue;
    }
    return { name, end: q + 1 };
  }
}

/** The table and columns of a COPY … FROM stdin line, only when the line is exactly what copyHeader writes for them. */
export function parseCopyHeader(line: string): CopyHeader | null {
  if (!line.startsWith('COPY "')) return null;
  const s = readIdent(line, 5);
  if (!s || line[s.end] !== '.') return null;
  const t = readIdent(line, s.end + 1);
  if (!t || line.slice(t.end, t.end + 2) !== ' (') return null;
  const columns: string[] = [];
  let at = t.end + 2;
  for (;;) {
    const c = readIdent(line, at);
    if (!c) return null;
    columns.push(c.name);
    at = c.end;
    if (line.startsWith(', ', at)) at += 2;
    else break;
  }
  const h = { schema: s.name, table: t.name, columns };
  return line === `COPY ${qualified(h.schema, h.table)} (${columns.map(quoteIdent).join(', ')}) FROM stdin;` ? h : null;
}

const ESCAPES: Record<number, number> = { 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9, 0x76: 11 };

/** A COPY text field's value (escapes undone, as the server reads it), as a latin1 string of its bytes. */
export function copyField(buf: Buffer, start: number, end: number): string {
  // A key field is short: a loop over it, not indexOf (which would search on to the end of the buffer).
  let bs = start;
  while (bs < end && buf[bs] !== BACKSLASH) bs++;
  if (bs === end) return buf.toString('latin1', start, end);
  const out: number[] = [];
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b !== BACKSLASH || i + 1 >= end) {
      out.push(b);
      continue;
    }
    const c = buf[++i]!;
    if (c >= 0x30 && c <= 0x37) {
      let v = c - 0x30;
      for (let n = 0; n < 2 && i + 1 < end && buf[i + 1]! >= 0x30 && buf[i + 1]! <= 0x37; n++) v = v * 8 + buf[++i]! - 0x30;
      out.push(v & 0xff);
    } else if (c === 0x78 && i + 1 < end && /[0-9a-f]/i.test(String.fromCharCode(buf[i + 1]!))) {
      let v = Number.parseInt(String.fromCharCode(buf[++i]!), 16);
      if (i + 1 < end && /[0-9a-f]/i.test(String.fromCharCode(buf[i + 1]!)))
        v = v * 16 + Number.parseInt(String.fromCharCode(buf[++i]!), 16);
      out.push(v);
    } else out.push(ESCAPES[c] ?? c);
  }
  return Buffer.from(out).toString('latin1');
}

/** Where a table's key columns are in its COPY rows: the part of the key each column is, or -1. */
function keyPositions(header: CopyHeader, key: string[]): Int32Array {
  const at = key.map((k) => header.columns.indexOf(k));
  if (at.some((i) => i < 0)) throw new DeltaFormError(`the rows of ${qualified(header.schema, header.table)} lack a key column`);
  const pos = new Int32Array(Math.max(...at) + 1).fill(-1);
  at.forEach((col, part) => (pos[col] = part));
  return pos;
}

/** The first tab in [from, end), or end. */
function fieldEnd(buf: Buffer, from: number, end: number): number {
  let i = from;
  while (i < end && buf[i] !== TAB) i++;
  return i;
}

/** The key of the COPY row at [start, end) (no newline): its key fields' values joined by NUL (no text value holds one). */
function rowKey(buf: Buffer, start: number, end: number, pos: Int32Array): string {
  if (pos.length === 1) return copyField(buf, start, fieldEnd(buf, start, end));
  const parts: string[] = [];
  let fs = start;
  for (let col = 0; col < pos.length; col++) {
    const fe = fieldEnd(buf, fs, end);
    if (fe === end && col < pos.length - 1) throw new DeltaFormError('a row has fewer fields than its COPY statement');
    const part = pos[col]!;
    if (part >= 0) parts[part] = copyField(buf, fs, fe);
    fs = fe + 1;
  }
  return parts.join('\0');
}

/** Appends blocks of COPY text to a private file (0600, created here) and remembers where each is. */
class BlockFile {
  private handle: FileHandle | null = null;
  private at = 0;
  /** What is not written yet, copied into one buffer (the rows come as pieces of short-lived chunks). */
  private readonly held = Buffer.allocUnsafe(BLOCK_BUFFER);
  private heldBytes = 0;
  private blockStart = -1;
  readonly blocks: RowsSegment[] = [];

  constructor(readonly path: string) {}

  async add(b: Buffer): Promise<void> {
    if (this.heldBytes + b.length > this.held.length) await this.flush();
    if (b.length > this.held.length) await this.write(b);
    else this.heldBytes += b.copy(this.held, this.heldBytes);
  }

  begin(header: string): Promise<void> {
    this.blockStart = this.at + this.heldBytes;
    return this.add(Buffer.from(`${header}\n`));
  }

  get open(): boolean {
    return this.blockStart >= 0;
  }

  async end(): Promise<void> {
    await this.add(Buffer.from('\\.\n'));
    this.blocks.push({ kind: 'copy', start: this.blockStart, end: this.at + this.heldBytes, file: this.path });
    this.blockStart = -1;
  }

  async flush(): Promise<void> {
    if (this.heldBytes === 0) return;
    const n = this.heldBytes;
    this.heldBytes = 0;
    await this.write(this.held.subarray(0, n));
  }

  private async write(data: Buffer): Promise<void> {
    this.handle ??= await open(this.path, 'wx', 0o600);
    await this.handle.write(data, 0, data.length, this.at);
    this.at += data.length;
  }

  async close(): Promise<void> {
    await this.flush();
    await this.handle?.close();
    this.handle = null;
  }
}

const INT_TYPES = new Set(['bigint', 'integer', 'smallint']);
const INT_RE = /^-?\d+$/;
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
const SETVAL_RE = /^SELECT pg_catalog\.setval\('(?:[^'\n]|'')*', -?\d+, (?:true|false)\);$/;
const TYPE_RE = /^[a-z0-9_ ()",.[\]]+$/i;

/**
 * What the deltas of a chain decide, read newest first: per table the decided keys, the rows that
 * win (in `file`), and the newest delta's sequence values.
 */
export class ChainPlan {
  readonly tables = new Map<string, TablePlan>();
  /** setval lines of the newest delta (run after the base's own). */
  tail = '';
  private keyBytes = 0;
  private readonly keys: Map<string, string[] | null>;
  /** The buffer every delta file is read through. */
  private readonly readBuffer = Buffer.allocUnsafe(BLOCK_BUFFER);
  readonly file: BlockFile;

  constructor(
    tables: ChainTable[],
    rowsFile: string,
    private readonly budget = PLAN_BUDGET,
  ) {
    this.keys = new Map(tables.map((t) => [qualified(t.schema, t.table), t.key && t.key.length > 0 ? t.key : null]));
    this.file = new BlockFile(rowsFile);
  }

  /** The COPY blocks of winning delta rows, once every delta was read. */
  get blocks(): RowsSegment[] {
    return this.file.blocks;
  }

  table(name: string): TablePlan {
    let t = this.tables.get(name);
    if (!t) {
      if (!this.keys.has(name)) throw new DeltaFormError(`it names table ${name}, which the snapshot does not list`);
      t = { key: this.keys.get(name)!, decided: new KeySet(), closed: false };
      this.tables.set(name, t);
    }
    return t;
  }

  /** Marks `key` decided; false when a newer delta had decided it already. */
  decide(t: TablePlan, key: string): boolean {
    const before = t.decided.bytes;
    if (!t.decided.add(key)) return false;
    this.counted(t, before);
    return true;
  }

  /** decide() for the one-column key whose COPY field is buf[start, end), without a string for an int64. */
  decideField(t: TablePlan, buf: Buffer, start: number, end: number): boolean {
    const before = t.decided.bytes;
    if (!t.decided.addBytes(buf, start, end, () => copyField(buf, start, end))) return false;
    this.counted(t, before);
    return true;
  }

  /** The memory a table's key set took meanwhile (what KeySet holds: int64 values, or strings), against the budget. */
  private counted(t: TablePlan, before: number): void {
    this.keyBytes += t.decided.bytes - before;
    this.fits(0);
  }

  /** Throws PlanTooBig when the decided keys and `pending` more bytes (a key list still being read) exceed the budget. */
  fits(pending: number): void {
    if (this.keyBytes + pending > this.budget) throw new PlanTooBig(`the deltas' keys need more than ${this.budget >> 20} MiB`);
  }

  /** Once every delta was read: the blooms the base's filter tests first. */
  seal(): void {
    for (const t of this.tables.values()) {
      // A set of int64s is looked up from the bytes as fast as a bloom; one of strings is not.
      const strings = t.decided.asStrings;
      if (t.key?.length === 1 && !t.closed && strings && strings.size > 0) t.bloom = bloomOf(strings);
    }
  }

  /**
   * Reads one whole delta (the next older one) into the plan, chunk by chunk: a chunk need stay valid
   * only until the next is asked for (a reused buffer), as only a line cut between two is copied.
   */
  async readDelta(chunks: Iterable<Buffer> | AsyncIterable<Buffer>, newest: boolean): Promise<void> {
    const reader = new DeltaReader(this, newest);
    let rest: Buffer | null = null;
    for await (const c of chunks) {
      let from = 0;
      if (rest) {
        const nl = c.indexOf(NL);
        if (nl < 0) {
          rest = Buffer.concat([rest, c]);
          continue;
        }
        await reader.lines(Buffer.concat([rest, c.subarray(0, nl + 1)]));
        rest = null;
        from = nl + 1;
      }
      const last = c.lastIndexOf(NL);
      if (last >= from) {
        await reader.lines(c.subarray(from, last + 1));
        from = last + 1;
      }
      if (from < c.length) rest = Buffer.from(c.subarray(from));
    }
    if (rest) await reader.lines(Buffer.concat([rest, Buffer.from('\n')]));
    await reader.end();
  }

  /** readDelta of a delta decrypted into `file`, read through one buffer. */
  async readDeltaFile(file: string, newest: boolean): Promise<void> {
    const fh = await open(file, 'r');
    try {
      await this.readDelta(fileChunks(fh, this.readBuffer), newest);
    } finally {
      await fh.close();
    }
  }

  /** A filter for one COPY block of the base's rows (its bytes from the COPY line on). */
  baseFilter(): BaseRowsFilter {
    return new BaseRowsFilter(this);
  }
}

/** Reads one delta's lines into the plan. */
class DeltaReader {
  private state: 'top' | 'keys' | 'rows' = 'top';
  private settings = true;
  private setvals = false;
  private truncate: string | null = null;
  /** A key list being read (CREATE TEMP TABLE pf_keys … DROP TABLE pf_keys), `step` the statements seen. */
  private del: { types: string[]; keys: string[]; bytes: number; step: number; table: string | null } | null = null;
  /** Keys this delta deletes from `table`, decided after its COPY (a key deleted and copied by one delta is copied). */
  private pending: { table: string; keys: string[] } | null = null;
  private rows: { name: string; t: TablePlan; header: string; pos: Int32Array | null; whole: boolean } | null = null;
  private readonly seen = new Set<string>();

  constructor(
    private readonly plan: ChainPlan,
    private readonly newest: boolean,
  ) {}

  async lines(buf: Buffer): Promise<void> {
    let at = 0;
    while (at < buf.length) {
      const nl = buf.indexOf(NL, at);
      if (this.state === 'rows') await this.row(buf, at, nl);
      else this.statement(buf.toString('utf8', at, nl));
      at = nl + 1;
    }
  }

  async end(): Promise<void> {
    if (this.state !== 'top' || this.truncate !== null || (this.del && this.del.step < 5))
      throw new DeltaFormError('it ends inside a statement');
    this.commitDeletes();
    await this.plan.file.flush();
  }

  private commitDeletes(): void {
    if (!this.pending) return;
    const t = this.plan.table(this.pending.table);
    if (!t.closed) for (const k of this.pending.keys) this.plan.decide(t, k);
    this.pending = null;
  }

  private fail(what: string): never {
    throw new DeltaFormError(what);
  }

  private statement(line: string): void {
    if (this.state === 'keys') return this.keyLine(line);
    if (line === '') return;
    if (this.setvals || SETVAL_RE.test(line)) {
      if (!SETVAL_RE.test(line) || this.truncate !== null || this.del) this.fail('unexpected text after its sequences');
      this.commitDeletes();
      this.setvals = true;
      if (this.newest) this.plan.tail += `${line}\n`;
      return;
    }
    if (this.settings && settingsOnly(line)) return;
    this.settings = false;
    if (this.del) return this.deleteStep(line);
    if (line.startsWith('TRUNCATE ONLY ')) {
      const h = parseCopyHeader(`COPY ${line.slice(14, -1)} ("x") FROM stdin;`);
      if (this.truncate !== null || !h || !line.endsWith(';')) this.fail('a TRUNCATE not as written by permafrost');
      this.commitDeletes();
      this.truncate = qualified(h.schema, h.table);
      return;
    }
    if (line.startsWith('CREATE TEMP TABLE pf_keys (')) {
      const m = /^CREATE TEMP TABLE pf_keys \((.*)\);$/.exec(line);
      const types = (m?.[1] ?? '').split(', ').map((c, i) => (c.startsWith(`k${i} `) ? c.slice(`k${i} `.length) : ''));
      if (!m || this.truncate !== null || types.some((t) => t !== 'text' && !INT_TYPES.has(t)))
        this.fail('a key list not as written by permafrost');
      this.commitDeletes();
      this.del = { types, keys: [], bytes: 0, step: 1, table: null };
      return;
    }
    const h = parseCopyHeader(line);
    if (!h) this.fail(`a statement permafrost does not write (${line.slice(0, 40)}…)`);
    const name = qualified(h.schema, h.table);
    const whole = this.truncate === name;
    if (this.truncate !== null && !whole) this.fail('a TRUNCATE not followed by the COPY of its table');
    this.truncate = null;
    if (this.pending && this.pending.table !== name) this.commitDeletes();
    if (this.seen.has(name) && !this.pending) this.fail(`table ${name} twice`);
    this.seen.add(name);
    const t = this.plan.table(name);
    if (!t.key && !whole) this.fail(`rows of table ${name}, which has no key, without a TRUNCATE`);
    this.rows = { name, t, header: line, pos: t.key ? keyPositions(h, t.key) : null, whole };
    this.state = 'rows';
  }

  /** The statements of a key list after CREATE: COPY, keys, ANALYZE, DELETE, DROP. */
  private deleteStep(line: string): void {
    const d = this.del!;
    if (d.step === 1 && line === 'COPY pf_keys FROM stdin;') {
      d.step = 2;
      this.state = 'keys';
      return;
    }
    if (d.step === 3 && line === 'ANALYZE pf_keys;') {
      d.step = 4;
      return;
    }
    if (d.step === 4 && line.startsWith('DELETE FROM ONLY ') && line.endsWith(';')) {
      const using = line.indexOf(' _pf_row USING pf_keys WHERE ');
      const h = using < 0 ? null : parseCopyHeader(`COPY ${line.slice(17, using)} ("x") FROM stdin;`);
      if (!h) this.fail('a DELETE not as written by permafrost');
      const name = qualified(h.schema, h.table);
      const t = this.plan.table(name);
      if (!t.key || t.key.length !== d.types.length || this.seen.has(name)) this.fail(`a DELETE of ${name} not as written by permafrost`);
      const match = line.slice(using + ' _pf_row USING pf_keys WHERE '.length, -1).split(' AND ');
      const ok =
        match.length === t.key.length &&
        match.every((m, i) => {
          const left = `_pf_row.${quoteIdent(t.key![i]!)} = `;
          if (d.types[i] !== 'text') return m === `${left}pf_keys.k${i}`;
          const cast = `${left}convert_from(decode(pf_keys.k${i}, 'hex'), 'UTF8')::`;
          return m.startsWith(cast) && TYPE_RE.test(m.slice(cast.length));
        });
      if (!ok) this.fail(`a DELETE of ${name} not as written by permafrost`);
      d.table = name;
      d.step = 5;
      return;
    }
    if (d.step === 5 && line === 'DROP TABLE pf_keys;') {
      this.seen.add(d.table!);
      this.pending = { table: d.table!, keys: d.keys };
      this.del = null;
      return;
    }
    this.fail('a key list not as written by permafrost');
  }

  private keyLine(line: string): void {
    const d = this.del!;
    if (line === '\\.') {
      d.step = 3;
      this.state = 'top';
      return;
    }
    const vs = line.split('\t');
    if (vs.length !== d.types.length) this.fail('a key of the wrong width');
    const parts = vs.map((v, i) => {
      if (d.types[i] === 'text') {
        if (!HEX_RE.test(v)) this.fail('a key that is not hex');
        return Buffer.from(v, 'hex').toString('latin1');
      }
      if (!INT_RE.test(v)) this.fail('a key that is not a number');
      return v;
    });
    const key = parts.join('\0');
    // Held until the delta's COPY is read: counted against the budget now, not only once decided.
    d.bytes += key.length + LISTED_KEY_OVERHEAD;
    this.plan.fits(d.bytes);
    d.keys.push(key);
  }

  private async row(buf: Buffer, at: number, nl: number): Promise<void> {
    const r = this.rows!;
    const file = this.plan.file;
    if (buf[at] === BACKSLASH && buf[at + 1] === 0x2e) {
      if (nl !== at + 2) this.fail('a row that starts with the end marker');
      if (file.open) await file.end();
      if (r.whole) r.t.closed = true;
      this.rows = null;
      this.state = 'top';
      if (this.pending?.table === r.name) this.commitDeletes();
      return;
    }
    if (r.t.closed) return;
    if (r.pos && r.t.key!.length === 1) {
      const fs = keyFieldStart(buf, at, nl, r.pos);
      const fe = fieldEnd(buf, fs, nl);
      const decode = (): string => copyField(buf, fs, fe);
      // A whole copy closes its table: its own keys need no record (nothing older is read), only the newer deltas' win.
      if (r.whole ? r.t.decided.hasBytes(buf, fs, fe, decode) : !this.plan.decideField(r.t, buf, fs, fe)) return;
    } else if (r.pos) {
      const key = rowKey(buf, at, nl, r.pos);
      if (r.whole ? r.t.decided.has(key) : !this.plan.decide(r.t, key)) return;
    }
    if (!file.open) await file.begin(r.header);
    await file.add(buf.subarray(at, nl + 1));
  }
}

/**
 * One COPY block of the base's rows, filtered: the rows of a table a delta copied whole, and the
 * rows whose key a delta decided, left out; every other byte passed on as it came. It works on the
 * caller's buffer and copies nothing: take() reports the byte ranges to pass on and where the first
 * incomplete line starts, which the caller hands again (read again from the file) with what follows.
 */
export class BaseRowsFilter {
  /** null: the header line is not read yet; 'pass': the rest of the block goes through whole. */
  private mode: null | 'pass' | { t: TablePlan; pos: Int32Array | null } = null;

  constructor(private readonly plan: ChainPlan) {}

  /**
   * Takes the complete lines of buf[from, to): calls keep(start, end) for each range to pass on, in
   * order, and returns where it stopped (`to`, or the start of an incomplete line).
   */
  take(buf: Buffer, from: number, to: number, keep: (start: number, end: number) => void): number {
    let at = from;
    if (this.mode === null) {
      const nl = buf.indexOf(NL, at);
      if (nl < 0 || nl >= to) return at;
      const h = parseCopyHeader(buf.toString('utf8', at, nl));
      const t = h ? this.plan.tables.get(qualified(h.schema, h.table)) : undefined;
      this.mode = !t || (!t.closed && t.decided.size === 0) ? 'pass' : { t, pos: t.key && !t.closed ? keyPositions(h!, t.key) : null };
      if (this.mode === 'pass') {
        keep(at, to);
        return to;
      }
      keep(at, nl + 1);
      at = nl + 1;
    }
    if (this.mode === 'pass') {
      if (to > at) keep(at, to);
      return to;
    }
    const { t, pos } = this.mode;
    let keepFrom = at;
    while (at < to) {
      const nl = buf.indexOf(NL, at);
      if (nl < 0 || nl >= to) break;
      if (buf[at] === BACKSLASH && buf[at + 1] === 0x2e && nl === at + 2) {
        // The block's end: it and what follows (nothing, from RowsSplitter) passed as they are.
        this.mode = 'pass';
        keep(keepFrom, to);
        return to;
      }
      if (t.closed || !pos || isDecided(t, buf, at, nl, pos)) {
        if (at > keepFrom) keep(keepFrom, at);
        keepFrom = nl + 1;
      }
      at = nl + 1;
    }
    if (at > keepFrom) keep(keepFrom, at);
    return at;
  }
}
