/**
 * The scaling curve's results (bench/curve.ts): their types, the tables of bench/results/curve.md,
 * and the chart drawn from them for the docs (docs/curve.svg): hand-written SVG, no dependency,
 * linear axes. Two panels: wall time against
 * database size per operation (the stock references dashed), and the node process's peak RSS
 * against size (flat is the goal).
 *
 * Standalone, to redraw bench/results/curve.md and the chart from bench/results/curve.json
 * without measuring again: node --import tsx bench/curve-report.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cost } from './cli-vault.js';
import { REPO } from './dataset.js';
import { fmt, median, type machine } from './measure.js';

export type OpKey = 'stockDump' | 'full' | 'base' | 'delta' | 'stockRestore' | 'restoreFull' | 'restoreChain' | 'verify';

/** The operations of the curve, in table order; `ref` names the reference a ratio is taken to. */
export const OPS: ReadonlyArray<{ key: OpKey; label: string; short: string; ref: OpKey | null; stock: boolean; color: string }> = [
  { key: 'stockDump', label: '`pg_dump -Fc -Z0 -f FILE` (reference)', short: 'pg_dump', ref: null, stock: true, color: '#6b7280' },
  { key: 'full', label: '`permafrost backup` (full)', short: 'full backup', ref: 'stockDump', stock: false, color: '#2563eb' },
  { key: 'base', label: '`permafrost backup` (a base, database.delta)', short: 'base', ref: 'full', stock: false, color: '#7c3aed' },
  { key: 'delta', label: '`permafrost backup` (an hourly delta after churn)', short: 'delta', ref: 'full', stock: false, color: '#059669' },
  {
    key: 'stockRestore',
    label: '`pg_restore -j2` of the dump (reference)',
    short: 'pg_restore -j2',
    ref: null,
    stock: true,
    color: '#111827',
  },
  {
    key: 'restoreFull',
    label: '`permafrost restore --jobs 2` (full)',
    short: 'full restore',
    ref: 'stockRestore',
    stock: false,
    color: '#dc2626',
  },
  {
    key: 'restoreChain',
    label: '`permafrost restore --jobs 2` (base + chain)',
    short: 'chain restore',
    ref: 'restoreFull',
    stock: false,
    color: '#ea580c',
  },
  { key: 'verify', label: '`permafrost verify` (full)', short: 'verify', ref: 'stockRestore', stock: false, color: '#ca8a04' },
];

/** One measured operation in one round; `ratio` = wall / the reference's wall in the same round (NaN: none). */
export type Point = Cost & { ratio: number };

export interface SizeResult {
  sizeMb: number;
  /** pg_database_size of the copy (with the churn tables) when it started. */
  bytes: number;
  /** The stock dump and the full snapshot at the chain's moment, bytes. */
  dumpBytes: number;
  snapshotBytes: number;
  rows: Record<string, number>;
  date: string;
  runs: number;
  chain: number;
  loadStart: number[];
  loadEnd: number[];
  rounds: Array<Partial<Record<OpKey, Point>>>;
  /** Median size and wall of every delta of the chain. */
  deltaBytes: number;
  deltaWallAllS: number;
  /** Restored databases equal to the source (first round). */
  equal: Partial<Record<OpKey, boolean>>;
  notes: string[];
}

export interface CurveResults {
  env: ReturnType<typeof machine>;
  /** The command that reproduces the results. */
  command: string;
  sizes: SizeResult[];
}

