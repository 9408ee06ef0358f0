import type { GrowthWindow, JobView, Overview, Problem, SnapshotRow } from '../ops/overview.js';
import { isHealthy } from '../ops/overview.js';
import { lineChart, niceBytes } from './chart.js';
import { age, bytes, duration, esc } from './html.js';

export type { JobView };

const RECENT = 30;
const CHART_POINTS = 100;

/** `iso` as "YYYY-MM-DD HH:MM" in `timeZone`, with the zone named. */
function when(iso: string, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(iso))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${timeZone}`;
}

function verifiedCell(s: SnapshotRow): string {
  if (s.verified === 'verified') return `<span class="ok" title="verified ${esc(s.verifiedAt ?? '')}">✓ verified</span>`;
  if (s.verified === 'failed') return `<span class="bad" title="${esc(s.verifyReason ?? '')}">✗ failed</span>`;
  return '<span class="muted">never verified</span>';
}

function partsCell(s: SnapshotRow): string {
  if (s.problem) return `<span class="bad" title="${esc(s.problem)}">damaged</span>`;
  const failed = s.failed.map((f) => `<span class="${f.optional ? 'muted' : 'bad'}" title="${esc(f.error)}">${esc(f.part)} failed</span>`);
  const check = s.checked === 'failed' ? [`<span class="bad" title="${esc(s.checkProblems.join('; '))}">check failed</span>`] : [];
  return [esc(s.parts.map((p) => p.part).join(', ')), ...failed, ...check].join(', ');
}

function snapshotTable(rows: SnapshotRow[]): string {
  if (rows.length === 0) return '<p class="muted">No snapshots yet: run <code>permafrost backup</code>.</p>';
  const body = rows
    .slice(0, RECENT)
    .map(
      (s) =>
        `<tr><td><code>${esc(s.id)}</code></td><td>${s.future ? '<span class="bad">in the future</span>' : `${esc(age(s.ageSeconds * 1000))} ago`}</td><td class="num">${esc(bytes(s.bytes))}</td>` +
        `<td class="num">${esc(duration(s.durationMs))}</td><td>${partsCell(s)}</td><td>${verifiedCell(s)}</td></tr>`,
    )
    .join('\n');
  return (
    `<table id="snapshots"><thead><tr><th>Snapshot</th><th>Age</th><th>Size</th><th>Duration</th><th>Parts</th><th>Verified</th></tr></thead><tbody>\n${body}\n</tbody></table>` +
    (rows.length > RECENT ? `<p class="muted">${rows.length - RECENT} older snapshots not shown.</p>` : '')
  );
}

function thisDevice(o: Overview): string {
  const d = o.device;
  if (!d) return '';
  return (
    `<p id="this-device">This device: ${
      d.newest
        ? `newest complete snapshot <code>${esc(d.newest.id)}</code>, ${esc(age(d.newest.ageSeconds * 1000))} old, arrived ${esc(age(d.newest.lagSeconds * 1000))} after its commit`
        : '<span class="bad">no complete snapshot</span>'
    }${d.stale ? ' — <span class="bad">stale</span>' : ''}; disk used ${esc(bytes(d.disk.snapshotBytes + d.disk.versionsBytes))} ` +
    `(${esc(bytes(d.disk.snapshotBytes))} snapshots, ${esc(bytes(d.disk.versionsBytes))} in .stversions).</p>`
  );
}

function devicesSection(o: Overview, now: number): string {
  if (!o.replication && !o.replicationError) return o.device ? `<section><h2>Replication</h2>${thisDevice(o)}</section>` : '';
  if (!o.replication) return `<section><h2>Replication</h2><p class="bad">${esc(o.replicationError ?? '')}</p>${thisDevice(o)}</section>`;
  const r = o.replication;
  const rows = r.devices
    .map((d) => {
      const state = d.stale
        ? '<span class="bad">stale</span>'
        : d.newestSnapshotComplete
          ? '<span class="ok">up to date</span>'
          : d.connected
            ? 'syncing'
            : '<span class="muted">offline</span>';
      const lag = d.lagSeconds === null ? '?' : `${age(d.lagSeconds * 1000)}${d.lagPending ? ' (waiting)' : ''}`;
      const seen = d.connected ? 'connected' : d.lastSeen ? `${age(now - Date.parse(d.lastSeen))} ago` : 'never';
      return `<tr><td>${esc(d.name)}</td><td>${state}</td><td><code>${esc(d.newestOnDevice ?? '—')}</code></td><td class="num">${esc(lag)}</td><td>${esc(seen)}</td></tr>`;
    })
    .join('\n');
  return (
    `<section><h2>Replication</h2>${r.reachable ? '' : `<p class="bad">Syncthing did not answer: ${esc(r.error ?? '')}</p>`}${thisDevice(o)}` +
    `<table id="devices"><thead><tr><th>Device</th><th>State</th><th>Newest snapshot there</th><th>Lag</th><th>Seen</th></tr></thead><tbody>${rows}</tbody></table></section>`
  );
}

/** Each offsite target: its state as the verdict judged it, what the bucket holds, its lag, its last push. */
function offsiteSection(o: Overview, problems: Problem[], now: number): string {
  if (o.offsite.length === 0) return '';
  const rows = o.offsite
    .map((t) => {
      const bad = problems.find((p) => (p.code === 'offsite-failed' || p.code === 'offsite-stale') && p.subject === t.name);
      const state = bad
        ? `<span class="bad">${bad.code === 'offsite-failed' ? 'failed' : 'stale'}</span>`
        : t.missing === 0 && t.newestComplete
          ? '<span class="ok">up to date</span>'
          : 'pushing';
      const lag = t.lagSeconds === null ? '?' : `${age(t.lagSeconds * 1000)}${t.lagPending ? ' (waiting)' : ''}`;
      const last = t.lastAttemptAt
        ? `${age(now - Date.parse(t.lastAttemptAt))} ago${t.lastError === null ? ', ok' : `: ${t.lastError}`}`
        : 'never';
      return (
        `<tr data-target="${esc(t.name)}"><td>${esc(t.describe)}</td><td>${state}</td><td><code>${esc(t.newestComplete?.id ?? '—')}</code></td>` +
        `<td class="num">${esc(lag)}</td><td class="num">${esc(bytes(t.bytes))} · ${t.objects}</td><td>${esc(last)}</td></tr>`
      );
    })
    .join('\n');
  return `<section><h2>Offsite</h2><table id="offsite"><thead><tr><th>Target</th><th>State</th><th>Newest snapshot there</th><th>Lag</th><th>Stored</th><th>Last push</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

