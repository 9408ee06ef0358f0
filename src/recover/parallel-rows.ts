/**
 * A base's rows part applied on several psql sessions at once. The part is one SQL stream (settings,
 * then one `COPY … FROM stdin;` block per table, then the sequences' setval), so one psql loads
 * the tables one after another on one core while the others wait. Here gpg writes the plaintext
 * into a private file (in the restore's 0700 temp folder, removed afterwards and by the sweep after
 * a kill), which is read back behind it through one buffer and cut into its COPY blocks (nothing
 * is allocated per chunk, so node's memory does not grow with the base); each block, once complete in the file, goes
 * to the next idle session, every session having run the settings first. Statements after the
 * blocks run on one session once every block is loaded, so the order of everything but the loads
 * of different tables is the file's. What the sessions load is judged as before (recover/decrypt.ts
 * decryptPartInto: MDC, SHA-256 and sizes after the end), into a copy thrown away on failure.
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { startTool, type RunningTool, type ToolRun } from '../tools/run.js';
import { GrowingFile } from './archive-toc.js';
import type { ChainPlan } from './chain-plan.js';
import type { PlainSink } from './decrypt.js';

/** A piece of the file: a COPY block (statement and data, through its `\.` line) or other SQL. */
export interface RowsSegment {
  kind: 'copy' | 'sql';
  start: number;
  end: number;
  /** Another file than the rows file (a chain plan's delta rows). */
  file?: string;
}

const NL = 0x0a;
const COPY = Buffer.from('COPY ');
const END_OF_DATA = Buffer.from('\\.');
/** The end marker with the newline before and after it. */
const LINE_END_OF_DATA = Buffer.from('\n\\.\n');

/**
 * Cuts a rows file into segments as its bytes arrive, exactly as psql reads it: outside COPY data, a
 * line that starts with `COPY ` (outside any quoted literal or identifier) opens a COPY statement,
 * whose data starts on the line after its `;` and ends with the line `\.`. Everything else is SQL.
 */
export class RowsSplitter {
  private pos = 0;
  /** Where the segment being read started. */
  private segStart = 0;
  private state: 'sql' | 'stmt' | 'data' = 'sql';
  /** Inside a quoted literal (') or identifier (") of SQL text; 0 outside. */
  private quote = 0;
  /** The first bytes of the current line (enough to tell `COPY ` and `\.`), and its length so far. */
  private head = Buffer.alloc(5);
  private lineLen = 0;
  /** A COPY statement's `;` was seen: its data starts on the next line. */
  private stmtDone = false;
  /** The SQL segment being read holds only white space so far (dropped: it means nothing to psql). */
  private blank = true;
  /** `blank` as it was where the current line started. */
  private blankBefore = true;

  constructor(private readonly emit: (s: RowsSegment) => void) {}

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'data' && this.lineLen === 0 && !(chunk[i] === END_OF_DATA[0] && chunk[i + 1] === END_OF_DATA[1])) {
        // At a data line's start: the lines before the end marker (a line of exactly `\.`, which COPY's text
        // escapes keep out of the data) are skipped at once; without one here, up to the chunk's last line.
        const end = chunk.indexOf(LINE_END_OF_DATA, i);
        const next = end >= 0 ? end + 1 : chunk.lastIndexOf(NL) + 1;
        if (next > i) {
          i = next;
          continue;
        }
      }
      if (this.state === 'data' && this.lineLen >= this.head.length) {
        // Inside a long data line: only its end matters.
        const nl = chunk.indexOf(NL, i);
        if (nl < 0) {
          this.lineLen += chunk.length - i;
          i = chunk.length;
          break;
        }
        this.lineLen += nl - i;
        i = nl;
      }
      const b = chunk[i]!;
      if (this.lineLen < this.head.length) this.head[this.lineLen] = b;
      const lineStart = this.pos + i - this.lineLen;
      if (b === NL) {
        this.endLine(this.pos + i + 1);
        this.lineLen = 0;
        i++;
        continue;
      }
      if (this.state === 'sql' && this.quote === 0 && this.lineLen === COPY.length - 1 && b === COPY[COPY.length - 1]) {
        if (this.head.subarray(0, COPY.length).equals(COPY)) {
          // The line's first four bytes counted as SQL: whatever came before them decides.
          if (!this.blankBefore && lineStart > this.segStart) this.emit({ kind: 'sql', start: this.segStart, end: lineStart });
          this.segStart = lineStart;
          this.state = 'stmt';
        }
      }
      if (this.state === 'sql' && this.lineLen === 0) this.blankBefore = this.blank;
      if (this.state === 'sql' && b !== 0x20 && b !== 0x09 && b !== 0x0d) this.blank = false;
      if (this.state !== 'data') this.scanSql(b);
      this.lineLen++;
      i++;
    }
    this.pos += chunk.length;
  }

  /** Quotes and the statement's end in SQL text (not in COPY data). */
  private scanSql(b: number): void {
    if (this.quote !== 0) {
      if (b === this.quote) this.quote = 0;
      return;
    }
    if (b === 0x27 || b === 0x22) this.quote = b;
    else if (b === 0x3b && this.state === 'stmt') this.stmtDone = true;
  }

  private endLine(next: number): void {
    if (this.state === 'stmt' && this.stmtDone && this.quote === 0) {
      this.state = 'data';
      this.stmtDone = false;
    } else if (this.state === 'data' && this.lineLen === END_OF_DATA.length && this.head.subarray(0, 2).equals(END_OF_DATA)) {
      this.emit({ kind: 'copy', start: this.segStart, end: next });
      this.segStart = next;
      this.state = 'sql';
      this.blank = true;
    }
  }

  /** The end of the file: what is left is SQL (a COPY without its `\.` is psql's to reject). */
  end(): void {
    if (this.pos > this.segStart && !(this.state === 'sql' && this.blank))
      this.emit({ kind: this.state === 'sql' ? 'sql' : 'copy', start: this.segStart, end: this.pos });
    this.segStart = this.pos;
  }
}