/** A round step (1, 2 or 5 × 10^n) giving about `count` ticks up to `max`. */
export function tickStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/`/g, '');

interface Series {
  label: string;
  color: string;
  dashed: boolean;
  points: Array<[number, number]>;
}

/** One panel: a line per series, linear axes from 0, at vertical offset `top`. */
function panel(
  title: string,
  yLabel: string,
  series: Series[],
  xMax: number,
  top: number,
  xs: number[],
  bar?: { y: number; label: string },
): string {
  const left = 64;
  const plotW = 420;
  const plotH = 240;
  const yTop = top + 34;
  const yMaxData = Math.max(bar?.y ?? 0, ...series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => Number.isFinite(y)));
  const yStep = tickStep(yMaxData * 1.05);
  const yMax = Math.max(yStep, Math.ceil((yMaxData * 1.05) / yStep) * yStep);
  const X = (x: number): number => left + (x / xMax) * plotW;
  const Y = (y: number): number => yTop + plotH - (y / yMax) * plotH;
  const out: string[] = [];
  out.push(`<text x="${left}" y="${top + 18}" class="t">${esc(title)}</text>`);
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${left}" y1="${Y(y).toFixed(1)}" x2="${left + plotW}" y2="${Y(y).toFixed(1)}" class="g"/>`);
    out.push(`<text x="${left - 6}" y="${(Y(y) + 4).toFixed(1)}" class="l" text-anchor="end">${Number(y.toFixed(6))}</text>`);
  }
  for (const x of xs) {
    out.push(`<line x1="${X(x).toFixed(1)}" y1="${yTop}" x2="${X(x).toFixed(1)}" y2="${yTop + plotH}" class="g"/>`);
    out.push(`<text x="${X(x).toFixed(1)}" y="${yTop + plotH + 16}" class="l" text-anchor="middle">${x}</text>`);
  }
  out.push(`<rect x="${left}" y="${yTop}" width="${plotW}" height="${plotH}" class="f"/>`);
  if (bar) {
    out.push(
      `<line x1="${left}" y1="${Y(bar.y).toFixed(1)}" x2="${left + plotW}" y2="${Y(bar.y).toFixed(1)}" stroke="#b91c1c" stroke-dasharray="2 3"/>`,
    );
    out.push(`<text x="${left + 4}" y="${(Y(bar.y) - 4).toFixed(1)}" class="l">${esc(bar.label)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${yTop + plotH + 34}" class="l" text-anchor="middle">database size, MB</text>`);
  out.push(
    `<text x="16" y="${yTop + plotH / 2}" class="l" text-anchor="middle" transform="rotate(-90 16 ${yTop + plotH / 2})">${esc(yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    if (pts.length === 0) return;
    const d = pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
    out.push(
      `<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}><title>${esc(s.label)}</title></polyline>`,
    );
    for (const [x, y] of pts)
      out.push(
        `<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.label}: ${y.toFixed(2)} at ${x} MB`)}</title></circle>`,
      );
    const ly = yTop + 8 + i * 20;
    const lx = left + plotW + 20;
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${lx + 30}" y="${ly + 4}" class="l">${esc(s.label)}</text>`);
  });
  return out.join('\n');
}

