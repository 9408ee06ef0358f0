/**
 * A minimal replica handshake that fetches Redis's RDB without `repl-diskless-sync-delay`: a plain
 * `SYNC` (no `REPLCONF capa eof`) gets a disk-based BGSAVE at once, answered with `$<len>\r\n` and
 * exactly len bytes of RDB (bare "\n" keep-alives may come first while the save runs). Redis then
 * writes that RDB to its own dump file, so it is used only when Redis already saves RDB files on a
 * schedule (`CONFIG GET save` not empty); otherwise the caller falls back to `redis-cli --rdb -`.
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import { parseRedisUrl, type RedisServer } from '../tools/redis-cli.js';

/** Idle time-out: Redis sends a "\n" every second while a requested BGSAVE runs, so silence this long is a dead link. */
const IDLE_MS = 30_000;
/** The longest reply line read before the RDB (a bulk length, an error, CONFIG GET's values). */
const MAX_LINE = 64 * 1024;

/** Redis refused the configured password: final, redis-cli would be refused the same way. */
export class RedisAuthError extends Error {}

/** The SYNC path could not start (before the first RDB byte): `reason` says why, for the log line. */
export interface SyncFallback {
  fallback: string;
}

export interface SyncCapture {
  /** Exactly the RDB bytes (REDIS magic checked), then the connection is closed. */
  stdout: Readable;
  /** Redis's save schedule, for the log line. */
  schedule: string;
}

/** RESP array of bulk strings: binary-safe, the password never leaves this process but to Redis. */
function command(...args: string[]): Buffer {
  const parts = args.map((a) => {
    const b = Buffer.from(a, 'utf8');
    return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]);
  });
  return Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...parts]);
}

/** Buffers a socket's bytes and hands out reply lines and exact byte counts. */
class Wire {
  buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private ended = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.poke();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.poke();
  };
  private readonly onError = (err: Error): void => {
    this.failure ??= err;
    this.poke();
  };

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async more(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.ended) throw new Error('Redis closed the connection');
    await new Promise<void>((resolve) => (this.wake = resolve));
    const failed = this.failure as Error | null;
    if (failed) throw failed;
  }

  /** Stops buffering: the socket's further bytes go to whoever listens next. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }

  async line(): Promise<string> {
    for (;;) {
      const at = this.buf.indexOf('\r\n');
      if (at >= 0) {
        const text = this.buf.subarray(0, at).toString('utf8');
        this.buf = this.buf.subarray(at + 2);
        return text;
      }
      if (this.buf.length > MAX_LINE) throw new Error(`Redis sent a reply line longer than ${MAX_LINE} bytes`);
      await this.more();
    }
  }

  async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) await this.more();
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** The next n bytes, left in place. */
  async peek(n: number): Promise<Buffer> {
    while (this.buf.length < n) await this.more();
    return this.buf.subarray(0, n);
  }

  /** Drops the bare "\n" keep-alives Redis sends while the BGSAVE for a SYNC runs. */
  async skipKeepAlives(): Promise<void> {
    for (;;) {
      let i = 0;
      while (i < this.buf.length && this.buf[i] === 0x0a) i++;
      this.buf = this.buf.subarray(i);
      if (this.buf.length > 0) return;
      await this.more();
    }
  }

  /** A bulk string reply's value; null for a nil reply; throws the text of an error reply. */
  async bulk(): Promise<string | null> {
    const head = await this.line();
    if (head.startsWith('-')) throw new ReplyError(head.slice(1));
    const m = /^\$(-1|\d{1,9})$/.exec(head);
    if (!m) throw new Error(`Redis sent "${head.slice(0, 40)}" where a bulk string belongs`);
    if (m[1] === '-1') return null;
    // Only short replies are read whole (a config value): a hostile length is refused, not buffered.
    const n = Number(m[1]);
    if (n > MAX_LINE) throw new Error(`Redis announced a ${n}-byte reply where a short value belongs`);
    const data = await this.bytes(n + 2);
    if (data[n] !== 0x0d || data[n + 1] !== 0x0a) throw new Error('Redis sent a bulk string without its line end');
    return data.subarray(0, n).toString('utf8');
  }
}

/** An error reply ("-ERR …", "-NOPERM …"): its text without the dash. */
class ReplyError extends Error {}

function connect(redis: RedisServer): net.Socket {
  const t = parseRedisUrl(redis.url);
  return t.socket !== undefined ? net.connect({ path: t.socket }) : net.connect({ host: t.host ?? 'localhost', port: t.port ?? 6379 });
}

/**
 * Asks Redis for its RDB with a plain SYNC when Redis saves RDB files itself. Resolves with the
 * RDB stream once its first bytes passed the magic check, or with the reason to use redis-cli
 * instead (every failure before the first RDB byte); throws RedisAuthError when the password is
 * refused. The run's signal and an idle time-out end it.
 */
