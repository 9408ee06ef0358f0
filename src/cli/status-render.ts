/** How `status` and `sync status` show the one judgement of health (src/ops/overview.ts); loaded only when they run. */
import { RemoteError } from '../errors.js';
import { isHealthy, problemSentence, type Overview, type Problem, type ReplicationView } from '../ops/overview.js';
import type { ReplicationStatus } from '../replicate/status.js';
import type { Io } from './run.js';
import { formatAge, formatBytes } from '../format.js';

/** Syncthing's side of a status: the local folders and each device (shared by `status` and `sync status`). */
function renderSyncthing(
  io: Io,
  s: { syncthing: boolean; role: 'source' | 'receiver'; replication: ReplicationView | null; error: string | null; hasSnapshot: boolean },
  now: number,
): void {
  const r = s.replication;
  if (!s.syncthing) return io.out('syncthing: not configured');
  if (!r || !r.reachable) return io.out(`syncthing: unreachable (${r?.error ?? s.error ?? 'unknown error'})`);
  io.out(`syncthing: ${s.role}, device ${r.myID?.slice(0, 7) ?? '?'}`);
  for (const f of r.localFolders) {
    const notes = [
      f.paused ? 'PAUSED' : '',
      f.needBytes ? `${formatBytes(f.needBytes)} to receive` : '',
      f.receiveOnlyChangedFiles ? `${f.receiveOnlyChangedFiles} locally changed` : '',
      f.errors ? `${f.errors} error(s)` : '',
    ].filter(Boolean);
    io.out(`  folder ${f.folder}: ${f.state}${notes.length ? `, ${notes.join(', ')}` : ''}`);
  }
  const when = (iso: string | null): string => (iso ? `${formatAge(now - Date.parse(iso))} ago` : 'never');
  for (const d of r.devices) {
    const conn = d.connected ? `connected since ${when(d.since)}` : `not connected (last seen ${when(d.lastSeen)})`;
    io.out(`device ${d.name} (${d.id.slice(0, 7)}): ${conn}${d.stale ? ' — STALE' : ''}`);
    if (s.role === 'receiver') continue;
    for (const f of d.folders)
      io.out(`  ${f.folder}: ${f.completion.toFixed(1)}%${f.needBytes ? `, ${formatBytes(f.needBytes)} to send` : ''}`);
    const snap = !s.hasSnapshot
      ? 'none yet'
      : d.newestSnapshotComplete === true
        ? 'fully on the device'
        : d.newestSnapshotComplete === false
          ? 'not yet on the device'
          : 'unknown (device offline)';
    io.out(
      `  newest snapshot: ${snap}${d.newestOnDevice && d.newestSnapshotComplete !== true ? `; newest there: ${d.newestOnDevice}` : ''}`,
    );
    if (d.lagSeconds !== null) io.out(`  lag: ${d.lagPending ? 'waiting for ' : ''}${formatAge(d.lagSeconds * 1000)}`);
    if (d.problem) io.out(`  problem: ${d.problem}`);
  }
}

/** A backup device about itself: its newest complete snapshot, when it arrived, and the disk its copies use. */
function renderDevice(io: Io, device: NonNullable<Overview['device']>): void {
  const n = device.newest;
  io.out(
    n
      ? `on this device: ${n.id} complete since ${n.arrivedAt} (lag ${formatAge(n.lagSeconds * 1000)} after its commit), ${formatAge(n.ageSeconds * 1000)} old`
      : 'on this device: no complete snapshot',
  );
  io.out(
    `disk used: ${formatBytes(device.disk.snapshotBytes + device.disk.versionsBytes)} (${formatBytes(device.disk.snapshotBytes)} snapshots, ${formatBytes(device.disk.versionsBytes)} in .stversions)`,
  );
}

/** Human or JSON rendering of `sync status`: replication alone, judged by src/replicate/status.ts. */
export function renderStatus(io: Io, s: ReplicationStatus, json: boolean): void {
  if (json) return io.out(JSON.stringify(s, null, 2));
  io.out(s.snapshot ? `newest snapshot: ${s.snapshot.id} (${formatAge(s.snapshot.ageSeconds * 1000)} old)` : 'newest snapshot: none yet');
  if (s.device) renderDevice(io, s.device);
  renderSyncthing(
    io,
    { syncthing: s.syncthing, role: s.role, replication: s, error: s.error, hasSnapshot: s.snapshot !== null },
    Date.now(),
  );
}

/** Non-zero exit for cron and monitoring: one sentence listing what is wrong. */
export function statusFailure(s: ReplicationStatus): RemoteError {
  return new RemoteError(
    `${s.syncthing ? 'Replication' : 'The snapshots'} need${s.syncthing ? 's' : ''} attention: ${s.problems.map((p) => p.replace(/\.$/, '')).join('; ')}.`,
  );
}

const REPLICATION_CODES = new Set<Problem['code']>(['syncthing', 'replication', 'device-stale']);

/** `status`'s failure: every problem of severity error, with its fix, in one sentence (exit 1). */
export function healthFailure(problems: readonly Problem[]): RemoteError {
  const errors = problems.filter((p) => p.severity === 'error');
  const replication = errors.every((p) => REPLICATION_CODES.has(p.code));
  return new RemoteError(
    `${replication ? 'Replication needs' : 'The snapshots need'} attention: ${errors.map((p) => problemSentence(p)).join('; ')}.`,
  );
}

