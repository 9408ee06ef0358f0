import { Transform, type TransformCallback } from 'node:stream';
import type { RedisConfig } from '../config/schema-parts.js';
import { PermafrostError, ToolError } from '../errors.js';
import type { RunContext } from '../run-context.js';
import { startRdbStream, type RedisServer } from '../tools/redis-cli.js';
import type { RunningTool } from '../tools/run.js';

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
  tool: RunningTool;
  /** The RDB bytes, nothing more. */
  stdout: Transform;
}

/** Captures a fresh RDB with `redis-cli --rdb -`: `stdout` yields exactly the RDB, nothing is written to disk. */
export function startRedisCapture(redis: RedisServer, ctx: Pick<RunContext, 'signal'>): RedisCapture {
  const tool = startRdbStream(redis, ctx.signal);
  const trimmer = new RdbTrimmer(async () => {
    await tool.done;
    const length = rdbLengthFromStderr(tool.stderr());
    if (length === null) {
      throw new ToolError('redis-cli finished without reporting the RDB length; use redis-cli 6 or newer.', {
        argv: tool.argv,
        exitStatus: 0,
        stderr: tool.stderr(),
      });
    }
    return length;
  });
  tool.stdout.once('error', (err) => trimmer.destroy(err));
  tool.stdout.pipe(trimmer);
  return { tool, stdout: trimmer };
}

/** Wraps a failure of the Redis part so that the message names the part and what to check. */
export function redisPartError(redis: RedisConfig, err: unknown): PermafrostError {
  const why = err instanceof Error ? err.message : String(err);
  return new PermafrostError(
    'tool',
    `Redis part failed: ${why.includes(redis.url) ? '' : `${redis.url}: `}${why.replace(/\.$/, '')}; check redis.url, redis.passwordFile and that Redis is running, or set redis.optional: true.`,
    {
      cause: err,
      details: err instanceof PermafrostError ? err.details : [],
    },
  );
}
