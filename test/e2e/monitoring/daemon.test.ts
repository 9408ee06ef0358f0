import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeWorkspace, startCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import type { PgCluster } from '../../harness/postgres.js';
import { holdTableLock } from '../../harness/table-lock.js';
import { waitFor } from '../../harness/wait.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  ws?.cleanup();
});

interface LogLine {
  level: string;
  time: string;
  event?: string;
  job?: string;
  runId?: number;
  outcome?: string;
  error?: string;
  reason?: string;
  result?: { snapshot?: string };
  timezone?: string;
}

/** Starts `permafrost daemon` and parses its stdout as JSON lines as they arrive. */
function startDaemon(configFile: string) {
  const d = startCli(['--config', configFile, 'daemon', '--stop-grace', '10']);
  const lines: LogLine[] = [];
  let buf = '';
  d.child.stdout.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      // Every stdout line must be one JSON object: JSON.parse throws otherwise and fails the test.
      lines.push(JSON.parse(line) as LogLine);
    }
  });
  cleanups.push(async () => {
    if (d.child.exitCode === null && d.child.signalCode === null) {
      d.child.kill('SIGKILL');
      await d.result;
    }
  });
  return { ...d, lines, events: (e: string) => lines.filter((l) => l.event === e) };
}

/** The harness's table lock, released after the test unless the test releases it first. */
async function lockTable(pg: PgCluster, db: string, table: string): Promise<() => Promise<void>> {
  const lock = await holdTableLock(pg, db, table);
  cleanups.push(() => lock.release());
  return () => lock.release();
}

const snapshots = (vault: string): string[] =>
  readdirSync(vault)
    .filter((n) => /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/.test(n))
    .sort();
const partials = (vault: string): string[] => readdirSync(vault).filter((n) => n.startsWith('.partial-'));

/** Runs never overlap: in the log, each run.start is followed by its own end before the next start. */
function expectNoOverlap(lines: LogLine[]): void {
  let open: number | undefined;
  for (const l of lines) {
    if (l.event === 'run.start') {
      expect(open, `run ${l.runId} started while run ${open} was still going`).toBeUndefined();
      open = l.runId;
    } else if (l.event === 'run.finish' || l.event === 'run.fail' || l.event === 'run.abort') {
      expect(l.runId).toBe(open);
      open = undefined;
    }
  }
}

