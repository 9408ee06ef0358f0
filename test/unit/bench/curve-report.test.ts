import { describe, expect, it } from 'vitest';
import {
  curveSvg,
  markdown,
  OPS,
  tickStep,
  type CurveResults,
  type OpKey,
  type Point,
  type SizeResult,
} from '../../../bench/curve-report.js';

const point = (wallS: number, nodePeakRssMiB = Number.NaN): Point => ({
  wallS,
  cpuS: 1,
  serverCpuS: 1,
  nodePeakRssMiB,
  peakRssMiB: 10,
  ratio: Number.NaN,
});

/** A size whose every operation took `k` × its index + 1 seconds (rounds: the given factors). */
function size(sizeMb: number, factors: number[], omit: OpKey[] = []): SizeResult {
  return {
    sizeMb,
    bytes: sizeMb * 2 ** 20,
    dumpBytes: 1,
    snapshotBytes: 1,
    rows: {},
    date: '2026-12-06T00:00:00Z',
    runs: factors.length,
    chain: 4,
    loadStart: [2, 2, 2],
    loadEnd: [2, 2, 2],
    rounds: factors.map((f) =>
      Object.fromEntries(
        OPS.filter((op) => !omit.includes(op.key)).map((op, i) => [
          op.key,
          point(f * (sizeMb / 256) * (i + 1), op.stock ? Number.NaN : 100),
        ]),
      ),
    ),
    deltaBytes: 1,
    deltaWallAllS: 1,
    equal: {},
    notes: [],
  };
}

const results = (sizes: SizeResult[], command = 'BENCH_SIZES=256,512 npm run bench:curve'): CurveResults => ({
  env: { date: '2026-12-06T00:00:00Z', cpus: 2, cpuModel: 'test cpu', node: 'v20', loadAvgStart: [1, 1, 1] },
  command,
  sizes,
});

/** The points of the first polyline titled `label`, as numbers. */
function line(svg: string, label: string): Array<[number, number]> {
  const m = new RegExp(`<polyline points="([^"]+)"[^>]*><title>${label.replace(/[()+]/g, '\\$&')}</title>`).exec(svg);
  if (!m) throw new Error(`no line ${label}`);
  return m[1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
}

describe('bench/curve-report', () => {
  it('picks round tick steps (1, 2 or 5 × 10^n)', () => {
    expect(tickStep(47)).toBe(10);
    expect(tickStep(0.9)).toBeCloseTo(0.2);
    expect(tickStep(130)).toBe(50);
    expect(tickStep(0)).toBe(1);
  });

  it('draws one line per operation, time growing to the right and up, the stock references dashed', () => {
    const svg = curveSvg(results([size(512, [1, 3, 2]), size(256, [1, 1, 1])]));
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).not.toContain('NaN');
    const full = line(svg, 'full backup');
    expect(full).toHaveLength(2);
    // sorted by size: x grows; twice the size (median factor 2 vs 1) is four times the time: y (pixels from the top) falls
    expect(full[1]![0]).toBeGreaterThan(full[0]![0]);
    expect(full[1]![1]).toBeLessThan(full[0]![1]);
    expect(svg).toMatch(/<polyline [^>]*stroke-dasharray="6 4"><title>pg_dump \(stock\)<\/title>/);
    expect(svg).toMatch(/<polyline [^>]*stroke-width="2"><title>full backup<\/title>/);
    expect(svg).toContain('chain restore (base + 4)');
    expect(svg).toContain('the 150 MiB bar');
  });

  it('leaves out what was not measured and escapes the command it prints', () => {
    const svg = curveSvg(results([size(256, [1], ['verify']), size(512, [1], ['verify'])], 'A=1 <x> & npm run bench:curve'));
    expect(svg).not.toMatch(/<polyline[^>]*><title>verify<\/title>/);
    expect(svg).toContain('A=1 &lt;x&gt; &amp; npm run bench:curve');
    expect(svg).not.toContain('NaN');
  });

  it('writes one summary row per size with the medians and the ratios to the references, and the command', () => {
    const s = size(256, [1, 3, 2]);
    s.rounds.forEach((r, i) => (r.full!.ratio = [1.5, 1.1, 1.2][i]!));
    const md = markdown(results([s]));
    const row = md.split('\n').find((l) => l.startsWith('| 256 MB | 2.00 |'));
    // pg_dump: median of 1, 3, 2 × 1 s; full backup: 4 s and the median of its per-round ratios
    expect(row).toContain('| 4.00 (1.20) |');
    expect(md).toContain('Reproduce: `BENCH_SIZES=256,512 npm run bench:curve`');
  });
});
