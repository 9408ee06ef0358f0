/**
 * The server's private delta state: what the newest snapshot of the vault holds, per table, as its
 * sorted primary keys each with a keyed row hash (never a row, never an unkeyed hash of one), so
 * the next snapshot can be computed without decrypting anything.
 *
 * Layout, in `<vault>/.permafrost-delta/` (0700; Syncthing ignores `/.permafrost*`):
 *   state.json   which snapshot it describes; per table its key columns, row count, hash, file and
 *                the file's SHA-256 (a damaged file is found while it is read and makes a base)
 *   state.mac    HMAC-SHA256 of state.json under the state's key (so also of every keys file,
 *                through their digests in it): a state edited by hand makes a base
 *   key          32 random bytes: the AES-128 key of the row hashes (a lost key: a base)
 *   <n>.keys     one line per row, in the order the capture reads rows: `key\thash\n`
 * A new state is written beside it (`.permafrost-delta.next-<pid>`) and renamed in only after its
 * snapshot is committed. Anything missing, unreadable or not matching makes the next snapshot a
 * base (a warning), never a wrong delta.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  timingSafeEqual,
  type Cipher,
  type Hash,
} from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../schema-issues.js';
import { fsyncDir, fsyncFile, writeFileAtomic } from '../vault/fs-durable.js';
import { openVault, VAULT_NAMES } from '../vault/layout.js';
import { ROW_HASH_KINDS } from '../vault/manifest.js';

export const STATE_DIR = VAULT_NAMES.delta.dir;
const NEXT_PREFIX = VAULT_NAMES.delta.nextPrefix;
const STATE_JSON = 'state.json';
const STATE_MAC = 'state.mac';
const KEY_FILE = 'key';
/** The state format: 2 added the server's timeline and state.mac; 3 the row hash (rowHash), whose values its hashes are. */
const FORMAT_VERSION = 3;

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
  /**
   * Rows a recent delta copied, with the xmin they had: one that is back to an older version (its
   * xmin neither the same nor newer) means the server was rolled back, and a delta would be wrong.
   */
  witness: z.array(z.tuple([z.string(), z.string().regex(/^\d+$/)])).max(1000),
});
export type StateTable = z.infer<typeof stateTableSchema>;

export const deltaStateSchema = z.object({
  formatVersion: z.literal(FORMAT_VERSION),
  /** How the rows were hashed (delta-sql.ts RowHashKind): the table hashes and the keyed row hashes are of this kind. */
  rowHash: z.enum(ROW_HASH_KINDS),
  /** The snapshot this state describes (the next delta's reference). */
  snapshot: z.string(),
  base: z.string(),
  depth: z.number().int().nonnegative(),
  ddl: z.string().regex(/^[0-9a-f]{64}$/),
  schemaMigration: z.string().nullable(),
  /**
   * The snapshot's xmin (64-bit txid): every row inserted or updated since has a newer xmin. With
   * the server's identity, so that a different server (a dump reloaded elsewhere) is never diffed by xid.
   */
  xmin: z.string().regex(/^\d+$/),
  server: z.object({
    systemIdentifier: z.string().nullable(),
    databaseOid: z.string(),
    lsn: z.string().nullable(),
    /** The server's timeline (null when it cannot be read): another one is a promoted replica or a point-in-time recovery. */
    timeline: z.string().regex(/^\d+$/).nullable(),
  }),
  /** AES of a zero block under the state's key: a key file swapped for another is found before it is used. */
  keyCheck: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
  tables: z.array(stateTableSchema),
});
export type DeltaState = z.infer<typeof deltaStateSchema>;

/** The state that is there, or why there is none usable (null reason: none yet, the first base). */
export type LoadedState = { state: DeltaState; dir: string; key: Buffer } | { state: null; problem: string | null };

/** Reads the vault's delta state; never throws: what cannot be used is a reason to make a base. */
export async function loadDeltaState(vaultDir: string): Promise<LoadedState> {
  const dir = openVault(vaultDir).deltaStateDir();
  let bytes: Buffer;
  try {
    bytes = await readFile(path.join(dir, STATE_JSON));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      state: null,
      problem: code === 'ENOENT' ? null : `its delta state ${dir}/${STATE_JSON} cannot be read (${code ?? String(err)})`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { state: null, problem: `its delta state ${dir}/${STATE_JSON} is not valid JSON` };
  }
  const version = (json as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof version === 'number' && version < FORMAT_VERSION)
    return { state: null, problem: `its delta state ${dir}/${STATE_JSON} was written by an older permafrost (format ${version})` };
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
  if (keyCheck(key) !== parsed.data.keyCheck)
    return { state: null, problem: `its delta state key ${dir}/${KEY_FILE} is not the key the state was made with` };
  let mac: string;
  try {
    mac = (await readFile(path.join(dir, STATE_MAC), 'latin1')).trim();
  } catch {
    return { state: null, problem: `its delta state ${dir}/${STATE_MAC} is missing` };
  }
  const want = Buffer.from(stateMac(key, bytes), 'latin1');
  const got = Buffer.from(mac, 'latin1');
  if (got.length !== want.length || !timingSafeEqual(got, want))
    return {
      state: null,
      problem: `its delta state ${dir}/${STATE_JSON} does not match its authentication code ${STATE_MAC} (edited by hand, or damaged)`,
    };
  return { state: parsed.data, dir, key };
}

/**
 * The authentication code of state.json's bytes: HMAC-SHA256 under the state's own key, with a
 * label. It covers the keys files too, through the SHA-256 of each that state.json records.
 */
export function stateMac(key: Buffer, stateJson: Buffer): string {
  return createHmac('sha256', key).update('permafrost delta state v1\n').update(stateJson).digest('hex');
}

