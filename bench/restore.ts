/**
 * `npm run bench:restore`: how long a restore takes against the stock floor (issue 22, item 1).
 *
 *   BENCH_SIZE_MB   database size (default 1024; the cached dataset plus the churn tables of bench/churn.ts)
 *   BENCH_RUNS      alternated rounds (default 3)
 *   BENCH_HOURS     depth of the delta chain (default 24; 0 measures full snapshots only)
 *   BENCH_BEFORE    another build's dist/bin/permafrost.js (e.g. of the commit before a change): its full and chain
 *                   restores join every round as (full-before) and (chain-before), for before → after under the same load
 *   BENCH_VARIANTS  a comma list of the variants to run (default all: ref,full,chain; the bars need all)
 *   BENCH_RESTORE_WORK  a folder kept between runs: the prepared copy, vaults and plaintext dump are
 *                   made once there and reused (for iterating; removed only by hand)
 *
 * On a private copy of the dataset: a delta-mode base, then per simulated hour the churn of
 * bench/churn.ts and a delta (depth 1…BENCH_HOURS); then, of that same moment, a full snapshot and a
 * plaintext `pg_dump -Fc -Z0` file. Each round then runs, in an order rotated per round, into a new
 * database of the same server (dropped afterwards):
 *
 * (ref)   the stock floor: createdb -T template0; pg_restore -j2 of the plaintext file (no decryption)
 * (full)  permafrost restore FULL --jobs 2: decrypt + MDC/SHA-256 + manifest checks + `_incoming` + swap
 * (chain) permafrost restore DELTA --jobs 2: the base and every delta, every table's count and hash checked
 *
 * Per sample: wall, CPU (user+sys, ours and children), the server's CPU, peak RSS, the 1-minute load
 * average when it started, and permafrost's phases (the start of each progress line it prints on a
 * pipe, timestamped here). The first round checks each restored database equal to the source (row
 * counts of every table and matview, index count). Results: bench/results/restore.{json,md}.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { MANIFEST_NAME, manifestSchema } from '../src/vault/manifest.js';
import { startCluster, type PgCluster } from '../test/harness/postgres.js';
import { BENCH_DB, CACHE, REPO } from './dataset.js';
import { churnHour, openChurnCopy } from './churn.js';
import { fmt, machine, median, serverCpuS, timed, type ProcStat } from './measure.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 1024);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const HOURS = Math.min(24, Math.max(0, Number(process.env.BENCH_HOURS ?? 24)));
const KEEP = process.env.BENCH_RESTORE_WORK;
const PORT = 5438;
const CLI = path.join(REPO, 'dist/bin/permafrost.js');
const BEFORE = process.env.BENCH_BEFORE;
const log = (s: string): void => void process.stderr.write(`[bench:restore] ${s}\n`);

type Variant = 'ref' | 'full' | 'chain' | 'full-before' | 'chain-before';
const LABELS: Record<Variant, string> = {
  'full-before': '(full-before) the same with BENCH_BEFORE',
  'chain-before': '(chain-before) the same with BENCH_BEFORE',
  ref: '(ref) stock: createdb; `pg_restore -j2` of a plaintext `pg_dump -Fc -Z0` file',
  full: '(full) `permafrost restore FULL --jobs 2`',
  chain: '(chain) `permafrost restore DELTA --jobs 2` (base + deltas)',
};

interface Sample {
  wallS: number;
  cpuS: number;
  serverCpuS: number;
  peakRssMiB: number;
  load1: number;
  /** permafrost's phases: seconds from the start of the process to the start of each, in order. */
  phases: Array<{ name: string; atS: number }>;
}

/** What a run of the benchmark restores, made once per work folder. */
interface Prepared {
  sizeMb: number;
  hours: number;
  fullId: string;
  deltaId: string | null;
  fullBytes: number;
  chainBytes: number;
  plainBytes: number;
  databaseBytes: number;
}

/** A vault and its config on the copy's server; `delta` switches on database.delta. */
function vaultConfig(work: string, name: string, c: PgCluster, pass: string, delta: boolean): { dir: string; config: string } {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
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
      vault: { dir, passphraseFile: pass, tempDir: work },
    }),
  );
  return { dir, config };
}

async function backup(v: { dir: string; config: string }, env: NodeJS.ProcessEnv): Promise<string> {
  const before = new Set(readdirSync(v.dir));
  await timed([process.execPath, CLI, 'backup', '--config', v.config], { env, name: 'permafrost' }).done;
  const id = readdirSync(v.dir).find((n) => !before.has(n) && /^\d{4}-/.test(n));
  if (!id) throw new Error(`permafrost backup made no snapshot in ${v.dir}`);
  return id;
}