/** "the last day (24 snapshots over 23 h): 144.0 MiB a day" */
function growthText(g: GrowthWindow): string {
  return `the last ${g.window} (${g.from} to ${g.to}, ${age(g.seconds * 1000)}): ${bytes(g.perDayBytes)} a day`;
}

/** Disk free of vault.dir, and how fast the vault grows, measured over the span the snapshots of the last day and week cover. */
function diskSection(o: Overview): string {
  const free = o.disk ? `${bytes(o.disk.free)} free of ${bytes(o.disk.total)}` : 'unknown';
  const g = o.growth;
  const measured = [g.day, g.week].filter((w): w is GrowthWindow => w !== null);
  const growth = measured.length
    ? `; growth measured over ${measured.map(growthText).join(', over ')}`
    : '; growth: not measurable yet (fewer than two snapshots in the last week)';
  const days = g.daysLeft !== null ? `; room for about ${Math.floor(g.daysLeft)} days at the faster rate (before pruning)` : '';
  return `<section><h2>Disk</h2><p id="disk">vault.dir: <strong>${esc(free)}</strong>${esc(growth)}${esc(days)}.</p></section>`;
}

function jobsSection(jobs: JobView[], now: number, timeZone: string): string {
  if (jobs.length === 0) return '';
  const rows = jobs
    .map((j) => {
      const next = j.running ? 'running now' : j.nextRun ? `in ${age(Date.parse(j.nextRun) - now)} (${when(j.nextRun, timeZone)})` : '—';
      const last = j.lastRun ? `${j.lastRun.outcome}, ${age(now - Date.parse(j.lastRun.finishedAt))} ago` : 'not yet';
      return `<tr><td>${esc(j.name)}</td><td><code>${esc(j.cron)}</code></td><td>${esc(next)}</td><td>${esc(last)}</td></tr>`;
    })
    .join('\n');
  return `<section><h2>Schedule</h2><table id="jobs"><thead><tr><th>Job</th><th>Cron</th><th>Next run</th><th>Last run</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

function problemList(id: string, title: string, list: Problem[]): string {
  if (list.length === 0) return '';
  const items = list.map((p) => `<li data-code="${esc(p.code)}">${esc(p.message)}. <span class="fix">${esc(p.fix)}.</span></li>`).join('');
  return `<section class="problems" id="${id}"><h2>${title}</h2><ul>${items}</ul></section>`;
}

/** The verdict (src/ops/overview.ts judge), as the page shows it: problems that make the vault unhealthy, then warnings. */
function verdictSection(problems: Problem[]): string {
  const errors = problems.filter((p) => p.severity === 'error');
  const warnings = problems.filter((p) => p.severity === 'warning');
  const health = isHealthy(problems)
    ? '<p class="ok" id="health">Healthy.</p>'
    : `<p class="bad" id="health">Unhealthy: ${errors.length} problem${errors.length > 1 ? 's' : ''}.</p>`;
  if (problems.length === 0) return `${health}<p class="ok">No problems.</p>`;
  return health + problemList('problems', 'Problems', errors) + problemList('warnings', 'Warnings', warnings);
}

/** The status page: read-only, no script, styles from /style.css (the CSP allows nothing inline). */
export function renderPage(o: Overview, problems: Problem[]): string {
  const now = Date.parse(o.generatedAt);
  const newest = o.snapshots.find((s) => s.id === o.newest);
  const headline = newest
    ? `<p class="headline">Newest snapshot <code id="newest">${esc(newest.id)}</code>, <strong>${esc(age(newest.ageSeconds * 1000))} old</strong>, ${esc(bytes(newest.bytes))}, ${verifiedCell(newest)}</p>`
    : '<p class="headline bad">No snapshot yet.</p>';
  const shown = o.snapshots.filter((s) => !s.versionsOnly);
  const chartRows = shown.filter((s) => s.problem === null).slice(0, CHART_POINTS);
  const sizeChart = lineChart({
    title: 'Snapshot size',
    color: '#2f6fde',
    format: bytes,
    nice: niceBytes,
    points: chartRows.map((s) => ({ t: Date.parse(s.startedAt), v: s.bytes ?? 0, label: `${s.id}: ${bytes(s.bytes)}` })),
  });
  const durChart = lineChart({
    title: 'Backup duration',
    color: '#c2410c',
    format: (v) => duration(v),
    points: chartRows.map((s) => ({ t: Date.parse(s.startedAt), v: s.durationMs ?? 0, label: `${s.id}: ${duration(s.durationMs)}` })),
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60"><title>permafrost${o.host ? ` — ${esc(o.host)}` : ''}</title><link rel="stylesheet" href="style.css"><link rel="icon" href="favicon.svg" type="image/svg+xml"></head>
<body><header><h1>permafrost${o.host ? ` <span class="muted">on ${esc(o.host)}</span>` : ''}</h1>${headline}</header>
<main>${verdictSection(problems)}
<section><h2>Recent snapshots</h2>${snapshotTable(shown)}</section>
<section class="charts"><h2>Over time</h2>${sizeChart}${durChart}</section>
${diskSection(o)}${devicesSection(o, now)}${offsiteSection(o, problems, now)}${jobsSection(o.schedule, now, o.timeZone)}
</main><footer class="muted">Generated ${esc(when(o.generatedAt, o.timeZone))} · <a href="api/status.json">status.json</a> · <a href="metrics">metrics</a></footer></body></html>
`;
}

export const STYLE_CSS = `
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 980px; padding: 16px 24px 40px; color: #1f2933; background: #f8fafc; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.headline { font-size: 16px; margin: 4px 0 0; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #e4e7eb; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e4e7eb; }
th { background: #f1f5f9; font-weight: 600; font-size: 13px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #15803d; } .bad { color: #b91c1c; font-weight: 600; } .muted { color: #7b8794; font-weight: normal; }
.problems ul { background: #fef2f2; border: 1px solid #fecaca; padding: 8px 8px 8px 28px; margin: 0; }
#warnings ul { background: #fffbeb; border-color: #fde68a; } .fix { color: #52606d; }
.charts svg { display: block; background: #fff; border: 1px solid #e4e7eb; margin-bottom: 12px; max-width: 100%; height: auto; }
footer { margin-top: 28px; font-size: 13px; } a { color: #2f6fde; }
`;

/** A small snowflake-blue square, so browsers do not ask for /favicon.ico. */
export const FAVICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2f6fde"/><path d="M8 3v10M3.7 5.5l8.6 5M3.7 10.5l8.6-5" stroke="#fff" stroke-width="1.6" stroke-linecap="round"/></svg>';
