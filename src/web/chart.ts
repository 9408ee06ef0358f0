import { esc } from './html.js';

export interface ChartPoint {
  /** Unix ms. */
  t: number;
  v: number;
  /** Hover text. */
  label: string;
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least max. */
export function niceMax(max: number): number {
  if (max <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/**
 * A small line chart as inline SVG, drawn on the server: no script, no external asset, only
 * presentation attributes (the page's CSP allows no inline style).
 */
export function lineChart(opts: {
  title: string;
  points: ChartPoint[];
  format: (v: number) => string;
  color: string;
  /** Axis top for the largest value (default: niceMax); bytes want round binary units. */
  nice?: (max: number) => number;
  width?: number;
  height?: number;
}): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 200;
  const pad = { l: 76, r: 16, t: 28, b: 34 };
  const pts = [...opts.points].sort((a, b) => a.t - b.t);
  const head = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(opts.title)}"><title>${esc(opts.title)}</title>`;
  const title = `<text x="${pad.l}" y="18" font-size="13" font-weight="600" fill="#1f2933">${esc(opts.title)}</text>`;
  if (pts.length === 0) {
    return `${head}${title}<text x="${W / 2}" y="${H / 2}" text-anchor="middle" font-size="13" fill="#7b8794">no snapshots yet</text></svg>`;
  }
  const t0 = pts[0]!.t;
  const t1 = pts[pts.length - 1]!.t;
  const vmax = (opts.nice ?? niceMax)(Math.max(...pts.map((p) => p.v)));
  const x = (t: number): number => (t1 === t0 ? pad.l + (W - pad.l - pad.r) / 2 : pad.l + ((t - t0) / (t1 - t0)) * (W - pad.l - pad.r));
  const y = (v: number): number => H - pad.b - (v / vmax) * (H - pad.t - pad.b);
  const grid = [0, 0.5, 1]
    .map((f) => {
      const gy = y(vmax * f).toFixed(1);
      return `<line x1="${pad.l}" y1="${gy}" x2="${W - pad.r}" y2="${gy}" stroke="#e4e7eb" stroke-width="1"/><text x="${pad.l - 6}" y="${gy}" dy="4" text-anchor="end" font-size="11" fill="#52606d">${esc(opts.format(vmax * f))}</text>`;
    })
    .join('');
  const day = (t: number): string => new Date(t).toISOString().slice(0, 16).replace('T', ' ');
  const xLabels =
    `<text x="${pad.l}" y="${H - 10}" font-size="11" fill="#52606d">${esc(day(t0))}</text>` +
    (t1 !== t0 ? `<text x="${W - pad.r}" y="${H - 10}" text-anchor="end" font-size="11" fill="#52606d">${esc(day(t1))}</text>` : '');
  const path = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  const line = pts.length > 1 ? `<path d="${path}" fill="none" stroke="${opts.color}" stroke-width="2"/>` : '';
  const dots = pts
    .map(
      (p) =>
        `<circle cx="${x(p.t).toFixed(1)}" cy="${y(p.v).toFixed(1)}" r="3.5" fill="${opts.color}"><title>${esc(p.label)}</title></circle>`,
    )
    .join('');
  return `${head}${title}${grid}${xLabels}${line}${dots}</svg>`;
}

/** Round in binary units: 1, 2 or 5 × a power of ten of KiB, MiB, … (e.g. 500 KiB, 1 MiB, 2 GiB). */
export function niceBytes(max: number): number {
  if (max <= 0) return 1024;
  const unit = 1024 ** Math.max(0, Math.floor(Math.log(max) / Math.log(1024)));
  return niceMax(max / unit) * unit;
}