/** The check value of a state key (AES-128 of a zero block). */
export function keyCheck(key: Buffer): string {
  return new RowKeyer(key).keyed(Buffer.alloc(16), 1)[0]!;
}

/** The keyed row hash: AES-128 of the row's md5 (a keyed permutation), 22 base64url characters per row. */
export class RowKeyer {
  private readonly cipher: Cipher;
  constructor(private readonly key: Buffer) {
    this.cipher = createCipheriv('aes-128-ecb', key.subarray(0, 16), null);
    this.cipher.setAutoPadding(false);
  }

  /** The md5 (hex) a keyed hash was made from: AES is a permutation, and the key is the state's. */
  md5Of(keyed: string): string {
    const d = createDecipheriv('aes-128-ecb', this.key.subarray(0, 16), null);
    d.setAutoPadding(false);
    return d.update(Buffer.from(keyed, 'base64url')).toString('hex');
  }

  /** `md5s`: n × 16 bytes; returns the n keyed hashes' raw bytes (n × 16). */
  encrypt(md5s: Buffer, n: number): Buffer {
    return this.cipher.update(md5s.subarray(0, n * 16));
  }

  /** `md5s`: n × 16 bytes; returns n keyed hashes. */
  keyed(md5s: Buffer, n: number): string[] {
    const out = this.encrypt(md5s, n);
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

/**
 * A keys file being read in order, a chunk of lines at a time: `line()` is the current line (or
 * null at the end), `advance()` moves on and is synchronous except when a chunk is used up.
 * At the end, `sha256()` tells whether its bytes are the ones state.json recorded.
 */
export class StateReader {
  private readonly hash: Hash = createHash('sha256');
  private readonly lines: AsyncGenerator<string[]>;
  private buf: string[] = [];
  private at = 0;
  private ended = false;

  constructor(file: string) {
    this.lines = readLines(createReadStream(file, { highWaterMark: 64 << 10 }), (b) => this.hash.update(b));
  }

  /** Loads the first chunk; call once before line(). */
  async open(): Promise<void> {
    await this.refill();
  }

  /** The current line (`key\thash`), or null at the end. */
  line(): string | null {
    return this.at < this.buf.length ? this.buf[this.at]! : null;
  }

  /** Moves to the next line; returns a promise only when the next chunk has to be read. */
  advance(): Promise<void> | undefined {
    this.at++;
    return this.at < this.buf.length ? undefined : this.refill();
  }

  private async refill(): Promise<void> {
    while (this.at >= this.buf.length && !this.ended) {
      const r = await this.lines.next();
      if (r.done) this.ended = true;
      else {
        this.buf = r.value;
        this.at = 0;
      }
    }
  }

  sha256(): string {
    return this.hash.digest('hex');
  }
}

/** The state did not hold what it should: the delta would be wrong, so a base is made instead. */
export class StateMismatchError extends Error {}

const KEYED_RE = /^[A-Za-z0-9_-]{22}$/;

/**
 * The key and the keyed hash of a keys-file line; a line of another shape (a cut or edited file) is
 * a mismatch. The key may be empty: a text key '' (its line starts with the tab).
 */
export function splitStateLine(line: string): [string, string] {
  const tab = line.lastIndexOf('\t');
  const hash = line.slice(tab + 1);
  if (tab < 0 || !KEYED_RE.test(hash))
    throw new StateMismatchError('its delta state has a damaged keys file (a line that is no key and hash)');
  return [line.slice(0, tab), hash];
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
    const dir = openVault(vaultDir).deltaNextDir();
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

  /** Writes state.json and its authentication code, and renames the folder into place (after the snapshot it describes is committed). */
  async commit(state: Omit<DeltaState, 'keyCheck' | 'formatVersion'>): Promise<void> {
    const full: DeltaState = { formatVersion: FORMAT_VERSION, ...state, keyCheck: keyCheck(this.key) };
    const text = Buffer.from(`${JSON.stringify(full)}\n`, 'utf8');
    await writeFileAtomic(path.join(this.dir, STATE_JSON), text, 0o600);
    await writeFileAtomic(path.join(this.dir, STATE_MAC), `${stateMac(this.key, text)}\n`, 0o600);
    await fsyncDir(this.dir);
    const current = openVault(this.vaultDir).deltaStateDir();
    const old = openVault(this.vaultDir).deltaOldDir();
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
  await rm(openVault(vaultDir).deltaStateDir(), { recursive: true, force: true });
}

/** Removes next-state folders of runs that died (call under the run lock). */
export async function cleanStaleStates(vaultDir: string): Promise<void> {
  const names = await readdir(vaultDir).catch(() => [] as string[]);
  for (const n of names) {
    if (n.startsWith(NEXT_PREFIX) || n.startsWith(VAULT_NAMES.delta.oldPrefix))
      await rm(openVault(vaultDir).leftover(n), { recursive: true, force: true });
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
    await this.text(s);
  }

  /** Appends bytes already in the file's form (whole lines, each ending in a newline). */
  async bytes(b: Buffer): Promise<void> {
    await this.flush();
    this.hash.update(b);
    await this.write(b);
  }

  /** Appends lines already in the file's form (each ending in a newline). */
  async text(s: string): Promise<void> {
    this.pending.push(s);
    this.size += s.length;
    if (this.size >= 64 << 10) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.join(''), 'latin1');
    this.pending = [];
    this.size = 0;
    this.hash.update(buf);
    await this.write(buf);
  }

  private async write(buf: Buffer): Promise<void> {
    if (!this.out.write(buf)) {
      await new Promise<void>((resolve, reject) => {
        const fail = (err: Error): void => reject(err);
        this.out.once('error', fail);
        this.out.once('drain', () => {
          this.out.off('error', fail);
          resolve();
        });
      });
    }
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
