/**
 * `npm run bench:parts`: does a backup with Redis and the secrets file take longer than the
 * database part alone? (Issue 22 item 4: the bar is the database part + 0.3 s.)
 *
 *   BENCH_SIZE_MB  database size on disk (default 256); generated once into .bench-cache/
 *   BENCH_RUNS     rounds (default 3); every round runs (a) then (b), so noise hits both alike
 *   BENCH_RDB_MB   Redis data to load (default 16 MiB of values)
 *
 * (a) permafrost backup with only the database configured
 * (b) permafrost backup with the database, Redis (its default repl-diskless-sync-delay of 5 s,
 *     as every stock Redis has) and an .env.production
 *
 * Results: a table on stdout and bench/results/parts.{json,md}. Medians of the rounds.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { destroyRedis, startRedis } from '../test/harness/redis.js';
import { CACHE, openDataset, REPO } from './dataset.js';
import { fmt, machine, median, timed, type ProcStat } from './measure.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 256);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const RDB_MB = Number(process.env.BENCH_RDB_MB ?? 16);
const CLI = path.join(REPO, 'dist/bin/permafrost.js');
const log = (s: string): void => void process.stderr.write(`[bench:parts] ${s}\n`);

const b = openDataset(SIZE, { log });
const work = mkdtempSync(path.join(CACHE, 'parts-'));
// Stock Redis: the production default delay (the harness sets 0 for tests; this puts 5 back).
const redis = startRedis({ args: ['--repl-diskless-sync-delay', '5'] });
try {
  // A Redis with some data: 1 KiB values, RDB_MB of them.
  const keys = Math.round(RDB_MB * 1024);
  redis.cli('EVAL', `for i=1,${keys} do redis.call('SET', 'k'..i, string.rep('x', 1024)) end`, '0');
  const pass = path.join(work, 'passphrase');
  writeFileSync(pass, 'bench passphrase: correct horse battery staple\n', { mode: 0o600 });
  const envFile = path.join(work, 'env.production');
  writeFileSync(envFile, 'LOCAL_DOMAIN=example.social\nSECRET_KEY_BASE=0123456789abcdef\n', { mode: 0o600 });
  const c = b.cluster;
  const database = { name: b.db, host: c.socketDir, port: c.port, user: c.user, binDir: c.binDir };
  const configs = {
    database: { database, vault: { dir: path.join(work, 'vault-db'), passphraseFile: pass, tempDir: work } },
    all: {
      database,
      redis: { url: redis.url },
      secrets: { file: envFile },
      vault: { dir: path.join(work, 'vault-all'), passphraseFile: pass, tempDir: work },
    },
  };
  const files: Record<string, string> = {};
  for (const [name, cfg] of Object.entries(configs)) {
    mkdirSync(cfg.vault.dir);
    files[name] = path.join(work, `${name}.yaml`);
    writeFileSync(files[name], stringify(cfg));
  }
  const samples: Record<string, ProcStat[]> = { database: [], all: [] };
  const loads: number[] = [];
  for (let round = 1; round <= RUNS; round++) {
    for (const name of ['database', 'all'] as const) {
      const vault = configs[name].vault.dir;
      rmSync(vault, { recursive: true, force: true });
      mkdirSync(vault);
      loads.push(loadavg()[0]!);
      const st = await timed(['node', CLI, '--config', files[name]!, 'backup', '--json'], { name }).done;
      samples[name]!.push(st);
      log(`round ${round} ${name}: ${fmt(st.wallS)} s, cpu ${fmt(st.userS + st.sysS)} s, ${fmt(st.peakRssMiB, 0)} MiB`);
    }
  }
  const row = (name: string) => {
    const s = samples[name]!;
    return {
      wallS: median(s.map((x) => x.wallS)),
      cpuS: median(s.map((x) => x.userS + x.sysS)),
      peakRssMiB: median(s.map((x) => x.peakRssMiB)),
    };
  };
  const db = row('database');
  const all = row('all');
  const result = {
    machine: machine(),
    sizeMb: SIZE,
    datasetBytes: b.info.bytes,
    redisMb: RDB_MB,
    runs: RUNS,
    loadAvgMedian: median(loads),
    database: db,
    all,
    extraWallS: all.wallS - db.wallS,
    bar: 'backup with Redis + secrets ≤ database part + 0.3 s',
    met: all.wallS - db.wallS <= 0.3,
  };
  const md = [
    `# Backup parts: database alone vs database + Redis + secrets (${SIZE} MB database, ${RDB_MB} MiB Redis, default repl-diskless-sync-delay 5)`,
    '',
    `Medians of ${RUNS} alternated rounds, load average ~${fmt(result.loadAvgMedian, 1)} (${result.machine.cpus} cores). Reproduce: \`BENCH_SIZE_MB=${SIZE} BENCH_RUNS=${RUNS} npm run bench:parts\``,
    '',
    '| backup | wall s | CPU s | peak RSS MiB |',
    '| --- | --- | --- | --- |',
    `| database only | ${fmt(db.wallS)} | ${fmt(db.cpuS)} | ${fmt(db.peakRssMiB, 0)} |`,
    `| database + Redis + secrets | ${fmt(all.wallS)} | ${fmt(all.cpuS)} | ${fmt(all.peakRssMiB, 0)} |`,
    '',
    `Difference: ${fmt(result.extraWallS)} s (bar ≤ 0.30 s: ${result.met ? 'met' : 'not met'}).`,
    '',
  ].join('\n');
  mkdirSync(path.join(REPO, 'bench/results'), { recursive: true });
  writeFileSync(path.join(REPO, 'bench/results/parts.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(path.join(REPO, 'bench/results/parts.md'), md);
  process.stdout.write(md);
} finally {
  destroyRedis(redis);
  b.stop();
  rmSync(work, { recursive: true, force: true });
}
