import { execFile } from 'node:child_process';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import type { RedisConfig } from '../config/schema-parts.js';
import { readSecretFile } from '../config/secret-file.js';
import { PermafrostError, ToolError } from '../errors.js';
import { spawnStreaming, type StreamingTool } from './spawn-stream.js';

const execFileP = promisify(execFile);

/** Where redis-cli connects, read from redis.url. */
export interface RedisTarget {
  socket?: string;
  host?: string;
  port?: number;
  db?: number;
  user?: string;
  tls: boolean;
}

/** Splits a redis://, rediss:// or unix:// URL into redis-cli's connection settings (no password). */
export function parseRedisUrl(value: string): RedisTarget {
  const url = new URL(value);
  const dbParam = url.searchParams.get('db');
  if (url.protocol === 'unix:') {
    return { socket: decodeURIComponent(url.pathname), db: dbParam ? Number(dbParam) : undefined, tls: false };
  }
  const dbPath = url.pathname.replace(/^\//, '');
  const db = dbPath ? Number(dbPath) : dbParam ? Number(dbParam) : undefined;
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: url.port ? Number(url.port) : 6379,
    db: db !== undefined && Number.isInteger(db) ? db : undefined,
    user: url.username ? decodeURIComponent(url.username) : undefined,
    tls: url.protocol === 'rediss:',
  };
}

/** redis-cli argv for the configured server followed by `args`; the password is never part of it. */
export function redisCliArgv(redis: Pick<RedisConfig, 'url' | 'cli'>, args: string[]): string[] {
  const t = parseRedisUrl(redis.url);
  const conn: string[] = [];
  if (t.socket !== undefined) conn.push('-s', t.socket);
  else conn.push('-h', t.host ?? 'localhost', '-p', String(t.port ?? 6379));
  if (t.tls) conn.push('--tls');
  if (t.user !== undefined) conn.push('--user', t.user);
  if (t.db !== undefined && t.db !== 0) conn.push('-n', String(t.db));
  return [redis.cli ?? 'redis-cli', ...conn, '--no-auth-warning', ...args];
}

/** The environment for redis-cli: the password travels as REDISCLI_AUTH, never in argv. */
export function redisEnv(redis: Pick<RedisConfig, 'passwordFile'>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env = { ...base };
  if (redis.passwordFile) env.REDISCLI_AUTH = readSecretFile(redis.passwordFile, 'redis.passwordFile');
  return env;
}

/** How long the end-of-transfer marker is that redis-cli writes after a diskless RDB on stdout. */
const RDB_EOF_MARK_SIZE = 40;

/**
 * The exact RDB length redis-cli reports on stderr: "writing N bytes" for a disk-based transfer,
 * "after N bytes" for a diskless one, whose 40-byte end marker it cannot truncate from a pipe.
 */
export function rdbLengthFromStderr(stderr: string): number | null {
  const m = /Transfer finished with success after (\d+) bytes/.exec(stderr) ?? /writing (\d+) bytes to/.exec(stderr);
  return m ? Number(m[1]) : null;
}

/**
 * Holds back the last bytes of redis-cli's output until it has exited, then passes on exactly the
 * RDB length it reported, so the stored file is the RDB and nothing else. Checks the RDB magic.
 */
export class RdbTrimmer extends Transform {
  private held = Buffer.alloc(0);
  private emitted = 0;
  private head = Buffer.alloc(0);

  constructor(private readonly finalLength: () => Promise<number>) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.head.length < 5) {
      this.head = Buffer.concat([this.head, chunk.subarray(0, 5 - this.head.length)]);
      if (this.head.length === 5 && this.head.toString('latin1') !== 'REDIS') {
        return cb(new Error('redis-cli did not send an RDB file (no REDIS header)'));
      }
    }
    const all = Buffer.concat([this.held, chunk]);
    const pass = Math.max(0, all.length - RDB_EOF_MARK_SIZE);
    this.held = all.subarray(pass);
    this.emitted += pass;
    cb(null, pass > 0 ? all.subarray(0, pass) : undefined);
  }

  override _flush(cb: TransformCallback): void {
    this.finalLength().then(
      (length) => {
        const want = length - this.emitted;
        if (want < 0 || want > this.held.length) {
          return cb(new Error(`redis-cli sent ${this.emitted + this.held.length} bytes but reported an RDB of ${length}`));
        }
        cb(null, this.held.subarray(0, want));
      },
      (err: unknown) => cb(err as Error),
    );
  }
}

