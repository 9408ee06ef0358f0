/**
 * The Redis part's own duration, from the request to the last RDB byte, old path vs new (issue 22
 * item 4): `redis-cli --rdb -` (waits repl-diskless-sync-delay) against the plain SYNC that
 * permafrost uses when Redis saves RDB files itself. One Redis with the stock settings that matter
 * (the 5 s delay, a save schedule), alternated rounds, the 1-minute load beside each.
 *
 *   BENCH_RDB_MB   Redis data to load (default 16 MiB of values)
 *   BENCH_RUNS     alternated rounds (default 3)
 *
 * Run: node --import tsx bench/redis-part.ts
 */
import { loadavg } from 'node:os';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startRedisCapture } from '../src/capture/redis.js';
import { openRedisSync } from '../src/capture/redis-sync.js';
import type { RedisServer } from '../src/tools/redis-cli.js';
import { destroyRedis, startRedis } from '../test/harness/redis.js';

const RDB_MB = Number(process.env.BENCH_RDB_MB ?? 16);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const redis = startRedis({ args: ['--repl-diskless-sync-delay', '5', '--save', '3600 1 300 100 60 10000', '--rdbcompression', 'no'] });
const keys = RDB_MB * 1024;
redis.cli('EVAL', `for i=1,${keys} do redis.call('SET', 'k'..i, string.rep('x', 1024)) end`, '0');
const target = { url: redis.url, password: undefined, optional: false } as unknown as RedisServer;
const signal = new AbortController().signal;

function sink(): { stream: Writable; bytes: () => number } {
  let n = 0;
  return {
    stream: new Writable({
      write(chunk: Buffer, _e, cb) {
        n += chunk.length;
        cb();
      },
    }),
    bytes: () => n,
  };
}

async function viaCli(): Promise<number> {
  const out = sink();
  const capture = startRedisCapture(target, { signal });
  await pipeline(capture.stdout, out.stream);
  await capture.tool.done;
  return out.bytes();
}

async function viaSync(): Promise<number> {
  const out = sink();
  const got = await openRedisSync(target, signal);
  if (!('stdout' in got)) throw new Error(`SYNC path not taken: ${got.fallback}`);
  await pipeline(got.stdout, out.stream);
  return out.bytes();
}

async function settle(): Promise<void> {
  for (;;) {
    await new Promise((r) => setTimeout(r, 1000));
    const info = redis.cli('INFO', 'persistence');
    if (/^rdb_bgsave_in_progress:0/m.test(info) && /^aof_rewrite_in_progress:0/m.test(info)) return;
  }
}

const rows: Array<{ round: number; path: string; seconds: number; bytes: number; load: number }> = [];
for (let round = 1; round <= RUNS; round++) {
  for (const [name, fn] of [
    ['redis-cli --rdb -', viaCli],
    ['SYNC', viaSync],
  ] as const) {
    // A SYNC that arrives while a fork child lives (the last round's save) waits for Redis's cron,
    // which applies the delay too: start each measurement with no child.
    await settle();
    const t0 = performance.now();
    const bytes = await fn();
    const seconds = (performance.now() - t0) / 1000;
    rows.push({ round, path: name, seconds, bytes, load: loadavg()[0]! });
    console.log(
      `round ${round}  ${name.padEnd(18)} ${seconds.toFixed(2)} s  ${(bytes / 2 ** 20).toFixed(1)} MiB  load ${loadavg()[0]!.toFixed(2)}`,
    );
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const name of ['redis-cli --rdb -', 'SYNC']) {
  const mine = rows.filter((r) => r.path === name);
  console.log(
    `median ${name.padEnd(18)} ${median(mine.map((r) => r.seconds)).toFixed(2)} s  load ${median(mine.map((r) => r.load)).toFixed(2)}`,
  );
}
destroyRedis(redis);