const folderBytes = (dir: string): number => readdirSync(dir).reduce((t, f) => t + statSync(path.join(dir, f)).size, 0);

/** The copy with its chain, full snapshot and plaintext dump of the same moment (made now, or found in `work`). */
async function prepare(work: string, pass: string): Promise<{ cluster: PgCluster; prepared: Prepared; stop(): void }> {
  const readyFile = path.join(work, 'ready.json');
  const root = path.join(work, `pg-${SIZE}mb`);
  if (existsSync(readyFile)) {
    const prepared = JSON.parse(readFileSync(readyFile, 'utf8')) as Prepared;
    if (prepared.sizeMb === SIZE && prepared.hours === HOURS) {
      log(`reusing ${work}`);
      const cluster = startCluster(PORT, { root, fsync: true });
      prepared.databaseBytes = Number(cluster.psql(BENCH_DB, 'SELECT pg_database_size(current_database())').trim());
      return { cluster, prepared, stop: () => cluster.stop('fast') };
    }
    throw new Error(`${work} holds a ${prepared.sizeMb} MB / ${prepared.hours} h preparation; remove it or use another BENCH_RESTORE_WORK`);
  }
  const copy = openChurnCopy(SIZE, { port: PORT, workDir: work, log });
  const c = copy.cluster;
  const env = { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user };
  const full = vaultConfig(work, 'vault-full', c, pass, false);
  let deltaId: string | null = null;
  let chainBytes = 0;
  if (HOURS > 0) {
    const delta = vaultConfig(work, 'vault-delta', c, pass, true);
    const t0 = performance.now();
    deltaId = await backup(delta, env);
    chainBytes += folderBytes(path.join(delta.dir, deltaId));
    for (let h = 1; h <= HOURS; h++) {
      churnHour(c, BENCH_DB, h);
      deltaId = await backup(delta, env);
      chainBytes += folderBytes(path.join(delta.dir, deltaId));
    }
    const m = manifestSchema.parse(JSON.parse(readFileSync(path.join(delta.dir, deltaId, MANIFEST_NAME), 'utf8')));
    if (m.chain?.depth !== HOURS) throw new Error(`the last delta-mode snapshot has depth ${m.chain?.depth ?? 'none'}, not ${HOURS}`);
    log(`chain of ${HOURS} made in ${fmt((performance.now() - t0) / 1000, 0)} s`);
  }
  const fullId = await backup(full, env);
  const plain = path.join(work, 'plain.pgdump');
  const out = openSync(plain, 'w', 0o600);
  await timed([path.join(c.binDir, 'pg_dump'), '-Fc', '-Z0', BENCH_DB], { stdio: ['ignore', out, 'pipe'], env }).done;
  closeSync(out);
  const prepared: Prepared = {
    sizeMb: SIZE,
    hours: HOURS,
    fullId,
    deltaId,
    fullBytes: folderBytes(path.join(full.dir, fullId)),
    chainBytes,
    plainBytes: statSync(plain).size,
    databaseBytes: Number(c.psql(BENCH_DB, 'SELECT pg_database_size(current_database())').trim()),
  };
  writeFileSync(readyFile, JSON.stringify(prepared, null, 2));
  return { cluster: c, prepared, stop: () => (KEEP ? c.stop('fast') : copy.destroy()) };
}

/** Row counts of every table and matview plus the index count: the restored database equal to the source? */
function fingerprint(c: PgCluster, db: string): string {
  return c.psql(
    db,
    `SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM public.' || quote_ident(c.relname), false, true, '')))[1]::text, ',' ORDER BY c.relname)
      || ';indexes=' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')
      FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'm')`,
  );
}

/** One timed run; for permafrost the start of every phase line it prints (not a TTY: one line per phase start). */
async function run(argv: string[], env: NodeJS.ProcessEnv, phases: Sample['phases']): Promise<ProcStat> {
  const t0 = performance.now();
  const t = timed(argv, { env, name: path.basename(argv[1] ?? argv[0]!), stdio: ['ignore', 'ignore', 'pipe'] });
  let rest = '';
  t.child.stderr!.on('data', (s: string) => {
    const lines = (rest + s).split('\n');
    rest = lines.pop()!;
    for (const l of lines) {
      const m = /^restore: (.+)…$/.exec(l);
      if (m) phases.push({ name: m[1]!, atS: (performance.now() - t0) / 1000 });
    }
  });
  return t.done;
}

