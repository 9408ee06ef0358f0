/**
 * redis-cli: the connection argv and env built from redis.url (the password only ever in
 * REDISCLI_AUTH), its version check, PING, and `redis-cli --rdb -`, which streams a fresh RDB.
 */
import type { RedisConfig } from '../config/schema-parts.js';
import type { ToolError } from '../errors.js';
import { runTool, startTool, type RunningTool } from './run.js';
import type { Secret } from '../config/secret-values.js';

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

/** Redis to connect to: its settings and its password as read when the job started (ops/secrets.ts). */
export type RedisServer = RedisConfig & { readonly password: Secret | undefined };

/** The environment for redis-cli: the password travels as REDISCLI_AUTH, never in argv. */
function redisEnv(redis: Pick<RedisServer, 'password'>, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env = { ...base };
  if (redis.password) env.REDISCLI_AUTH = redis.password.reveal();
  return env;
}

/** Starts `redis-cli --rdb -`: the server streams a fresh RDB over the connection; nothing is written to disk. */
export function startRdbStream(redis: RedisServer, signal?: AbortSignal): RunningTool {
  return startTool({ argv: redisCliArgv(redis, ['--rdb', '-']), env: redisEnv(redis), doing: `capturing Redis at ${redis.url}`, signal });
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
export async function checkRedisCli(
  redis: Pick<RedisConfig, 'cli'>,
): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  const bin = redis.cli ?? 'redis-cli';
  let out: string;
  try {
    out = (await runTool({ argv: [bin, '--version'], doing: 'reporting its version' }, { timeoutMs: 10_000 })).stdout;
  } catch (err) {
    const e = err as ToolError;
    return {
      ok: false,
      reason: `cannot run ${bin} (${(e.cause as NodeJS.ErrnoException | undefined)?.code ?? e.message}); install redis-tools 7 or newer, or set redis.cli`,
    };
  }
  const v = parseRedisCliVersion(out);
  if (!v) return { ok: false, reason: `${bin} --version printed "${out.trim()}", not a redis-cli version; point redis.cli at redis-cli` };
  if (v[0] < 7)
    return {
      ok: false,
      reason: `${bin} is version ${v.join('.')}, which cannot stream an RDB into a pipe; install redis-cli 7 or newer (package redis-tools), or set redis.cli`,
    };
  return { ok: true, version: v.join('.') };
}

/** Whether Redis answers PING with the configured connection; the reason when it does not. */
export async function pingRedis(redis: RedisServer): Promise<{ ok: true } | { ok: false; reason: string }> {
  const argv = redisCliArgv(redis, ['PING']);
  let env: NodeJS.ProcessEnv;
  try {
    env = redisEnv(redis);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  try {
    const { stdout, stderr } = await runTool({ argv, env, doing: `pinging Redis at ${redis.url}` }, { timeoutMs: 10_000 });
    if (stdout.trim() === 'PONG') return { ok: true };
    return { ok: false, reason: (stdout.trim() || stderr.trim()).split('\n').pop() ?? 'no answer' };
  } catch (err) {
    const e = err as ToolError;
    if ((e.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return { ok: false, reason: `${argv[0]} is not installed` };
    return { ok: false, reason: e.stderrTail.split('\n').filter(Boolean).pop() ?? e.message };
  }
}
