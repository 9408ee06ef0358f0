import { lineChart, niceBytes } from './chart.js';
import { age, bytes, duration, esc } from './html.js';
import type { Overview, SnapshotRow } from './overview.js';

/** What the daemon tells about each scheduled job (src/schedule/daemon.ts JobStatus, structurally). */
export interface JobView {
  name: string;
  cron: string;
  timezone?: string;
  running: boolean;
  nextRun: string | null;
  lastRun: { outcome: string; finishedAt: string; error?: string } | null;
}

const RECENT = 30;
const CHART_POINTS = 100;
/** No successful verify for this long is a problem: a week, seven chances for the daily schedule.verify. */
const VERIFY_STALE_DAYS = 7;
/** Vault growth is measured over the snapshots of this many days. */
const GROWTH_DAYS = 7;

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

/** The one moment a snapshot's age is counted from, in the headline and the table alike: when it was finished. */
function snapshotTime(s: SnapshotRow): number {
  return Date.parse(s.finishedAt ?? s.startedAt);
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

function snapshotTable(rows: SnapshotRow[], now: number): string {
  if (rows.length === 0) return '<p class="muted">No snapshots yet: run <code>permafrost backup</code>.</p>';
  const body = rows
    .slice(0, RECENT)
    .map(
      (s) =>
        `<tr><td><code>${esc(s.id)}</code></td><td>${s.future ? '<span class="bad">in the future</span>' : `${esc(age(now - snapshotTime(s)))} ago`}</td><td class="num">${esc(bytes(s.bytes))}</td>` +
        `<td class="num">${esc(duration(s.durationMs))}</td><td>${partsCell(s)}</td><td>${verifiedCell(s)}</td></tr>`,
    )
    .join('\n');
  return (
    `<table id="snapshots"><thead><tr><th>Snapshot</th><th>Age</th><th>Size</th><th>Duration</th><th>Parts</th><th>Verified</th></tr></thead><tbody>\n${body}\n</tbody></table>` +
    (rows.length > RECENT ? `<p class="muted">${rows.length - RECENT} older snapshots not shown.</p>` : '')
  );
}

function devicesSection(o: Overview, now: number): string {
  if (!o.replication && !o.replicationError) return '';
  if (!o.replication) return `<section><h2>Replication</h2><p class="bad">${esc(o.replicationError ?? '')}</p></section>`;
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
  const d = r.device;
  const self = !d
    ? ''
    : `<p id="this-device">This device: ${
        d.newest
          ? `newest complete snapshot <code>${esc(d.newest.id)}</code>, ${esc(age(d.newest.ageSeconds * 1000))} old, arrived ${esc(age(d.newest.lagSeconds * 1000))} after its commit`
          : '<span class="bad">no complete snapshot</span>'
      }${d.stale ? ' — <span class="bad">stale</span>' : ''}; disk used ${esc(bytes(d.disk.snapshotBytes + d.disk.versionsBytes))} ` +
      `(${esc(bytes(d.disk.snapshotBytes))} snapshots, ${esc(bytes(d.disk.versionsBytes))} in .stversions).</p>`;
  return (
    `<section><h2>Replication</h2>${r.reachable ? '' : `<p class="bad">Syncthing did not answer: ${esc(r.error ?? '')}</p>`}${self}` +
    `<table id="devices"><thead><tr><th>Device</th><th>State</th><th>Newest snapshot there</th><th>Lag</th><th>Seen</th></tr></thead><tbody>${rows}</tbody></table></section>`
  );
}

/** Disk free of vault.dir, and how fast the vault grows: the bytes of the snapshots of the last GROWTH_DAYS days, per day. */
function diskSection(o: Overview, now: number): string {
  const recent = o.snapshots.filter((s) => s.problem === null && !s.future && now - snapshotTime(s) <= GROWTH_DAYS * 86_400_000);
  const perDay = recent.reduce((n, s) => n + (s.bytes ?? 0), 0) / GROWTH_DAYS;
  const free = o.disk ? `${bytes(o.disk.free)} free of ${bytes(o.disk.total)}` : 'unknown';
  const days = o.disk && perDay > 0 ? `, room for about ${Math.floor(o.disk.free / perDay)} days at that rate` : '';
  return `<section><h2>Disk</h2><p id="disk">vault.dir: <strong>${esc(free)}</strong>; snapshots of the last ${GROWTH_DAYS} days add ${esc(bytes(Math.round(perDay)))} a day${esc(days)} (before pruning).</p></section>`;
}

function jobsSection(jobs: JobView[] | null, now: number, timeZone: string): string {
  if (!jobs || jobs.length === 0) return '';
  const rows = jobs
    .map((j) => {
      const next = j.running ? 'running now' : j.nextRun ? `in ${age(Date.parse(j.nextRun) - now)} (${when(j.nextRun, timeZone)})` : '—';
      const last = j.lastRun ? `${j.lastRun.outcome}, ${age(now - Date.parse(j.lastRun.finishedAt))} ago` : 'not yet';
      return `<tr><td>${esc(j.name)}</td><td><code>${esc(j.cron)}</code></td><td>${esc(next)}</td><td>${esc(last)}</td></tr>`;
    })
    .join('\n');
  return `<section><h2>Schedule</h2><table id="jobs"><thead><tr><th>Job</th><th>Cron</th><th>Next run</th><th>Last run</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

function problems(o: Overview, jobs: JobView[] | null): string[] {
  const out: string[] = [];
  const now = Date.parse(o.generatedAt);
  for (const [name, c] of Object.entries(o.alerts.conditions)) {
    if (c.failing) out.push(`${name} failing since ${when(c.since, o.timeZone)}: ${c.error ?? ''}`);
  }
  for (const j of jobs ?? []) if (j.lastRun?.outcome === 'failed') out.push(`last ${j.name} run failed: ${j.lastRun.error ?? ''}`);
  for (const p of o.replication?.problems ?? []) out.push(p);
  for (const s of o.snapshots) if (s.problem) out.push(`snapshot ${s.id} is damaged: ${s.problem}`);
  for (const s of o.snapshots) if (s.checked === 'failed') out.push(`snapshot ${s.id} failed its check: ${s.checkProblems.join('; ')}`);
  for (const s of o.snapshots.slice(0, RECENT))
    if (s.verified === 'failed') out.push(`snapshot ${s.id} failed verification: ${s.verifyReason ?? ''}`);
  for (const s of o.snapshots) {
    if (s.future)
      out.push(
        `snapshot ${s.id} is dated in the future (the clock ran ahead?): it is never taken as the newest; move it out of the vault once it is not needed`,
      );
  }
  const newest = o.snapshots.find((s) => s.problem === null && !s.future);
  for (const f of newest?.failed ?? []) {
    if (!f.optional) out.push(`the newest snapshot ${newest!.id} lacks its ${f.part} part: ${f.error}`);
  }
  if (!o.retention) out.push('no retention policy (vault.keep): every snapshot is kept until the disk is full');
  if (o.needsOffsite && newest) {
    if (!o.syncthingConfigured) out.push('no off-site copy: no syncthing section is configured, so every snapshot lives on this host only');
    else if (o.replication && !o.replication.devices.some((d) => d.newestSnapshotComplete)) {
      out.push(`no off-site copy of the newest snapshot ${newest.id}: no backup device holds it yet`);
    }
  }
  const lastGood = o.snapshots
    .map((s) => (s.verifiedAt && s.verified === 'verified' ? Date.parse(s.verifiedAt) : 0))
    .reduce((a, b) => Math.max(a, b), 0);
  if (newest && now - lastGood > VERIFY_STALE_DAYS * 86_400_000) {
    out.push(
      lastGood
        ? `no successful verify for ${age(now - lastGood)} (more than ${VERIFY_STALE_DAYS} days): run \`permafrost verify\`, and check schedule.verify runs`
        : 'no snapshot was ever verified: run `permafrost verify`, and check schedule.verify runs',
    );
  }
  return [...new Set(out)];
}

