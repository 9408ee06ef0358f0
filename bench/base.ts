/**
 * `npm run bench:base`: what a delta-mode base costs against a full backup, and a full backup
 * against its floor, `pg_dump -Fc -Z0` to a file (issue 22, items 2 and 3), on a private copy of
 * the cached bench dataset (bench/dataset.ts; the cache itself is never started or modified).
 *
 *   BENCH_SIZE_MB  database size (default 256; the dataset must be cached: `node --import tsx bench/dataset.ts MB`)
 *   BENCH_RUNS     rounds (default 3); every round runs floor, full and base in turn, so noise hits all alike
 *   BENCH_BEFORE   another build's dist/bin/permafrost.js: its full and base run in the same rounds (before → after)
 *   BENCH_ONLY     comma-separated variants to run (floor, full, base, redis, and each but floor with -before)
 *   BENCH_REDIS    1 adds `redis`: a full backup with Redis (16 MiB, Redis's stock repl-diskless-sync-delay 5 and save schedule)
 *                  and a secrets file (issue 22 item 4: ≤ the database part alone + 0.3 s)
 *
 * Per run: wall, CPU of permafrost and its children (user+sys), the server's CPU, node's peak RSS
 * (VmHWM, sampled) and the time of each phase the CLI reports (its plain progress lines).
 * Results: bench/results/base-<MB>mb.{json,md}.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startCluster, type PgCluster } from '../test/harness/postgres.js';
import { destroyRedis, startRedis, type RedisServer } from '../test/harness/redis.js';
import { BENCH_DB, CACHE, REPO, readInfo } from './dataset.js';
import { fmt, machine, median, sampleTree, serverCpuS, timed } from './measure.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 256);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const CLI = path.join(REPO, 'dist/bin/permafrost.js');
const log = (s: string): void => void process.stderr.write(`[bench:base] ${s}\n`);

interface Run {
  wallS: number;
  cpuS: number;
  serverCpuS: number;
  nodePeakRssMiB: number;
  bytes: number;
  load: number;
  /** Seconds from the start to each progress line of the CLI (`backup: database…`). */
  phases: Array<[string, number]>;
  /** CPU seconds per program of permafrost's process tree (sampled). */
  programs: Record<string, number>;
}

const BEFORE = process.env.BENCH_BEFORE;
const REDIS = process.env.BENCH_REDIS === '1';
const OURS = ['full', 'base', ...(REDIS ? ['redis'] : [])];
const VARIANTS = ['floor', ...OURS, ...(BEFORE ? OURS.map((v) => `${v}-before`) : [])].filter(
  (v) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split(',').includes(v),
) as Variant[];
type Variant = 'floor' | 'full' | 'base' | 'redis' | 'full-before' | 'base-before' | 'redis-before';

