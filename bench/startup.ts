/**
 * Start-up cost of the CLI (issue 21 item 1): `permafrost --version` and `permafrost <cmd> --help`
 * must load only what they print. Each case runs `node dist/bin/permafrost.js ARGS` under /usr/bin/time,
 * RUNS rounds of every case in turn (so a busy moment hits all cases alike) after one warm-up round;
 * `node -e 0` beside them is the floor no CLI can go under.
 *
 *   npm run bench:startup            # builds first; STARTUP_RUNS=N for another count
 *   STARTUP_CLI=/elsewhere/dist/bin/permafrost.js node --import tsx bench/startup.ts   # another build (no results written)
 *
 * Results: a table on stdout and bench/results/startup.{json,md}. Bars: median ≤ 150 ms and
 * ≤ 60 MiB peak RSS per --version and --help case; `list` (a command that runs) and the unbundled
 * tsc output beside the bundle are shown for comparison.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, machine, median, timed, type ProcStat } from './measure.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// STARTUP_CLI: another build's main.js, to compare before and after a change.
const CLI = process.env.STARTUP_CLI ?? path.join(REPO, 'dist/bin/permafrost.js');
const RUNS = Number(process.env.STARTUP_RUNS ?? 10);
/** tsc's entry (dist/cli/main.js), which the bundle is made of. */
const TSC_ENTRY = path.join(REPO, 'dist/cli/main.js');
const EMPTY_VAULT = mkdtempSync(path.join(tmpdir(), 'permafrost-startup-'));
const BAR_MS = 150;
const BAR_MIB = 60;

const CASES: Array<{ label: string; argv: string[]; cli: boolean }> = [
  { label: '`node -e 0` (the floor)', argv: [process.execPath, '-e', '0'], cli: false },
  { label: '`permafrost --version`', argv: [process.execPath, CLI, '--version'], cli: true },
  { label: '`permafrost --help`', argv: [process.execPath, CLI, '--help'], cli: true },
  { label: '`permafrost backup --help`', argv: [process.execPath, CLI, 'backup', '--help'], cli: true },
  { label: '`permafrost restore --help`', argv: [process.execPath, CLI, 'restore', '--help'], cli: true },
  // A command that runs (config-free: a vault folder with no snapshot), as every test and timer does.
  { label: '`permafrost list --vault EMPTY`', argv: [process.execPath, CLI, 'list', '--vault', EMPTY_VAULT], cli: false },
  // The same from tsc's unbundled output beside the bundle (scripts/bundle.mjs): what bundling saves.
  ...(process.env.STARTUP_CLI
    ? []
    : [
        { label: '`permafrost --help`, unbundled (tsc output)', argv: [process.execPath, TSC_ENTRY, '--help'], cli: false },
        {
          label: '`permafrost list --vault EMPTY`, unbundled',
          argv: [process.execPath, TSC_ENTRY, 'list', '--vault', EMPTY_VAULT],
          cli: false,
        },
      ]),
];

async function main(): Promise<void> {
  const info = machine();
  const samples = CASES.map(() => [] as ProcStat[]);
  for (let round = -1; round < RUNS; round++) {
    for (const [i, c] of CASES.entries()) {
      const s = await timed(c.argv, { name: c.label }).done;
      if (round >= 0) samples[i]!.push(s);
    }
  }
  const rows = CASES.map((c, i) => {
    const wallMs = median(samples[i]!.map((s) => s.wallS * 1000));
    const rssMiB = median(samples[i]!.map((s) => s.peakRssMiB));
    // CPU time (user + sys) moves less than wall time when other jobs share the machine.
    const cpuMs = median(samples[i]!.map((s) => (s.userS + s.sysS) * 1000));
    const met = !c.cli ? '' : wallMs <= BAR_MS && rssMiB <= BAR_MIB ? 'yes' : '**no**';
    return { label: c.label, wallMs, cpuMs, rssMiB, met, wallAll: samples[i]!.map((s) => Math.round(s.wallS * 1000)) };
  });
  const floor = rows[0]!;
  const md = [
    `| median of ${RUNS} | wall ms | over the floor | CPU ms | over the floor | peak RSS MiB | wall ≤ ${BAR_MS} ms and RSS ≤ ${BAR_MIB} MiB |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r, i) =>
      i === 0
        ? `| ${r.label} | ${fmt(r.wallMs, 0)} | | ${fmt(r.cpuMs, 0)} | | ${fmt(r.rssMiB, 1)} | |`
        : `| ${r.label} | ${fmt(r.wallMs, 0)} | +${fmt(r.wallMs - floor.wallMs, 0)} | ${fmt(r.cpuMs, 0)} | +${fmt(r.cpuMs - floor.cpuMs, 0)} | ${fmt(r.rssMiB, 1)} | ${r.met} |`,
    ),
    '',
    // On a busy machine even `node -e 0` misses the wall bar: then only the figures over the floor compare.
    ...(floor.wallMs > BAR_MS / 2
      ? [`The floor alone took ${fmt(floor.wallMs, 0)} ms: the machine was busy; compare the figures over the floor.`, '']
      : []),
    `${info.date}, Node ${info.node}, ${info.cpus} × ${info.cpuModel}, load average ${info.loadAvgStart.map((l) => l.toFixed(2)).join(' ')} → ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  ].join('\n');
  console.log(md);
  if (process.env.STARTUP_CLI) return;
  const out = path.join(REPO, 'bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'startup.json'), `${JSON.stringify({ machine: info, runs: RUNS, rows }, null, 2)}\n`);
  writeFileSync(path.join(out, 'startup.md'), `${md}\n`);
}

try {
  await main();
} finally {
  rmSync(EMPTY_VAULT, { recursive: true, force: true });
}