/** `status --json`: the overview's figures for the newest snapshot and replication, and the verdict. */
export function statusJson(o: Overview, problems: readonly Problem[]): unknown {
  const newest = o.snapshots.find((s) => s.id === o.newest);
  return {
    role: o.role,
    syncthing: o.syncthingConfigured,
    reachable: o.replication?.reachable ?? false,
    error: o.replication?.error ?? o.replicationError,
    myID: o.replication?.myID ?? null,
    snapshot: newest ? { id: newest.id, finishedAt: newest.finishedAt, ageSeconds: newest.ageSeconds } : null,
    verify: newest ? { status: newest.verified, checkedAt: newest.verifiedAt, reason: newest.verifyReason } : null,
    check: newest ? { status: newest.checked, checkedAt: newest.checkedAt, problems: newest.checkProblems } : null,
    lastBackup: o.lastBackup,
    lastVerify: o.lastVerify,
    lastCheck: o.lastCheck,
    localFolders: o.replication?.localFolders ?? [],
    device: o.device,
    devices: o.replication?.devices ?? [],
    offsite: o.offsite,
    staleAfterSeconds: o.staleAfterSeconds,
    schedule: o.schedule,
    disk: o.disk,
    growth: o.growth,
    /** The verdict: healthy (= ok) when no problem of severity error; problems/warnings as sentences, issues structured. */
    healthy: isHealthy(problems),
    ok: isHealthy(problems),
    problems: problems.filter((p) => p.severity === 'error').map(problemSentence),
    warnings: problems.filter((p) => p.severity === 'warning').map(problemSentence),
    issues: problems,
  };
}

function verifyNote(s: Overview['snapshots'][number]): string {
  if (s.verified === 'verified') return ', verified ✓';
  if (s.verified === 'failed') return `, verify failed ✗ (${s.verifyReason ?? ''})`;
  return ', never verified';
}

/** Each offsite target: what the bucket holds, its lag, what it lacks, its last push (the verdict's words for a failed or stale one). */
function renderOffsite(io: Io, targets: Overview['offsite'], problems: readonly Problem[], now: number): void {
  for (const t of targets) {
    const bad = problems.find((p) => (p.code === 'offsite-failed' || p.code === 'offsite-stale') && p.subject === t.name);
    const state = bad ? (bad.code === 'offsite-failed' ? ' — FAILED' : ' — STALE') : '';
    const n = t.newestComplete;
    io.out(
      `${t.describe}${state}: ${n ? `newest ${n.id}` : 'no snapshot yet'}, ${formatBytes(t.bytes)} in ${t.objects} objects` +
        (t.lagSeconds === null ? '' : `, lag ${formatAge(t.lagSeconds * 1000)}${t.lagPending ? ' (waiting)' : ''}`) +
        (t.missing > 0 ? `, lacks ${t.missing} snapshot${t.missing > 1 ? 's' : ''}` : ''),
    );
    if (t.lastAttemptAt)
      io.out(
        `  last push ${formatAge(now - Date.parse(t.lastAttemptAt))} ago: ${t.lastError === null ? 'ok' : `failed: ${t.lastError}`}` +
          (t.lockedDeletes > 0 ? `; ${t.lockedDeletes} deletes refused by Object Lock` : ''),
      );
  }
}

/** The figures a human reads; the verdict's errors end the command (stderr, exit 1), its warnings are printed here. */
export function renderHuman(io: Io, o: Overview, problems: readonly Problem[]): void {
  const now = Date.parse(o.generatedAt);
  const newest = o.snapshots.find((s) => s.id === o.newest);
  io.out(
    newest
      ? `newest snapshot: ${newest.id} (${formatAge(newest.ageSeconds * 1000)} old)${verifyNote(newest)}`
      : 'newest snapshot: none yet',
  );
  if (newest) {
    const c = newest.checked;
    io.out(
      `check of the newest snapshot: ${c === 'ok' ? '✓' : c === 'failed' ? `✗ ${newest.checkProblems.join('; ')}` : 'never run (permafrost check)'}${newest.checkedAt ? ` at ${newest.checkedAt}` : ''}`,
    );
  }
  const b = o.lastBackup;
  if (o.role === 'source')
    io.out(
      b
        ? `last backup: ${b.outcome}, ${formatAge(now - Date.parse(b.finishedAt))} ago${b.snapshot ? ` (${b.snapshot})` : ''}${b.outcome === 'failed' && b.error ? `: ${b.error}` : ''}`
        : 'last backup: none recorded',
    );
  if (o.device) renderDevice(io, o.device);
  renderSyncthing(
    io,
    {
      syncthing: o.syncthingConfigured,
      role: o.role,
      replication: o.replication,
      error: o.replicationError,
      hasSnapshot: newest !== undefined,
    },
    now,
  );
  renderOffsite(io, o.offsite, problems, now);
  for (const j of o.schedule)
    io.out(`next ${j.name}: ${j.nextRun ? `in ${formatAge(Date.parse(j.nextRun) - now)} (${j.nextRun}, ${j.cron})` : 'not scheduled'}`);
  if (o.disk) {
    const g = o.growth;
    const growth = g.perDayBytes !== null ? `; grows ${formatBytes(g.perDayBytes)} a day (measured over the last ${g.basis})` : '';
    const left = g.daysLeft !== null ? `, room for about ${Math.floor(g.daysLeft)} days (before pruning)` : '';
    io.out(`disk: ${formatBytes(o.disk.free)} free of ${formatBytes(o.disk.total)}${growth}${left}`);
  }
  for (const p of problems) if (p.severity === 'warning') io.out(`warning: ${problemSentence(p)}`);
}