/** The chart of `res` as a standalone SVG document. */
export function curveSvg(res: CurveResults): string {
  const sizes = [...res.sizes].sort((a, b) => a.sizeMb - b.sizeMb);
  const xs = sizes.map((s) => s.sizeMb);
  const xMax = Math.max(1, ...xs) * 1.05;
  const med = (s: SizeResult, op: OpKey, k: keyof Point): number => median(s.rounds.map((r) => r[op]?.[k] ?? Number.NaN));
  const chainNote = [...new Set(sizes.map((s) => s.chain))].join('/');
  const label = (op: (typeof OPS)[number]): string =>
    op.key === 'restoreChain' ? `${op.short} (base + ${chainNote})` : op.stock ? `${op.short} (stock)` : op.short;
  const time: Series[] = OPS.map((op) => ({
    label: label(op),
    color: op.color,
    dashed: op.stock,
    points: sizes.map((s) => [s.sizeMb, med(s, op.key, 'wallS')] as [number, number]),
  }));
  const memory: Series[] = OPS.filter((op) => !op.stock).map((op) => ({
    label: label(op),
    color: op.color,
    dashed: false,
    points: sizes.map((s) => [s.sizeMb, med(s, op.key, 'nodePeakRssMiB')] as [number, number]),
  }));
  const runs = [...new Set(sizes.map((s) => s.runs))].join('/');
  const loads = sizes.map((s) => s.loadStart[0]!.toFixed(1)).join(', ');
  const H = 2 * 310 + 56;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="760" height="${H}" viewBox="0 0 760 ${H}" font-family="sans-serif" font-size="12">`,
    '<style>.t{font-weight:bold;font-size:14px}.l{fill:#374151}.g{stroke:#e5e7eb}.f{fill:none;stroke:#9ca3af}</style>',
    '<rect width="100%" height="100%" fill="#ffffff"/>',
    panel(`Wall time by database size (median of ${runs} round(s))`, 'seconds', time, xMax, 0, xs),
    panel('Peak RSS of the permafrost process (node)', 'MiB', memory, xMax, 310, xs, { y: 150, label: 'the 150 MiB bar' }),
    `<text x="64" y="${H - 26}" class="l">${esc(res.command)}</text>`,
    `<text x="64" y="${H - 8}" class="l">${esc(`${res.env.cpus} × ${res.env.cpuModel}, shared; 1-min load average at the start of each size: ${loads}`)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}

/** The medians of one size: per operation, every field over the rounds. */
export function medians(s: SizeResult): Record<OpKey, Cost & { ratio: number }> {
  const out = {} as Record<OpKey, Cost & { ratio: number }>;
  for (const op of OPS) {
    const xs = s.rounds.map((r) => r[op.key]).filter((x) => x !== undefined);
    const m = (k: keyof Cost | 'ratio'): number => median(xs.map((x) => x[k]));
    out[op.key] = {
      wallS: m('wallS'),
      cpuS: m('cpuS'),
      serverCpuS: m('serverCpuS'),
      nodePeakRssMiB: m('nodePeakRssMiB'),
      peakRssMiB: m('peakRssMiB'),
      ratio: m('ratio'),
    };
  }
  return out;
}

export function markdown(res: CurveResults): string {
  const lines: string[] = [];
  lines.push(`# permafrost scaling curve — ${res.env.date}`);
  lines.push('');
  lines.push(
    `${res.env.cpus} × ${res.env.cpuModel}, node ${res.env.node}, PostgreSQL with fsync on; the machine was shared with other jobs (load average per size below). ` +
      'Medians of the alternated rounds; a ratio is the median of the per-round ratios to the reference named in its row. ' +
      'CPU: user+sys of the command and its children; server: the PostgreSQL server meanwhile. RSS: node (sampled VmHWM) for permafrost, the largest process for the stock tools.',
  );
  lines.push('');
  lines.push(...summaryTable(res));
  lines.push('');
  lines.push('| size | operation | wall s | CPU s (ours) | server CPU s | peak RSS MiB | × reference |');
  lines.push('| ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const s of res.sizes) {
    const m = medians(s);
    for (const op of OPS) {
      const x = m[op.key];
      const rss = Number.isFinite(x.nodePeakRssMiB) ? x.nodePeakRssMiB : x.peakRssMiB;
      const ratio = op.ref ? `${fmt(x.ratio)} × ${OPS.find((o) => o.key === op.ref)!.short}` : '';
      lines.push(`| ${s.sizeMb} MB | ${op.label} | ${fmt(x.wallS)} | ${fmt(x.cpuS)} | ${fmt(x.serverCpuS)} | ${fmt(rss, 0)} | ${ratio} |`);
    }
  }
  lines.push('');
  for (const s of res.sizes) {
    const eq = Object.entries(s.equal)
      .map(([k, v]) => `${k} ${v ? 'yes' : 'NO'}`)
      .join(', ');
    lines.push(
      `- ${s.sizeMb} MB (${(s.bytes / 2 ** 20).toFixed(0)} MiB on disk with the churn tables; stock dump ${(s.dumpBytes / 1e6).toFixed(0)} MB, snapshot ${(s.snapshotBytes / 1e6).toFixed(0)} MB, hourly delta ${(s.deltaBytes / 1e6).toFixed(2)} MB): ${s.date}, ${s.runs} round(s), chain of ${s.chain}, load average ${s.loadStart.map((x) => x.toFixed(1)).join(' ')} at the start, ${s.loadEnd.map((x) => x.toFixed(1)).join(' ')} at the end; median delta wall over the whole chain ${fmt(s.deltaWallAllS)} s; restored databases equal to the source: ${eq || 'n/a'}.`,
    );
    for (const n of s.notes) lines.push(`  - Note: ${n}`);
  }
  lines.push('');
  lines.push(`Reproduce: \`${res.command}\``);
  return lines.join('\n');
}

/** One line per size: every operation's median wall, with its ratio to its reference. */
function summaryTable(res: CurveResults): string[] {
  const head = OPS.map((op) => (op.ref ? `${op.short} s (× ${OPS.find((o) => o.key === op.ref)!.short})` : `${op.short} s`));
  const lines = [`| size | ${head.join(' | ')} | node peak RSS MiB (largest) |`, `| ---: | ${OPS.map(() => '---:').join(' | ')} | ---: |`];
  for (const s of res.sizes) {
    const m = medians(s);
    const cells = OPS.map((op) => (op.ref ? `${fmt(m[op.key].wallS)} (${fmt(m[op.key].ratio)})` : fmt(m[op.key].wallS)));
    const rss = Math.max(
      ...OPS.filter((op) => !op.stock)
        .map((op) => m[op.key].nodePeakRssMiB)
        .filter((x) => Number.isFinite(x)),
    );
    lines.push(`| ${s.sizeMb} MB | ${cells.join(' | ')} | ${fmt(rss, 0)} |`);
  }
  return lines;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const res = JSON.parse(readFileSync(path.join(REPO, 'bench/results/curve.json'), 'utf8')) as CurveResults;
  writeFileSync(path.join(REPO, 'bench/results/curve.md'), `${markdown(res)}\n`);
  writeFileSync(path.join(REPO, 'docs/curve.svg'), curveSvg(res));
}