/** The status page: read-only, no script, styles from /style.css (the CSP allows nothing inline). */
export function renderPage(o: Overview, jobs: JobView[] | null): string {
  const now = Date.parse(o.generatedAt);
  const newest = o.snapshots.find((s) => s.problem === null && !s.future);
  const headline = newest
    ? `<p class="headline">Newest snapshot <code id="newest">${esc(newest.id)}</code>, <strong>${esc(age(now - snapshotTime(newest)))} old</strong>, ${esc(bytes(newest.bytes))}, ${verifiedCell(newest)}</p>`
    : '<p class="headline bad">No snapshot yet.</p>';
  const probs = problems(o, jobs);
  const probSection = probs.length
    ? `<section class="problems"><h2>Problems</h2><ul>${probs.map((p) => `<li>${esc(p)}</li>`).join('')}</ul></section>`
    : '<p class="ok">No problems.</p>';
  const chartRows = o.snapshots.filter((s) => s.problem === null).slice(0, CHART_POINTS);
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
<main>${probSection}
<section><h2>Recent snapshots</h2>${snapshotTable(o.snapshots, now)}</section>
<section class="charts"><h2>Over time</h2>${sizeChart}${durChart}</section>
${diskSection(o, now)}${devicesSection(o, now)}${jobsSection(jobs, now, o.timeZone)}
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
.charts svg { display: block; background: #fff; border: 1px solid #e4e7eb; margin-bottom: 12px; max-width: 100%; height: auto; }
footer { margin-top: 28px; font-size: 13px; } a { color: #2f6fde; }
`;

/** A small snowflake-blue square, so browsers do not ask for /favicon.ico. */
export const FAVICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2f6fde"/><path d="M8 3v10M3.7 5.5l8.6 5M3.7 10.5l8.6-5" stroke="#fff" stroke-width="1.6" stroke-linecap="round"/></svg>';
