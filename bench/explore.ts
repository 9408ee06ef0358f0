/**
 * `node --import tsx bench/explore.ts`: the measurements behind the pipeline choice. Dump and
 * restore variants run interleaved, round after round, against the same cached database, so the
 * machine's noise hits all of them alike; medians are printed and written to
 * bench/results/explore.{json,md}.
 *
 *   BENCH_SIZE_MB (default 300), BENCH_RUNS (default 3)
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { CACHE, openDataset, REPO } from './dataset.js';
import { median, serverCpuS, timed, type ProcStat } from './measure.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 300);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const CLI = path.join(REPO, 'dist/bin/permafrost.js');
const log = (s: string): void => void process.stderr.write(`[explore] ${s}\n`);

const ds = openDataset(SIZE, { port: 5436, log });
process.once('exit', () => ds.stop());
const c = ds.cluster;
const work = mkdtempSync(path.join(CACHE, 'explore-'));
const pass = path.join(work, 'passphrase');
writeFileSync(pass, 'bench passphrase\n', { mode: 0o600 });
const gnupg = path.join(work, 'gnupg');
mkdirSync(gnupg, { mode: 0o700 });
const vault = path.join(work, 'vault');
mkdirSync(vault);
const config = path.join(work, 'permafrost.yaml');
writeFileSync(
  config,
  stringify({
    database: { name: ds.db, host: c.socketDir, port: c.port, user: c.user, binDir: c.binDir },
    vault: { dir: vault, passphraseFile: pass, tempDir: work },
  }),
);
const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user, GNUPGHOME: gnupg };
const bin = (t: string): string => path.join(c.binDir, t);
const out = (n: string): string => path.join(work, n);

interface M {
  wallS: number;
  cpuS: number;
  serverCpuS: number;
  bytes?: number;
}

/** Runs a chain of processes connected by pipes, the last one writing into `file` (or /dev/null). */
async function chain(stages: Array<{ argv: string[]; env?: NodeJS.ProcessEnv; passFd?: boolean }>, file?: string): Promise<M> {
  const s0 = serverCpuS(c.dataDir);
  const t0 = performance.now();
  const fd = openSync(file ?? '/dev/null', 'w');
  const runs: Array<Promise<ProcStat>> = [];
  let prev: NodeJS.ReadableStream | null = null;
  stages.forEach((st, i) => {
    const last = i === stages.length - 1;
    const stdio: Array<unknown> = [prev ?? 'ignore', last ? fd : 'pipe', 'pipe'];
    if (st.passFd) stdio.push('pipe');
    const t = timed(st.argv, { stdio: stdio as never, env: st.env ?? env });
    if (st.passFd) (t.child.stdio[3] as NodeJS.WritableStream).end('bench passphrase\n');
    if (prev) (prev as unknown as { destroy(): void }).destroy();
    prev = last ? null : t.child.stdout;
    runs.push(t.done);
  });
  const stats = await Promise.all(runs);
  closeSync(fd);
  const wallS = (performance.now() - t0) / 1000;
  const bytes = file ? statSync(file).size : undefined;
  return { wallS, cpuS: stats.reduce((t, s) => t + s.userS + s.sysS, 0), serverCpuS: serverCpuS(c.dataDir) - s0, bytes };
}

async function permafrostBackup(extraEnv: NodeJS.ProcessEnv = {}): Promise<M> {
  const before = new Set(readdirSync(vault));
  const s0 = serverCpuS(c.dataDir);
  const st = await timed([process.execPath, CLI, 'backup', '--config', config], { env: { ...env, ...extraEnv } }).done;
  const id = readdirSync(vault).find((n) => !before.has(n) && /^\d{4}-/.test(n))!;
  const bytes = statSync(path.join(vault, id, 'database.pgdump.gpg')).size;
  rmSync(path.join(vault, id), { recursive: true, force: true });
  return { wallS: st.wallS, cpuS: st.userS + st.sysS, serverCpuS: serverCpuS(c.dataDir) - s0, bytes };
}

const gpgC = (algo: string, level?: number): string[] => [
  'gpg',
  '-c',
  '--batch',
  '--no-tty',
  '--pinentry-mode',
  'loopback',
  '--passphrase-fd',
  '3',
  '--no-symkey-cache',
  '--cipher-algo',
  'AES256',
  '--compress-algo',
  algo,
  ...(level ? ['--compress-level', String(level)] : []),
];