describe('daemon', () => {
  it('runs backup on a seconds schedule, logs JSON lines, and exits 0 on SIGTERM', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ extra: { schedule: { backup: '*/2 * * * * *', timezone: 'Europe/Berlin' } } });
    const d = startDaemon(ws.configFile);
    await waitFor('two finished runs', () => d.events('run.finish').length >= 2);
    d.child.kill('SIGTERM');
    const r = await d.result;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(d.lines[0]).toMatchObject({ event: 'daemon.start', level: 'info', timezone: 'Europe/Berlin' });
    expect(d.lines.at(-1)).toMatchObject({ event: 'daemon.stop', level: 'info' });
    const finished = d.events('run.finish');
    expect(finished.every((l) => l.outcome === 'ok' && l.job === 'backup')).toBe(true);
    // Every finished run left exactly its snapshot; nothing partial.
    expect(snapshots(ws.vault)).toEqual(finished.map((l) => l.result!.snapshot!).sort());
    expect(partials(ws.vault)).toEqual([]);
    expectNoOverlap(d.lines);
  });

  it('a run whose time comes while the previous one is still going waits and starts right after it (one waiting run)', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    ws.writeConfig({ extra: { schedule: { backup: '*/2 * * * * *' } } });
    const release = await lockTable(pg, 'source', 'follows');
    const d = startDaemon(ws.configFile);
    await waitFor('the first run to start', () => d.events('run.start').length === 1);
    await waitFor('a waiting run, then its time again', () => d.events('run.coalesced').length >= 1, 15_000);
    expect(d.events('run.start')).toHaveLength(1);
    expect(d.events('run.skipped')).toEqual([]);
    const queued = d.events('run.queued');
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ level: 'info', job: 'backup', runId: 2 });
    expect(queued[0]!.reason).toMatch(/^backup run 1 in progress since \d{4}-/);
    await release();
    await waitFor('the slow run and the waiting one to finish', () => d.events('run.finish').length >= 2);
    d.child.kill('SIGTERM');
    const r = await d.result;
    expect(r.code).toBe(0);
    expect(d.events('run.finish').slice(0, 2)).toMatchObject([
      { runId: 1, outcome: 'ok' },
      { runId: 2, outcome: 'ok' },
    ]);
    expectNoOverlap(d.lines);
    expect(snapshots(ws.vault)).toHaveLength(d.events('run.finish').length);
  });

  it('SIGTERM during a backup aborts it: no snapshot, no partial folder, no lock, exit 0', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    ws.writeConfig({ extra: { schedule: { backup: '*/2 * * * * *' } } });
    await lockTable(pg, 'source', 'follows');
    const d = startDaemon(ws.configFile);
    await waitFor('a run to start', () => d.events('run.start').length === 1);
    // The run is mid-dump: its partial folder exists and pg_dump waits for the table lock.
    await waitFor('the partial folder', () => partials(ws.vault).length === 1);
    const t0 = Date.now();
    d.child.kill('SIGTERM');
    const r = await d.result;
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(r.code).toBe(0);
    expect(d.events('run.abort')).toEqual([expect.objectContaining({ runId: 1, outcome: 'aborted', level: 'warn' })]);
    expect(d.events('run.finish')).toEqual([]);
    expect(snapshots(ws.vault)).toEqual([]);
    expect(partials(ws.vault)).toEqual([]);
    expect(existsSync(path.join(ws.vault, '.permafrost.lock'))).toBe(false);
  });

  it('SIGTERM while the capture waits on a locked Mastodon table (as during a migration) stops at once', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'source');
    ws.writeConfig({ extra: { schedule: { backup: '*/2 * * * * *' } } });
    // statuses is counted for the manifest before pg_dump starts: the run waits there, before any folder exists.
    await lockTable(pg, 'source', 'statuses');
    const d = startDaemon(ws.configFile);
    await waitFor('a run to start', () => d.events('run.start').length === 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(d.events('run.finish')).toEqual([]);
    const t0 = Date.now();
    d.child.kill('SIGTERM');
    const r = await d.result;
    // Well under the 10 s grace: the waiting query was cancelled, not abandoned.
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(0);
    expect(d.events('run.abandoned')).toEqual([]);
    expect(d.events('run.abort'), JSON.stringify(d.lines)).toEqual([
      expect.objectContaining({ runId: 1, error: 'Backup was stopped before it finished; no snapshot was written.' }),
    ]);
    expect(snapshots(ws.vault)).toEqual([]);
    expect(partials(ws.vault)).toEqual([]);
    expect(existsSync(path.join(ws.vault, '.permafrost.lock'))).toBe(false);
  });

  it('survives failing runs and keeps the schedule', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ database: { name: 'no_such_db' }, extra: { schedule: { backup: '* * * * * *' } } });
    const d = startDaemon(ws.configFile);
    await waitFor('three failed runs', () => d.events('run.fail').length >= 3);
    expect(d.child.exitCode).toBeNull();
    d.child.kill('SIGTERM');
    const r = await d.result;
    expect(r.code).toBe(0);
    const fail = d.events('run.fail')[0]!;
    expect(fail).toMatchObject({ level: 'error', job: 'backup', outcome: 'failed' });
    expect(fail.error).toMatch(/database "no_such_db" does not exist/);
    expect(snapshots(ws.vault)).toEqual([]);
    expect(partials(ws.vault)).toEqual([]);
  });

  it('refuses an invalid schedule before starting (exit 2, key named)', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ extra: { schedule: { backup: '61 * * * *' } } });
    const d = startCli(['--config', ws.configFile, 'daemon']);
    const r = await d.result;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/schedule\.backup: expected a cron pattern like "40 \* \* \* \*"/);
  });
});
