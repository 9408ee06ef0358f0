/**
 * `npm run bench:curve` (part of `npm run bench`): the scaling curve of issue 22 — how backup,
 * restore and verify grow with the database, beside the stock tools at every size.
 *
 *   BENCH_SIZES  database sizes in MB (default 256,512,1024,2048; each a cached bench dataset)
 *   BENCH_CHAIN  deltas in the restored chain (default 24: a day of hourly snapshots)
 *   BENCH_RUNS   alternated rounds (default 3); medians of them
 *   BENCH_KEEP   1 keeps the sizes of an earlier bench/results/curve.json that this run does not
 *                measure (each size records its own date, rounds, chain and load)
 *
 * Per size, on a private copy of the dataset with the churn tables (bench/churn.ts), driving only
 * the built CLI (dist/bin/permafrost.js):
 *
 * - backup rounds, each: `pg_dump -Fc -Z0 -f FILE` (the reference), `permafrost backup` (full),
 *   `permafrost backup` with database.delta in a fresh vault (a base);
 * - the chain: BENCH_CHAIN hours of churn, each followed by `permafrost backup` (a delta), then a
 *   stock dump and a full backup of that same moment;
 * - restore rounds, each: `pg_restore -j2` of the stock dump into a new database (the
 *   reference), `permafrost restore --jobs 2` of the full snapshot and of the chain's last delta
 *   (base + BENCH_CHAIN deltas), `permafrost verify` of the full snapshot; every restored
 *   database of the first round is compared with the source (row counts of every table and
 *   matview, index count).
 *
 * Results: bench/results/curve.{json,md} and docs/curve.svg (bench/curve-report.ts).
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { churnHour, openChurnCopy, type ChurnCopy } from './churn.js';
import { BenchVault, measured, sameAs, type Backup, type Cost } from './cli-vault.js';
import { curveSvg, markdown, type CurveResults, type OpKey, type SizeResult } from './curve-report.js';
import { CACHE, REPO } from './dataset.js';
import { fmt, machine, median, timed } from './measure.js';

const SIZES = (process.env.BENCH_SIZES ?? '256,512,1024,2048')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isFinite(n) && n > 0);
const CHAIN = Math.max(1, Number(process.env.BENCH_CHAIN ?? 24));
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const KEEP = process.env.BENCH_KEEP === '1';
const SEED = 1;
const RESULTS = path.join(REPO, 'bench/results');
const SVG = path.join(REPO, 'docs/curve.svg');
const log = (s: string): void => void process.stderr.write(`[bench:curve] ${s}\n`);

/** The stock references at one moment of the database. */
class Stock {
  constructor(
    readonly copy: ChurnCopy,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  private bin(tool: string): string {
    return path.join(this.copy.cluster.binDir, tool);
  }

  /** `pg_dump -Fc -Z0 -f FILE` (the floor of a backup). */
  dump(file: string): Promise<Cost> {
    rmSync(file, { force: true });
    return measured([this.bin('pg_dump'), '-Fc', '-Z0', '-f', file, this.copy.db], { env: this.env, server: this.copy.cluster });
  }

  /** `pg_restore -j2` of a plaintext dump into a new database (created before, not timed). */
  restore(file: string, target: string): Promise<Cost> {
    this.copy.cluster.psql('postgres', `SET client_min_messages = warning; DROP DATABASE IF EXISTS ${target}; CREATE DATABASE ${target};`);
    return measured([this.bin('pg_restore'), '-j', '2', '--dbname', target, file], { env: this.env, server: this.copy.cluster });
  }
}

/** A measured operation of one round, with the reference measured in the same round (ratio = ours / reference). */
function point(cost: Cost, ref: Cost | null): SizeResult['rounds'][number][OpKey] {
  return { ...cost, ratio: ref ? cost.wallS / ref.wallS : Number.NaN };
}

/** Everything measured at one size; `work` is removed by the caller. */
async function measureSize(sizeMb: number, work: string, pass: string): Promise<SizeResult> {
  const loadStart = loadavg();
  const date = new Date().toISOString();
  const copy = openChurnCopy(sizeMb, { port: 5439, workDir: work, log });
  const notes: string[] = [];
  const rounds: SizeResult['rounds'] = [];
  const equal: Partial<Record<OpKey, boolean>> = {};
  const chainDeltas: Backup[] = [];
  try {
    const fullVault = new BenchVault(work, 'vault-full', copy, pass, false);
    const stock = new Stock(copy, fullVault.env);
    const dumpFile = path.join(work, 'stock.pgdump');
    // Warm the page cache as on a running server: one untimed dump.
    const devnull = openSync('/dev/null', 'w');
    await timed([path.join(copy.cluster.binDir, 'pg_dump'), '-Fc', '-Z0', copy.db], { stdio: ['ignore', devnull, 'pipe'], env: stock.env })
      .done;
    closeSync(devnull);

    let deltaVault: BenchVault | null = null;
    let lastFull: Backup | null = null;
    for (let r = 1; r <= RUNS; r++) {
      const dump = await stock.dump(dumpFile);
      const full = await fullVault.backup();
      if (lastFull) rmSync(lastFull.dir, { recursive: true, force: true });
      lastFull = full;
      if (deltaVault) rmSync(deltaVault.dir, { recursive: true, force: true });
      deltaVault = new BenchVault(work, `vault-delta-${r}`, copy, pass, true);
      const base = await deltaVault.backup();
      if (base.kind !== 'base') throw new Error(`the first delta-mode backup is a ${base.kind}, not a base`);
      rounds.push({ stockDump: point(dump, null), full: point(full, dump), base: point(base, full) });
      log(`${sizeMb} MB round ${r}/${RUNS}: pg_dump ${fmt(dump.wallS)} s, full ${fmt(full.wallS)} s, base ${fmt(base.wallS)} s`);
    }
    const deltas = deltaVault!;
    for (let hour = 1; hour <= CHAIN; hour++) {
      churnHour(copy.cluster, copy.db, hour, SEED);
      const d = await deltas.backup();
      if (d.kind !== 'delta' || d.depth !== hour)
        notes.push(`hour ${hour}: a ${d.kind} of depth ${d.depth}, expected a delta of depth ${hour}`);
      chainDeltas.push(d);
      log(`${sizeMb} MB hour ${hour}/${CHAIN}: delta ${(d.bytes / 1e3).toFixed(0)} kB, ${fmt(d.wallS)} s`);
    }
    const head = chainDeltas.at(-1)!;
    // The references of the chain's moment: a stock dump and a full snapshot of the same database.
    await stock.dump(dumpFile);
    rmSync(lastFull!.dir, { recursive: true, force: true });
    const full = await fullVault.backup();
    // The hourly delta of round i is the chain's hour i (taken after that round's full backup, one hour of churn later).
    for (const [i, round] of rounds.entries()) {
      const d = chainDeltas[i];
      if (d) round.delta = point(d, round.full ?? null);
    }
    for (let r = 1; r <= RUNS; r++) {
      const round = rounds[r - 1]!;
      const ref = await stock.restore(dumpFile, 'curve_stock');
      const restoreFull = await fullVault.restore(full.id, 'curve_full');
      const restoreChain = await deltas.restore(head.id, 'curve_chain');
      const verify = await fullVault.verify(full.id);
      round.stockRestore = point(ref, null);
      round.restoreFull = point(restoreFull, ref);
      round.restoreChain = point(restoreChain, restoreFull);
      round.verify = point(verify, ref);
      if (r === 1) {
        equal.stockRestore = sameAs(copy, 'curve_stock');
        equal.restoreFull = sameAs(copy, 'curve_full');
        equal.restoreChain = sameAs(copy, 'curve_chain');
        for (const [k, ok] of Object.entries(equal)) if (!ok) notes.push(`${k}: the restored database differs from the source`);
      }
      for (const t of ['curve_stock', 'curve_full', 'curve_chain'])
        copy.cluster.psql('postgres', `SET client_min_messages = warning; DROP DATABASE IF EXISTS ${t}`);
      log(
        `${sizeMb} MB restore round ${r}/${RUNS}: pg_restore -j2 ${fmt(ref.wallS)} s, full ${fmt(restoreFull.wallS)} s, chain ${fmt(restoreChain.wallS)} s, verify ${fmt(verify.wallS)} s`,
      );
    }
    return {
      sizeMb,
      bytes: copy.bytes,
      dumpBytes: statSync(dumpFile).size,
      snapshotBytes: full.bytes,
      rows: copy.dataset.rows,
      date,
      runs: RUNS,
      chain: CHAIN,
      loadStart,
      loadEnd: loadavg(),
      rounds,
      deltaBytes: median(chainDeltas.map((d) => d.bytes)),
      deltaWallAllS: median(chainDeltas.map((d) => d.wallS)),
      equal,
      notes,
    };
  } finally {
    copy.destroy();
  }
}

async function main(): Promise<void> {
  const env = machine();
  const previous: SizeResult[] =
    KEEP && existsSync(path.join(RESULTS, 'curve.json'))
      ? (JSON.parse(readFileSync(path.join(RESULTS, 'curve.json'), 'utf8')) as CurveResults).sizes
      : [];
  const sizes = previous.filter((s) => !SIZES.includes(s.sizeMb));
  log(`sizes ${SIZES.join(', ')} MB, chain ${CHAIN}, ${RUNS} rounds; load average ${env.loadAvgStart.map((x) => x.toFixed(1)).join(' ')}`);
  mkdirSync(CACHE, { recursive: true });
  for (const sizeMb of SIZES) {
    const work = mkdtempSync(path.join(CACHE, 'curve-'));
    const pass = path.join(work, 'passphrase');
    writeFileSync(pass, 'bench passphrase: correct horse battery staple\n', { mode: 0o600 });
    try {
      sizes.push(await measureSize(sizeMb, work, pass));
    } catch (err) {
      log(`${sizeMb} MB not measured: ${(err as Error).message.split('\n')[0]}`);
      throw err;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    sizes.sort((a, b) => a.sizeMb - b.sizeMb);
    // Written after every size, so what was measured survives a later failure.
    // The sizes measured so far (a size that failed or was not reached is not in the command).
    const command = `BENCH_SIZES=${sizes.map((s) => s.sizeMb).join(',')} BENCH_CHAIN=${CHAIN} BENCH_RUNS=${RUNS} npm run bench:curve`;
    const res: CurveResults = { env, command, sizes };
    const md = markdown(res);
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(path.join(RESULTS, 'curve.json'), `${JSON.stringify(res, null, 2)}\n`);
    writeFileSync(path.join(RESULTS, 'curve.md'), `${md}\n`);
    writeFileSync(SVG, curveSvg(res));
    if (sizeMb === SIZES.at(-1)) process.stdout.write(`${md}\n`);
  }
}

await main();
