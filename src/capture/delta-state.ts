/**
 * The server's private delta state: what the newest snapshot of the vault holds, per table, as its
 * sorted primary keys each with a keyed row hash (never a row, never an unkeyed hash of one), so
 * the next snapshot can be computed without decrypting anything.
 *
 * Layout, in `<vault>/.permafrost-delta/` (0700; Syncthing ignores `/.permafrost*`):
 *   state.json   which snapshot it describes; per table its key columns, row count, hash, file and
 *                the file's SHA-256 (a damaged file is found while it is read and makes a base)
 *   key          32 random bytes: the AES-128 key of the row hashes (a lost key: a base)
 *   <n>.keys     one line per row, in the order the capture reads rows: `key\thash\n`
 * A new state is written beside it (`.permafrost-delta.next-<pid>`) and renamed in only after its
 * snapshot is committed. Anything missing, unreadable or not matching makes the next snapshot a
 * base (a warning), never a wrong delta.
 */
import { createCipheriv, createHash, randomBytes, type Cipher, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../schema-issues.js';
import { fsyncDir, fsyncFile, writeFileAtomic } from '../vault/fs-durable.js';

export const STATE_DIR = '.permafrost-delta';
const NEXT_PREFIX = '.permafrost-delta.next-';
const STATE_JSON = 'state.json';
const KEY_FILE = 'key';

const stateTableSchema = z.object({
  schema: z.string().min(1),
  table: z.string().min(1),
  /** Key columns; null: no primary key (no keys file: such a table is copied whole). */
  key: z.array(z.string().min(1)).nullable(),
  rows: z.number().int().nonnegative(),
  hash: z.string().regex(/^\d{1,20}$/),
  /** `<n>.keys` inside the state folder, and the SHA-256 of its bytes; null without a key. */
  file: z
    .string()
    .regex(/^\d+\.keys$/)
    .nullable(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
});
export type StateTable = z.infer<typeof stateTableSchema>;

export const deltaStateSchema = z.object({
  formatVersion: z.literal(1),
  /** The snapshot this state describes (the next delta's reference). */
  snapshot: z.string(),
  base: z.string(),
  depth: z.number().int().nonnegative(),
  ddl: z.string().regex(/^[0-9a-f]{64}$/),
  schemaMigration: z.string().nullable(),
  tables: z.array(stateTableSchema),
});
export type DeltaState = z.infer<typeof deltaStateSchema>;

/** The state that is there, or why there is none usable (null reason: none yet, the first base). */
export type LoadedState = { state: DeltaState; dir: string; key: Buffer } | { state: null; problem: string | null };

/** Reads the vault's delta state; never throws: what cannot be used is a reason to make a base. */
export async function loadDeltaState(vaultDir: string): Promise<LoadedState> {
  const dir = path.join(vaultDir, STATE_DIR);
  let text: string;
  try {
    text = await readFile(path.join(dir, STATE_JSON), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      state: null,
      problem: code === 'ENOENT' ? null : `its delta state ${dir}/${STATE_JSON} cannot be read (${code ?? String(err)})`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { state: null, problem: `its delta state ${dir}/${STATE_JSON} is not valid JSON` };
  }
  const parsed = deltaStateSchema.safeParse(json);
  if (!parsed.success) {
    return {
      state: null,
      problem: `its delta state ${dir}/${STATE_JSON} is not of the expected shape (${describeIssues(parsed.error.issues)[0]})`,
    };
  }
  let key: Buffer;
  try {
    key = await readFile(path.join(dir, KEY_FILE));
  } catch {
    return { state: null, problem: `its delta state key ${dir}/${KEY_FILE} is missing` };
  }
  if (key.length !== 32) return { state: null, problem: `its delta state key ${dir}/${KEY_FILE} is not 32 bytes` };
  return { state: parsed.data, dir, key };
}

/** The keyed row hash: AES-128 of the row's md5 (a keyed permutation), 22 base64url characters per row. */
export class RowKeyer {
  private readonly cipher: Cipher;
  constructor(key: Buffer) {
    this.cipher = createCipheriv('aes-128-ecb', key.subarray(0, 16), null);
    this.cipher.setAutoPadding(false);
  }

  /** `md5s`: n × 16 bytes; returns n keyed hashes. */
  keyed(md5s: Buffer, n: number): string[] {
    const out = this.cipher.update(md5s.subarray(0, n * 16));
    const hashes = new Array<string>(n);
    for (let i = 0; i < n; i++) hashes[i] = out.toString('base64url', i * 16, i * 16 + 16);
    return hashes;
  }
}

/** Lines of a stream, as strings (latin1: keys and hashes are ASCII), a chunk's worth at a time. */
export async function* readLines(chunks: AsyncIterable<Buffer>, onBytes?: (b: Buffer) => void): AsyncGenerator<string[]> {
  let rest = '';
  for await (const chunk of chunks) {
    onBytes?.(chunk);
    const text = rest + chunk.toString('latin1');
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    if (lines.length > 0) yield lines;
  }
  if (rest !== '') yield [rest];
}

/** A keys file being read: lines in order, and at the end whether its bytes are the ones recorded. */
export class StateReader {
  private readonly hash: Hash = createHash('sha256');
  private readonly lines: AsyncGenerator<string[]>;
  private buf: string[] = [];
  private at = 0;
  private done = false;

  constructor(file: string) {
    this.lines = readLines(createReadStream(file, { highWaterMark: 1 << 20 }), (b) => this.hash.update(b));
  }

  /** The next `[key, hash]`, or null at the end. */
  async next(): Promise<[string, string] | null> {
    while (this.at >= this.buf.length) {
      if (this.done) return null;
      const r = await this.lines.next();
      if (r.done) {
        this.done = true;
        return null;
      }
      this.buf = r.value;
      this.at = 0;
    }
    const line = this.buf[this.at++]!;
    const tab = line.lastIndexOf('\t');
    return [line.slice(0, tab), line.slice(tab + 1)];
  }

  sha256(): string {
    return this.hash.digest('hex');
  }
}

/** A state being written for the snapshot in progress. */
export class NextState {
  private constructor(
    readonly dir: string,
    private readonly vaultDir: string,
    readonly key: Buffer,
  ) {}

  /** A fresh folder beside the current state; a new key when `key` is null (a base whose state was unusable). */
  static async create(vaultDir: string, key: Buffer | null): Promise<NextState> {
    const dir = path.join(vaultDir, `${NEXT_PREFIX}${process.pid}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    const k = key ?? randomBytes(32);
    await writeFile(path.join(dir, KEY_FILE), k, { mode: 0o600 });
    return new NextState(dir, vaultDir, k);
  }

  /** A writer for table number `n`'s keys file. */
  keysFile(n: number): KeysWriter {
    return new KeysWriter(path.join(this.dir, `${n}.keys`));
  }

  /** Writes state.json and renames the folder into place (after the snapshot it describes is committed). */
  async commit(state: DeltaState): Promise<void> {
    await writeFileAtomic(path.join(this.dir, STATE_JSON), `${JSON.stringify(state)}\n`, 0o600);
    await fsyncDir(this.dir);
    const current = path.join(this.vaultDir, STATE_DIR);
    const old = `${current}.old-${process.pid}`;
    await rename(current, old).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(this.dir, current);
    await fsyncDir(this.vaultDir);
    await rm(old, { recursive: true, force: true });
  }

  async discard(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Removes the state (when it is found not to match, so that no later run trusts it either). */
export async function dropDeltaState(vaultDir: string): Promise<void> {
  await rm(path.join(vaultDir, STATE_DIR), { recursive: true, force: true });
}

/** Removes next-state folders of runs that died (call under the run lock). */
export async function cleanStaleStates(vaultDir: string): Promise<void> {
  const names = await readdir(vaultDir).catch(() => [] as string[]);
  for (const n of names) {
    if (n.startsWith(NEXT_PREFIX) || n.startsWith(`${STATE_DIR}.old-`)) await rm(path.join(vaultDir, n), { recursive: true, force: true });
  }
}

/** Buffered writer of one keys file, hashing what it writes. */
export class KeysWriter {
  private readonly out: WriteStream;
  private readonly hash: Hash = createHash('sha256');
  private pending: string[] = [];
  private size = 0;

  constructor(readonly file: string) {
    this.out = createWriteStream(file, { mode: 0o600, flags: 'wx' });
  }

  get name(): string {
    return path.basename(this.file);
  }

  /** Appends one line per key (`key\thash`), in the order given. */
  async lines(keys: readonly string[], hashes: readonly string[]): Promise<void> {
    let s = '';
    for (let i = 0; i < keys.length; i++) s += `${keys[i]}\t${hashes[i]}\n`;
    this.pending.push(s);
    this.size += s.length;
    if (this.size >= 1 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.join(''), 'latin1');
    this.pending = [];
    this.size = 0;
    this.hash.update(buf);
    if (!this.out.write(buf))
      await new Promise<void>((resolve, reject) => {
        this.out.once('drain', resolve);
        this.out.once('error', reject);
      });
  }

  /** Flushes, fsyncs and returns the file's SHA-256. */
  async close(): Promise<string> {
    await this.flush();
    await new Promise<void>((resolve, reject) => {
      this.out.once('error', reject);
      this.out.end(resolve);
    });
    await fsyncFile(this.file);
    return this.hash.digest('hex');
  }
}