export interface RedisCapture {
  tool: StreamingTool;
  /** The RDB bytes, nothing more. */
  stdout: Transform;
}

/** Starts `redis-cli --rdb -`: the server streams a fresh RDB over the connection; nothing is written to disk. */
export function startRedisCapture(redis: RedisConfig, signal?: AbortSignal): RedisCapture {
  const argv = redisCliArgv(redis, ['--rdb', '-']);
  const tool = spawnStreaming(argv, { env: redisEnv(redis), what: `Redis at ${redis.url}`, signal });
  let stderr = '';
  tool.child.stderr.on('data', (s: string) => {
    stderr = (stderr + s).slice(-8192);
  });
  const trimmer = new RdbTrimmer(async () => {
    await tool.done;
    const length = rdbLengthFromStderr(stderr);
    if (length === null) {
      throw new ToolError('redis-cli finished without reporting the RDB length; use redis-cli 6 or newer.', {
        argv,
        exitStatus: 0,
        stderr,
      });
    }
    return length;
  });
  tool.stdout.once('error', (err) => trimmer.destroy(err));
  tool.stdout.pipe(trimmer);
  // Errors reach the caller through the pipeline and `tool.done`; this keeps one from going unhandled.
  tool.done.catch(() => undefined);
  return { tool, stdout: trimmer };
}

/** "redis-cli 7.0.15" → [7, 0]; null when the text is not a redis-cli version line. */
export function parseRedisCliVersion(text: string): [number, number] | null {
  const m = /redis-cli (\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/**
 * redis-cli 7.0 is the first that streams `--rdb -` into a pipe and exits 0 (redis PR #9135);
 * older ones fail after the transfer or, before 6.2, write a plaintext file named "-".
 * Returns the version, or the sentence that says what to install.
 */
export async function checkRedisCli(redis: Pick<RedisConfig, 'cli'>): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  const bin = redis.cli ?? 'redis-cli';
  let out: string;
  try {
    out = (await execFileP(bin, ['--version'], { timeout: 10_000 })).stdout;
  } catch (err) {
    return { ok: false, reason: `cannot run ${bin} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); install redis-tools 7 or newer, or set redis.cli` };
  }
  const v = parseRedisCliVersion(out);
  if (!v) return { ok: false, reason: `${bin} --version printed "${out.trim()}", not a redis-cli version; point redis.cli at redis-cli` };
  if (v[0] < 7) return { ok: false, reason: `${bin} is version ${v.join('.')}, which cannot stream an RDB into a pipe; install redis-cli 7 or newer (package redis-tools), or set redis.cli` };
  return { ok: true, version: v.join('.') };
}

/** Whether Redis answers PING with the configured connection; the reason when it does not. */
export async function pingRedis(redis: RedisConfig): Promise<{ ok: true } | { ok: false; reason: string }> {
  const argv = redisCliArgv(redis, ['PING']);
  const [bin, ...args] = argv;
  let env: NodeJS.ProcessEnv;
  try {
    env = redisEnv(redis);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  try {
    const { stdout, stderr } = await execFileP(bin!, args, { env, timeout: 10_000 });
    if (stdout.trim() === 'PONG') return { ok: true };
    return { ok: false, reason: (stdout.trim() || stderr.trim()).split('\n').pop() ?? 'no answer' };
  } catch (err) {
    const e = err as { code?: string; stderr?: string; stdout?: string; message: string };
    if (e.code === 'ENOENT') return { ok: false, reason: `${bin} is not installed` };
    const text = `${e.stdout ?? ''}\n${e.stderr ?? ''}`.trim().split('\n').filter(Boolean).pop();
    return { ok: false, reason: text ?? e.message };
  }
}

/** Wraps a failure of the Redis part so that the message names the part and what to check. */
export function redisPartError(redis: RedisConfig, err: unknown): PermafrostError {
  const why = err instanceof Error ? err.message : String(err);
  return new PermafrostError('tool', `Redis part failed: ${why.includes(redis.url) ? '' : `${redis.url}: `}${why.replace(/\.$/, '')}; check redis.url, redis.passwordFile and that Redis is running, or set redis.optional: true.`, {
    cause: err,
    details: err instanceof PermafrostError ? err.details : [],
  });
}