/** Phases by kind: each delta's application summed as "deltas", everything else as printed. */
function phaseDurations(s: Sample): Record<string, number> {
  const out: Record<string, number> = {};
  s.phases.forEach((p, i) => {
    const end = s.phases[i + 1]?.atS ?? s.wallS;
    const name = p.name.startsWith('apply delta') ? 'deltas' : p.name.startsWith('apply rows') ? 'base rows' : p.name;
    out[name] = (out[name] ?? 0) + end - p.atS;
  });
  out.start = s.phases[0]?.atS ?? 0;
  return out;
}

async function main(): Promise<void> {
  const env0 = machine();
  mkdirSync(CACHE, { recursive: true });
  const work = KEEP ?? mkdtempSync(path.join(CACHE, 'restore-'));
  mkdirSync(work, { recursive: true });
  log(`size ${SIZE} MB, chain depth ${HOURS}, ${RUNS} rounds; load average ${env0.loadAvgStart.map((x) => x.toFixed(1)).join(' ')}`);
  const pass = path.join(work, 'passphrase');
  writeFileSync(pass, 'bench passphrase: correct horse battery staple\n', { mode: 0o600 });
  const gnupg = path.join(work, 'gnupg');
  mkdirSync(gnupg, { recursive: true, mode: 0o700 });
  const prep = await prepare(work, pass);
  const { cluster: c, prepared } = prep;
  const only = process.env.BENCH_VARIANTS?.split(',');
  const all: Variant[] = ['ref', 'full', 'chain', ...(BEFORE ? (['full-before', 'chain-before'] as const) : [])];
  const variants = all.filter((v) => (!v.startsWith('chain') || prepared.deltaId) && (!only || only.includes(v)));
  const rounds: Array<Partial<Record<Variant, Sample>>> = [];
  const equal: Partial<Record<Variant, boolean>> = {};
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user, GNUPGHOME: gnupg };
    delete env.PERMAFROST_CONFIG;
    const source = fingerprint(c, BENCH_DB);
    const plain = path.join(work, 'plain.pgdump');
    // Every input read once before the first round, so no variant pays for a cold page cache alone.
    for (const f of [plain, path.join(work, 'vault-full'), path.join(work, 'vault-delta')])
      if (existsSync(f))
        await timed(['cat', ...(statSync(f).isDirectory() ? listFiles(f) : [f])], { stdio: ['ignore', 'ignore', 'pipe'] }).done;
    for (let r = 0; r < RUNS; r++) {
      const round: Partial<Record<Variant, Sample>> = {};
      const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
      for (const v of order) {
        const target = `bench_restore_${v.replace('-', '_')}`;
        c.psql('postgres', `DROP DATABASE IF EXISTS ${target}`);
        c.psql('postgres', 'CHECKPOINT');
        const phases: Sample['phases'] = [];
        const load1 = loadavg()[0]!;
        const s0 = serverCpuS(c.dataDir);
        const t0 = performance.now();
        const stats: ProcStat[] = [];
        if (v === 'ref') {
          stats.push(await timed([path.join(c.binDir, 'createdb'), '-T', 'template0', target], { env }).done);
          stats.push(await timed([path.join(c.binDir, 'pg_restore'), '-j2', '--dbname', target, plain], { env }).done);
        } else {
          const [vault, id] = v.startsWith('full') ? ['vault-full', prepared.fullId] : ['vault-delta', prepared.deltaId!];
          const argv = [
            process.execPath,
            v.endsWith('-before') ? BEFORE! : CLI,
            'restore',
            id,
            '--database',
            target,
            '--jobs',
            '2',
            '--config',
            path.join(work, `${vault}.yaml`),
          ];
          stats.push(await run(argv, env, phases));
        }
        const wallS = (performance.now() - t0) / 1000;
        round[v] = {
          wallS,
          cpuS: stats.reduce((t, s) => t + s.userS + s.sysS, 0),
          serverCpuS: serverCpuS(c.dataDir) - s0,
          peakRssMiB: Math.max(...stats.map((s) => s.peakRssMiB)),
          load1,
          phases,
        };
        if (r === 0) {
          equal[v] = fingerprint(c, target) === source;
          if (!equal[v]) log(`  ${v}: NOT equal to the source`);
        }
        const ph = phaseDurations(round[v]);
        log(
          `round ${r + 1}/${RUNS} ${v}: ${fmt(wallS)} s (load ${fmt(load1, 1)})${
            phases.length
              ? ` — ${Object.entries(ph)
                  .map(([k, x]) => `${k} ${fmt(x)}`)
                  .join(', ')}`
              : ''
          }`,
        );
        c.psql('postgres', `DROP DATABASE IF EXISTS ${target}`);
      }
      rounds.push(round);
    }
  } finally {
    prep.stop();
    if (!KEEP) rmSync(work, { recursive: true, force: true });
  }
  report(env0, prepared, variants, rounds, equal);
}

function listFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.join(d.parentPath, d.name));
}

function report(
  env: ReturnType<typeof machine>,
  p: Prepared,
  variants: Variant[],
  rounds: Array<Partial<Record<Variant, Sample>>>,
  equal: Partial<Record<Variant, boolean>>,
): void {
  const med = (v: Variant, f: (s: Sample) => number): number => median(rounds.map((r) => f(r[v]!)));
  const ratio = (a: Variant, b: Variant): number[] => rounds.map((r) => (r[a] && r[b] ? r[a].wallS / r[b].wallS : Number.NaN));
  const rng = (xs: number[]): string => `rounds ${xs.map((x) => fmt(x)).join(', ')}`;
  const loads = rounds.flatMap((r) => variants.map((v) => r[v]!.load1));
  const lines = [
    `# permafrost restore benchmark — ${env.date}`,
    '',
    `Database ${(p.databaseBytes / 2 ** 20).toFixed(0)} MiB on disk (the ${p.sizeMb} MB dataset with the churn tables); plaintext \`pg_dump -Fc -Z0\` ${(p.plainBytes / 1e6).toFixed(1)} MB, full snapshot ${(p.fullBytes / 1e6).toFixed(1)} MB${p.deltaId ? `, chain (base + ${p.hours} deltas) ${(p.chainBytes / 1e6).toFixed(1)} MB` : ''}, all of the same moment. ` +
      `${env.cpus} × ${env.cpuModel}, shared with other jobs; node ${env.node}. ${rounds.length} alternated rounds (order rotated each round); ` +
      `1-minute load average at the start of the samples ${fmt(Math.min(...loads), 1)}–${fmt(Math.max(...loads), 1)} (median ${fmt(median(loads), 1)}).`,
    '',
    '| variant | wall s (median) | CPU s (ours) | server CPU s | peak RSS MiB | load at start | equal to source |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...variants.map(
      (v) =>
        `| ${LABELS[v]} | ${fmt(med(v, (s) => s.wallS))} | ${fmt(med(v, (s) => s.cpuS))} | ${fmt(med(v, (s) => s.serverCpuS))} | ${fmt(
          med(v, (s) => s.peakRssMiB),
          0,
        )} | ${fmt(
          med(v, (s) => s.load1),
          1,
        )} | ${equal[v] ? 'yes' : 'NO'} |`,
    ),
    '',
    '| bar (median of the per-round ratios) | measured | met |',
    '| --- | --- | --- |',
    `| full ≤ 1.0 × ref (goal 0.8) | ${fmt(median(ratio('full', 'ref')))} (${rng(ratio('full', 'ref'))}) | ${median(ratio('full', 'ref')) <= 1 ? 'yes' : '**no**'} |`,
    ...(p.deltaId && variants.includes('chain')
      ? [
          `| chain of ${p.hours} ≤ 1.2 × full | ${fmt(median(ratio('chain', 'full')))} (${rng(ratio('chain', 'full'))}) | ${median(ratio('chain', 'full')) <= 1.2 ? 'yes' : '**no**'} |`,
        ]
      : []),
    ...(variants.includes('full-before')
      ? [`| (before → after) full | ${fmt(median(ratio('full', 'full-before')))} × (${rng(ratio('full', 'full-before'))}) | |`]
      : []),
    ...(variants.includes('chain-before')
      ? [`| (before → after) chain | ${fmt(median(ratio('chain', 'chain-before')))} × (${rng(ratio('chain', 'chain-before'))}) | |`]
      : []),
    '',
    'Phases of permafrost (median seconds; `start`: node start-up, config, signature and target checks before the first phase):',
    '',
  ];
  for (const v of variants.filter((x) => x !== 'ref')) {
    const names = [...new Set(rounds.flatMap((r) => Object.keys(phaseDurations(r[v]!))))];
    lines.push(`- ${v}: ${names.map((n) => `${n} ${fmt(median(rounds.map((r) => phaseDurations(r[v]!)[n] ?? 0)))}`).join(', ')}`);
  }
  lines.push('', `Reproduce: \`BENCH_SIZE_MB=${p.sizeMb} BENCH_RUNS=${rounds.length} BENCH_HOURS=${p.hours} npm run bench:restore\``);
  const md = lines.join('\n');
  process.stdout.write(`${md}\n`);
  const dir = path.join(REPO, 'bench/results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'restore.json'),
    `${JSON.stringify({ env: { ...env, loadAvgEnd: loadavg() }, prepared: p, equal, rounds }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, 'restore.md'), `${md}\n`);
}

await main();