function privateCopy(work: string): PgCluster {
  const from = path.join(CACHE, `pg-${SIZE}mb`);
  if (!readInfo(from)) throw new Error(`no cached ${SIZE} MB dataset in ${from}: run \`node --import tsx bench/dataset.ts ${SIZE}\``);
  const root = path.join(work, 'pg');
  mkdirSync(root);
  const r = spawnSync('cp', ['-a', path.join(from, 'data'), path.join(root, 'data')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -a failed: ${r.stderr}`);
  rmSync(path.join(root, 'data', 'postmaster.pid'), { force: true });
  return startCluster(40000 + (process.pid % 20000), { root, fsync: true });
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((t, f) => t + statSync(path.join(dir, f)).size, 0);
}

async function backup(
  c: PgCluster,
  work: string,
  pass: string,
  mode: 'full' | 'base' | 'redis',
  cli = CLI,
  redis: RedisServer | null = null,
): Promise<Run> {
  const name = mode;
  const delta = mode === 'base';
  const vault = path.join(work, name);
  // A fresh vault each round: a delta-mode vault then makes a base ("first snapshot in delta mode").
  rmSync(vault, { recursive: true, force: true });
  mkdirSync(vault);
  const config = path.join(work, `${name}.yaml`);
  writeFileSync(
    config,
    stringify({
      database: {
        name: BENCH_DB,
        host: c.socketDir,
        port: c.port,
        user: c.user,
        binDir: c.binDir,
        ...(delta ? { delta: { fullEvery: '24h' } } : {}),
      },
      vault: { dir: vault, passphraseFile: pass, tempDir: work },
      ...(mode === 'redis' && redis ? { redis: { url: redis.url }, secrets: { file: path.join(work, 'env.production') } } : {}),
    }),
  );
  const load = loadavg()[0]!;
  const s0 = serverCpuS(c.dataDir);
  const t0 = performance.now();
  const run = timed([process.execPath, cli, 'backup', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'], name: 'permafrost' });
  const phases: Array<[string, number]> = [];
  let rest = '';
  run.child.stderr!.on('data', (s: string) => {
    const lines = (rest + s).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) if (l.startsWith('backup: ')) phases.push([l.slice(8), (performance.now() - t0) / 1000]);
  });
  const sampler = sampleTree(run.child.pid!);
  const st = await run.done;
  const profile = sampler.stop();
  const id = readdirSync(vault).find((n) => /^\d{4}-/.test(n));
  if (!id) throw new Error(`permafrost backup made no snapshot in ${vault}`);
  return {
    wallS: st.wallS,
    cpuS: st.userS + st.sysS,
    serverCpuS: serverCpuS(c.dataDir) - s0,
    nodePeakRssMiB: profile.node?.peakRssMiB ?? Number.NaN,
    bytes: dirBytes(path.join(vault, id)),
    load,
    phases,
    programs: Object.fromEntries(Object.entries(profile).map(([k, v]) => [k, v.cpuS])),
  };
}

async function floor(c: PgCluster, work: string): Promise<Run> {
  const file = path.join(work, 'floor.pgdump');
  const load = loadavg()[0]!;
  const s0 = serverCpuS(c.dataDir);
  const st = await timed([path.join(c.binDir, 'pg_dump'), '-Fc', '-Z0', '-f', file, BENCH_DB], {
    env: { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user },
  }).done;
  const bytes = statSync(file).size;
  rmSync(file);
  return {
    wallS: st.wallS,
    cpuS: st.userS + st.sysS,
    serverCpuS: serverCpuS(c.dataDir) - s0,
    nodePeakRssMiB: Number.NaN,
    bytes,
    load,
    phases: [],
    programs: {},
  };
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(process.env.BENCH_WORK ?? '/tmp', 'permafrost-bench-base-'));
  chmodSync(work, 0o755); // the server runs as postgres and must reach its folder
  const pass = path.join(work, 'pass');
  writeFileSync(pass, 'bench-passphrase-bench\n', { mode: 0o600 });
  const c = privateCopy(work);
  const runs: Record<Variant, Run[]> = {
    floor: [],
    full: [],
    base: [],
    redis: [],
    'full-before': [],
    'base-before': [],
    'redis-before': [],
  };
  // Stock Redis: the production default delay and RDB save schedule (the harness sets 0 and save "" for tests).
  const redis = REDIS ? startRedis({ args: ['--repl-diskless-sync-delay', '5', '--save', '3600 1 300 100 60 10000'] }) : null;
  if (redis) {
    redis.cli('EVAL', `for i=1,${16 * 1024} do redis.call('SET', 'k'..i, string.rep('x', 1024)) end`, '0');
    writeFileSync(path.join(work, 'env.production'), 'LOCAL_DOMAIN=example.social\nSECRET_KEY_BASE=0123456789abcdef\n', { mode: 0o600 });
  }
  const once = (v: Variant): Promise<Run> =>
    v === 'floor'
      ? floor(c, work)
      : backup(c, work, pass, v.replace('-before', '') as 'full' | 'base' | 'redis', v.endsWith('-before') ? BEFORE : CLI, redis);
  try {
    const bytes = Number(c.psql(BENCH_DB, 'SELECT pg_database_size(current_database())').trim());
    log(`database ${(bytes / 2 ** 20).toFixed(0)} MiB, ${RUNS} rounds`);
    for (let r = 1; r <= RUNS; r++) {
      for (const v of VARIANTS) {
        const x = await once(v);
        runs[v].push(x);
        log(`round ${r} ${v}: ${fmt(x.wallS)} s, node ${fmt(x.nodePeakRssMiB, 0)} MiB, load ${fmt(x.load, 1)}`);
        if (x.phases.length > 0) log(`  phases: ${x.phases.map(([p, s]) => `${fmt(s)} ${p}`).join(' | ')}`);
        log(
          `  CPU s: server ${fmt(x.serverCpuS)}, ${Object.entries(x.programs)
            .map(([p, s]) => `${p} ${fmt(s)}`)
            .join(', ')}`,
        );
      }
    }
  } finally {
    if (redis) destroyRedis(redis);
    c.stop('fast');
    rmSync(work, { recursive: true, force: true });
  }
  const med = (v: Variant, k: 'wallS' | 'cpuS' | 'serverCpuS' | 'nodePeakRssMiB' | 'bytes' | 'load'): number =>
    median(runs[v].map((x) => x[k]));
  const ratio = (a: Variant, b: Variant): number[] => runs[a].map((x, i) => x.wallS / runs[b][i]!.wallS);
  const lines = [
    `# Base vs full vs pg_dump, ${SIZE} MB (${new Date().toISOString()})`,
    '',
    `Medians of ${RUNS} alternated rounds, load average ${fmt(med(VARIANTS[0]!, 'load'), 1)} (rounds ${runs[VARIANTS[0]!].map((x) => fmt(x.load, 1)).join(', ')}).`,
    '',
    '| run | wall s | CPU s (ours) | server CPU s | node peak MiB | MB written |',
    '| --- | -----: | -----------: | -----------: | ------------: | ---------: |',
    ...VARIANTS.map(
      (v) =>
        `| ${v === 'floor' ? '`pg_dump -Fc -Z0 -f`' : v} | ${fmt(med(v, 'wallS'))} | ${fmt(med(v, 'cpuS'))} | ${fmt(med(v, 'serverCpuS'))} | ${fmt(med(v, 'nodePeakRssMiB'), 0)} | ${fmt(med(v, 'bytes') / 1e6, 0)} |`,
    ),
    '',
    ...(
      [
        ['full', 'floor'],
        ['base', 'full'],
        ['full-before', 'floor'],
        ['base-before', 'full-before'],
        // Without full-before (BENCH_ONLY=full,base,base-before): the before build's base against this build's full, same rounds.
        ...(VARIANTS.includes('full-before') ? [] : ([['base-before', 'full']] as const)),
        ['redis', 'full'],
        ['redis-before', 'full-before'],
      ] as const
    )
      .filter(([a, b]) => VARIANTS.includes(a) && VARIANTS.includes(b))
      .map(([a, b]) =>
        a.startsWith('redis')
          ? `- ${a} − ${b}: ${fmt(median(runs[a].map((x, i) => x.wallS - runs[b][i]!.wallS)))} s (rounds ${runs[a].map((x, i) => fmt(x.wallS - runs[b][i]!.wallS)).join(', ')}; bar ≤ +0.3 s)`
          : `- ${a} / ${b}: ${fmt(median(ratio(a, b)))} (rounds ${ratio(a, b)
              .map((x) => fmt(x))
              .join(', ')}; bar ≤ 1.3)`,
      ),
    '',
    `Reproduce: \`BENCH_SIZE_MB=${SIZE} BENCH_RUNS=${RUNS}${REDIS ? ' BENCH_REDIS=1' : ''}${BEFORE ? ' BENCH_BEFORE=<other build>/dist/bin/permafrost.js' : ''}${process.env.BENCH_ONLY ? ` BENCH_ONLY=${process.env.BENCH_ONLY}` : ''} npm run bench:base\``,
  ];
  const out = path.join(REPO, 'bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, `base-${SIZE}mb.md`), `${lines.join('\n')}\n`);
  writeFileSync(path.join(out, `base-${SIZE}mb.json`), `${JSON.stringify({ machine: machine(), size: SIZE, runs }, null, 2)}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