export async function openRedisSync(redis: RedisServer, signal: AbortSignal): Promise<SyncCapture | SyncFallback> {
  if (parseRedisUrl(redis.url).tls) return { fallback: 'a TLS connection (rediss://) is left to redis-cli' };
  signal.throwIfAborted();
  const password = redis.password?.reveal();
  const socket = connect(redis);
  socket.setTimeout(IDLE_MS);
  const wire = new Wire(socket);
  const onTimeout = (): void => {
    socket.destroy(new Error(`Redis sent nothing for ${IDLE_MS / 1000} s`));
  };
  const onAbort = (): void => {
    socket.destroy(signal.reason instanceof Error ? signal.reason : new Error('stopped'));
  };
  socket.on('timeout', onTimeout);
  signal.addEventListener('abort', onAbort, { once: true });
  let handedOver = false;
  try {
    if (password !== undefined) {
      const user = parseRedisUrl(redis.url).user;
      socket.write(user !== undefined ? command('AUTH', user, password) : command('AUTH', password));
      const reply = await wire.line();
      if (reply.startsWith('-')) throw new RedisAuthError(`Redis refused the password (${reply.slice(1).trim()})`);
      if (reply !== '+OK') return { fallback: `AUTH answered "${reply.slice(0, 40)}"` };
    }
    socket.write(command('CONFIG', 'GET', 'save'));
    let schedule: string | null;
    try {
      const head = await wire.line();
      if (head.startsWith('-')) throw new ReplyError(head.slice(1));
      if (head !== '*2') return { fallback: `CONFIG GET save answered "${head.slice(0, 40)}"` };
      const name = await wire.bulk();
      if (name !== 'save') return { fallback: `CONFIG GET save answered for "${String(name).slice(0, 40)}"` };
      schedule = await wire.bulk();
    } catch (err) {
      if (err instanceof ReplyError) return { fallback: `CONFIG GET save was refused (${err.message.trim()})` };
      throw err;
    }
    if (!schedule?.trim()) return { fallback: 'Redis saves no RDB files itself (save "")' };

    socket.write(command('SYNC'));
    await wire.skipKeepAlives();
    const head = await wire.line();
    if (head.startsWith('-')) return { fallback: `SYNC was refused (${head.slice(1).trim()})` };
    const m = /^\$(\d{1,15})$/.exec(head);
    if (!m) return { fallback: `SYNC answered "${head.slice(0, 40)}" instead of a bulk length` };
    const length = Number(m[1]);
    if (length < 5) return { fallback: `SYNC announced an RDB of ${length} bytes` };
    if ((await wire.peek(5)).toString('latin1') !== 'REDIS') return { fallback: 'SYNC sent no RDB (no REDIS header)' };
    handedOver = true;
    return { stdout: streamRdb(socket, wire, length, signal, onAbort, onTimeout), schedule: schedule.trim() };
  } catch (err) {
    if (err instanceof RedisAuthError) throw err;
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : err;
    return { fallback: `the SYNC request failed (${err instanceof Error ? err.message : String(err)})` };
  } finally {
    if (!handedOver) {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
    }
  }
}

/** Passes on exactly `length` RDB bytes (with back-pressure), then closes the connection. */
function streamRdb(
  socket: net.Socket,
  wire: Wire,
  length: number,
  signal: AbortSignal,
  onAbort: () => void,
  onTimeout: () => void,
): Readable {
  let sent = 0;
  let done = false;
  // While the reader holds the stream back (the encryption is slower), the quiet is ours, not Redis's.
  const onIdle = (): void => {
    if (!socket.isPaused()) onTimeout();
  };
  socket.off('timeout', onTimeout);
  socket.on('timeout', onIdle);
  const finish = (): void => {
    done = true;
    signal.removeEventListener('abort', onAbort);
    socket.off('timeout', onIdle);
    socket.destroy();
  };
  const out = new Readable({
    read() {
      socket.resume();
    },
    destroy(err, cb) {
      if (!done) finish();
      cb(err);
    },
  });
  const take = (chunk: Buffer): void => {
    if (done) return;
    const part = chunk.subarray(0, length - sent);
    sent += part.length;
    const more = part.length === 0 || out.push(part);
    if (sent === length) {
      finish();
      out.push(null);
    } else if (!more) socket.pause();
  };
  const rest = wire.detach();
  socket.on('data', take);
  socket.on('error', (err) => {
    if (!done) out.destroy(new Error(`the Redis connection failed after ${sent} of ${length} RDB bytes: ${err.message}`));
  });
  socket.on('close', () => {
    if (!done) out.destroy(new Error(`Redis closed the connection after ${sent} of ${length} RDB bytes`));
  });
  take(rest);
  return out;
}