const dumpVariants: Record<string, () => Promise<M>> = {
  'pg_dump -Fc -Z0 > f (floor)': () => chain([{ argv: [bin('pg_dump'), '-Fc', '-Z0', ds.db] }], out('x')),
  'pg_dump -Fc -Z1 > f': () => chain([{ argv: [bin('pg_dump'), '-Fc', '-Z1', ds.db] }], out('x')),
  'pg_dump -Fc (Z6) > f': () => chain([{ argv: [bin('pg_dump'), '-Fc', ds.db] }], out('x')),
  'pg_dump -Fc -Z0 | igzip -1 > f': () =>
    chain([{ argv: [bin('pg_dump'), '-Fc', '-Z0', ds.db] }, { argv: ['igzip', '-1', '-c', '-n'] }], out('x')),
  'pg_dump -Fc -Z1 | gpg -c --compress-algo none': () =>
    chain([{ argv: [bin('pg_dump'), '-Fc', '-Z1', ds.db] }, { argv: gpgC('none'), passFd: true }], out('x')),
  'pg_dump -Fc -Z0 | gpg -c --compress-algo zlib --compress-level 1': () =>
    chain([{ argv: [bin('pg_dump'), '-Fc', '-Z0', ds.db] }, { argv: gpgC('zlib', 1), passFd: true }], out('x')),
  'permafrost backup (igzip, pg_dump → igzip direct)': () => permafrostBackup(),
  'permafrost backup (Node zlib level 1)': () => permafrostBackup({ PERMAFROST_COMPRESSOR: 'zlib' }),
  'pg_dump DB | gzip > f.sql.gz': () => chain([{ argv: [bin('pg_dump'), ds.db] }, { argv: ['gzip'] }], out('x')),
};

function freshDb(name: string): void {
  c.psql('postgres', `DROP DATABASE IF EXISTS ${name}; CREATE DATABASE ${name};`);
}

const archive = out('db.pgdump');
const restoreVariants: Record<string, () => Promise<M>> = {};
for (const [label, jobs, opts] of [
  ['pg_restore, 1 job (stock)', 1, ''],
  ['pg_restore, 1 job, PGOPTIONS', 1, 'x'],
  ['pg_restore -j2', 2, ''],
  ['pg_restore -j2, PGOPTIONS (permafrost)', 2, 'x'],
  ['pg_restore -j3, PGOPTIONS', 3, 'x'],
] as const) {
  restoreVariants[label] = async () => {
    freshDb('explore_r');
    const pgoptions = opts ? '-c maintenance_work_mem=256MB -c synchronous_commit=off' : undefined;
    const m = await chain([
      {
        argv: [
          bin('pg_restore'),
          '--clean',
          '--if-exists',
          '--exit-on-error',
          ...(jobs > 1 ? [`--jobs=${jobs}`] : []),
          '--dbname',
          'explore_r',
          archive,
        ],
        env: { ...env, ...(pgoptions ? { PGOPTIONS: pgoptions } : {}) },
      },
    ]);
    c.psql('postgres', 'DROP DATABASE explore_r');
    return m;
  };
}
restoreVariants['gpg -d (stock) of the snapshot'] = () =>
  chain([{ argv: ['gpg', '-d', '--batch', '--passphrase-file', pass, '--output', out('dec'), snapFile] }]).finally(() =>
    rmSync(out('dec'), { force: true }),
  );

let snapFile = '';
async function main(): Promise<void> {
  await chain([{ argv: [bin('pg_dump'), '-Fc', '-Z0', ds.db] }]); // warm the cache
  spawnSync(process.execPath, [CLI, 'backup', '--config', config], { env, stdio: 'ignore' });
  const id = readdirSync(vault).find((n) => /^\d{4}-/.test(n))!;
  snapFile = path.join(vault, id, 'database.pgdump.gpg');
  spawnSync('gpg', ['-d', '--batch', '--passphrase-file', pass, '--output', archive, snapFile], { env, stdio: 'ignore' });
  const results: Record<string, M[]> = {};
  for (let r = 1; r <= RUNS; r++) {
    for (const [label, fn] of [...Object.entries(dumpVariants), ...Object.entries(restoreVariants)]) {
      const m = await fn();
      (results[label] ??= []).push(m);
      log(`round ${r} ${label}: ${m.wallS.toFixed(2)} s`);
    }
  }
  const rows = Object.entries(results).map(([label, ms]) => ({
    label,
    wallS: median(ms.map((m) => m.wallS)),
    cpuS: median(ms.map((m) => m.cpuS)),
    serverCpuS: median(ms.map((m) => m.serverCpuS)),
    bytes: median(ms.map((m) => m.bytes ?? NaN)),
  }));
  const lines = [
    `# Pipeline exploration — ${new Date().toISOString()}, ${(ds.info.bytes / 2 ** 20).toFixed(0)} MiB database, medians of ${RUNS} interleaved rounds`,
    '',
    '| variant | wall s | CPU s (ours) | server CPU s | output MB |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.wallS.toFixed(2)} | ${r.cpuS.toFixed(2)} | ${r.serverCpuS.toFixed(2)} | ${Number.isFinite(r.bytes) ? (r.bytes / 1e6).toFixed(1) : ''} |`,
    ),
    '',
    `Reproduce: \`BENCH_SIZE_MB=${SIZE} BENCH_RUNS=${RUNS} node --import tsx bench/explore.ts\` (after \`npm run build\`)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  mkdirSync(path.join(REPO, 'bench/results'), { recursive: true });
  writeFileSync(path.join(REPO, 'bench/results/explore.md'), `${lines.join('\n')}\n`);
  writeFileSync(
    path.join(REPO, 'bench/results/explore.json'),
    `${JSON.stringify({ sizeMb: SIZE, dataset: ds.info, runs: RUNS, results }, null, 2)}\n`,
  );
}

try {
  await main();
} finally {
  spawnSync('gpgconf', ['--homedir', gnupg, '--kill', 'all'], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
  ds.stop();
}