/** The statements every rows file starts with (delta-sql.ts SQL_FILE_HEADER): session settings only, safe to run on each session. */
export function settingsOnly(sql: string): boolean {
  return sql
    .split(';')
    .map((st) => st.trim())
    .filter((st) => st !== '')
    .every((st) => /^SET [a-z_]+ = (?:'[^']*'|[a-z0-9_]+)$/i.test(st) || st === "SELECT pg_catalog.set_config('search_path', '', false)");
}

/** One psql session and what it is doing. */
interface Session {
  tool: RunningTool<'ignore'>;
  busy: Promise<void> | null;
  /** Two buffers the session's input is read into in turn, and the writes from each still pending. */
  buffers: Buffer[];
  written: Promise<void>[];
}

/** Each session's two read buffers (grown only for a line longer than one). */
const FEED_BUFFER = 256 * 1024;
/** The buffer the file is read into behind gpg, to be cut into segments. */
const FOLLOW_BUFFER = 1024 * 1024;

/** Reads `length` bytes at `position` into the start of `buf` (a short read only at a file's end, which a complete segment never reaches). */
async function readFully(from: FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  for (let got = 0; got < length; ) {
    const { bytesRead } = await from.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw new Error('the rows file ended inside a block');
    got += bytesRead;
  }
}

/**
 * The state of one parallel load: the plaintext file as it grows, the segments found in it, the
 * sessions loading them, and why it stopped. One object, its steps as methods, instead of closures
 * sharing mutable locals.
 */
class ParallelRows {
  handle: FileHandle | null = null;
  written = 0;
  header: RowsSegment | null = null;
  sawCopy = false;
  readonly queue: RowsSegment[] = [];
  ended = false;
  /** Why the sessions were stopped: our own failure (creating or reading back the file) or a session's. */
  failure: Error | null = null;
  growing: GrowingFile | null = null;
  following: Promise<void> | null = null;
  /** Resolves once the producer (gpg) has exited, whatever happened. */
  readonly producer: Promise<void>;
  producerEnded: () => void = () => undefined;
  wake: () => void = () => undefined;
  scheduled: Promise<void> | null = null;
  readonly sessions: Session[];
  readonly splitter: RowsSplitter;
  plan: ChainPlan | null = null;

  constructor(
    readonly file: string,
    consumer: ToolRun,
    jobs: number,
    signal?: AbortSignal,
    /** A chain's plan (chain-plan.ts): the base's blocks filtered by it, its delta rows and sequences loaded too; null: the rows as they are. */
    readonly ready: Promise<ChainPlan | null> = Promise.resolve(null),
  ) {
    this.producer = new Promise<void>((resolve) => (this.producerEnded = resolve));
    this.sessions = Array.from({ length: Math.max(1, jobs) }, () => ({
      tool: startTool({ ...consumer, signal }, { stdin: 'pipe', stdout: 'ignore' }),
      busy: null,
      buffers: [Buffer.allocUnsafe(FEED_BUFFER), Buffer.allocUnsafe(FEED_BUFFER)],
      written: [Promise.resolve(), Promise.resolve()],
    }));
    this.splitter = new RowsSplitter((seg) => {
      // The settings before the first block go to every session.
      if (!this.sawCopy && seg.kind === 'sql') this.header = seg;
      else {
        this.sawCopy ||= seg.kind === 'copy';
        this.queue.push(seg);
      }
    });
  }

  /** Feeds bytes [start, end) of the file to a session; rejects when the session exits first. */
  async feed(s: Session, seg: RowsSegment): Promise<void> {
    const own = seg.file === undefined ? null : await open(seg.file, 'r');
    try {
      await Promise.race([
        this.copy(s, own ?? this.handle!, seg),
        s.tool.done.then(() => Promise.reject(new Error('psql exited before its input ended'))),
      ]);
    } finally {
      await own?.close();
    }
  }

  /**
   * The bytes of `seg` from `from` into the session's stdin through its two buffers, read in turn
   * (one filling while the other's writes drain): nothing is allocated per chunk, so the memory a
   * load holds is its sessions' buffers, whatever the size of the rows and the speed of psql. A base
   * block with a plan goes through the plan's filter (the rows the deltas decided left out), which
   * stops at a line cut by the buffer's end: that line is read again at the start of the next.
   */
  private async copy(s: Session, from: FileHandle, seg: RowsSegment): Promise<void> {
    const filter = this.plan && seg.kind === 'copy' && seg.file === undefined ? this.plan.baseFilter() : null;
    const stdin = s.tool.stdin!;
    const writes: { failed: Error | null } = { failed: null };
    let pos = seg.start;
    for (let turn = 0; pos < seg.end; turn ^= 1) {
      await s.written[turn];
      if (writes.failed) throw writes.failed;
      let buf = s.buffers[turn]!;
      const want = Math.min(buf.length, seg.end - pos);
      await readFully(from, buf, want, pos);
      const last = pos + want === seg.end;
      let wrote: Promise<void> = Promise.resolve();
      const keep = (start: number, end: number): void => {
        const chunk = buf.subarray(start, end);
        // Callbacks come in order: the last one's says every write from this buffer is done with it.
        wrote = new Promise<void>((resolve) =>
          stdin.write(chunk, (err) => {
            if (err) writes.failed ??= err;
            resolve();
          }),
        );
      };
      stdin.cork();
      let used = filter ? filter.take(buf, 0, want, keep) : (keep(0, want), want);
      if (last && used < want) {
        keep(used, want);
        used = want;
      }
      stdin.uncork();
      s.written[turn] = wrote;
      if (used === 0) {
        // One line longer than the buffer: a larger one, kept for this session.
        await wrote;
        buf = Buffer.allocUnsafe(buf.length * 2);
        s.buffers[turn] = buf;
        turn ^= 1;
        continue;
      }
      pos += used;
    }
    await Promise.all(s.written);
    if (writes.failed) throw writes.failed;
  }

  /** Writes `text` to a session; rejects when the session exits first. */
  async feedText(s: Session, text: string): Promise<void> {
    await Promise.race([
      new Promise<void>((resolve, reject) => s.tool.stdin!.write(text, (err) => (err ? reject(err) : resolve()))),
      s.tool.done.then(() => Promise.reject(new Error('psql exited before its input ended'))),
    ]);
  }

  busy(): Promise<void>[] {
    return this.sessions.map((s) => s.busy).filter((b): b is Promise<void> => b !== null);
  }

  waitForMore(): Promise<void> {
    return new Promise<void>((r) => (this.wake = r));
  }

  /** The settings before the first block run on every session; anything else there runs once, in order (then the whole load is serial). */
  async sendHeader(): Promise<boolean> {
    const h = this.header;
    if (!h) return false;
    const text = Buffer.alloc(Math.min(h.end - h.start, 1 << 16));
    await this.handle!.read(text, 0, text.length, h.start);
    if (this.sawCopy && h.end - h.start <= text.length && settingsOnly(text.toString('utf8'))) {
      await Promise.all(this.sessions.map((s) => this.feed(s, h)));
      return false;
    }
    this.queue.unshift(h);
    return true;
  }

  /** Hands out segments as they complete in the file; SQL after the first block waits for every block before it. */
  async schedule(): Promise<void> {
    while (!this.sawCopy && !this.ended) await this.waitForMore();
    this.plan = await this.ready;
    const serial = await this.sendHeader();
    // The winning delta rows: blocks like the base's, loaded among them.
    if (this.plan) this.queue.push(...this.plan.blocks);
    for (;;) {
      if (this.failure) throw this.failure;
      const next = this.queue[0];
      if (!next) {
        if (this.ended) break;
        await this.waitForMore();
        continue;
      }
      if (next.kind === 'sql') {
        // A barrier: everything before it loaded, then it alone on the first session.
        await Promise.all(this.busy());
        this.queue.shift();
        await this.feed(this.sessions[0]!, next);
        continue;
      }
      const first = this.sessions[0]!;
      const idle = serial ? (first.busy === null ? first : undefined) : this.sessions.find((s) => s.busy === null);
      if (!idle) {
        await Promise.race(this.busy());
        continue;
      }
      this.queue.shift();
      idle.busy = this.feed(idle, next).then(() => {
        idle.busy = null;
      });
      // A failure shows in the waits above or at the end; never as an unhandled rejection.
      idle.busy.catch(() => undefined);
    }
    await Promise.all(this.busy());
    // The newest delta's sequence values, after the base's own.
    if (this.plan?.tail) await this.feedText(this.sessions[0]!, this.plan.tail);
  }

  start(): void {
    this.scheduled ??= this.schedule().catch((err: unknown) => {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
      for (const s of this.sessions) s.tool.stop();
    });
    this.wake();
  }

  /** Creates the file gpg writes the plaintext into and starts following it; its descriptor. */
  async open(progress?: (bytes: number) => void): Promise<number> {
    try {
      this.handle = await open(this.file, 'wx+', 0o600);
    } catch (err) {
      this.failure ??= err as Error;
      throw err;
    }
    this.growing = new GrowingFile(this.handle);
    this.following = this.follow(this.growing, progress);
    return this.handle.fd;
  }

  /**
   * Reads the file behind gpg into one buffer, cutting it into segments as they complete: nothing is
   * allocated per chunk (a pipe into this process would allocate a buffer per read, garbage that
   * piles up between collections).
   */
  private async follow(growing: GrowingFile, progress?: (bytes: number) => void): Promise<void> {
    const buf = Buffer.allocUnsafe(FOLLOW_BUFFER);
    try {
      for (;;) {
        const n = await growing.read(buf, this.written, 1);
        if (n === 0) break;
        this.splitter.push(buf.subarray(0, n));
        this.written += n;
        progress?.(this.written);
        this.start();
      }
      this.splitter.end();
    } catch (err) {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
    } finally {
      this.ended = true;
      this.start();
    }
  }

  /** gpg has exited: the file is complete at `bytes` (null: it was never opened). */
  end(bytes: number | null): void {
    if (bytes === null || !this.growing) {
      this.ended = true;
      this.start();
    } else this.growing.end(bytes);
    this.producerEnded();
  }

  /** Resolves once every session exited 0; the file is removed on every path. */
  async done(): Promise<void> {
    try {
      await this.producer;
      await this.following;
      await this.scheduled;
      for (const s of this.sessions) s.tool.stdin!.end();
      const results = await Promise.allSettled(this.sessions.map((s) => s.tool.done));
      // The session that failed on its own explains the run, not the ones stopped because of it.
      const bad = results.filter((r, i): r is PromiseRejectedResult => r.status === 'rejected' && !this.sessions[i]!.tool.stopped);
      if (bad[0]) throw bad[0].reason as Error;
      if (this.failure) throw this.failure;
    } finally {
      await this.handle?.close().catch(() => undefined);
      await rm(this.file, { force: true });
    }
  }
}

/**
 * A sink for decryptPartInto: gpg writes the plaintext into `file` (created 0600, must not exist),
 * which is followed as it grows and its COPY blocks loaded on `jobs` sessions of `consumer` (psql)
 * as they complete. `done` resolves once every session has exited 0; the file is removed on every path.
 */
export function parallelRowsSink(
  file: string,
  consumer: ToolRun,
  jobs: number,
  signal?: AbortSignal,
  plan?: Promise<ChainPlan | null>,
): PlainSink {
  const load = new ParallelRows(file, consumer, jobs, signal, plan);
  const done = load.done();
  done.catch(() => undefined);
  return { file: { open: (progress) => load.open(progress), end: (bytes) => load.end(bytes) }, done };
}
