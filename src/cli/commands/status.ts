import { RemoteError } from '../../errors.js';
import type { VerifyStatus } from '../../recover/verify-state.js';
import type { ReplicationStatus } from '../../replicate/status.js';
import type { CheckStatus } from '../../vault/check.js';
import { examples, type RegisterCommand } from '../context.js';
import type { Io } from '../run.js';
import { formatAge, formatBytes } from '../../format.js';

/** Human or JSON rendering of a replication status (shared by `status` and `sync status`). */
export function renderStatus(
  io: Io,
  s: ReplicationStatus & {
    verify?: { status: VerifyStatus; checkedAt: string | null; reason: string | null } | null;
    check?: { status: CheckStatus; checkedAt: string | null; problems: string[] } | null;
  },
  json: boolean,
): void {
  if (json) return io.out(JSON.stringify(s, null, 2));
  const verified = !s.verify
    ? ''
    : s.verify.status === 'verified'
      ? ', verified ✓'
      : s.verify.status === 'failed'
        ? `, verify failed ✗ (${s.verify.reason ?? ''})`
        : ', never verified';
  io.out(
    s.snapshot
      ? `newest snapshot: ${s.snapshot.id} (${formatAge(s.snapshot.ageSeconds * 1000)} old)${verified}`
      : 'newest snapshot: none yet',
  );
  if (s.check) {
    const c = s.check;
    io.out(
      `check of the newest snapshot: ${c.status === 'ok' ? '✓' : c.status === 'failed' ? `✗ ${c.problems.join('; ')}` : 'never run (permafrost check)'}${c.checkedAt ? ` at ${c.checkedAt}` : ''}`,
    );
  }
  if (s.device) {
    const n = s.device.newest;
    io.out(
      n
        ? `on this device: ${n.id} complete since ${n.arrivedAt} (lag ${formatAge(n.lagSeconds * 1000)} after its commit), ${formatAge(n.ageSeconds * 1000)} old`
        : 'on this device: no complete snapshot',
    );
    io.out(
      `disk used: ${formatBytes(s.device.disk.snapshotBytes + s.device.disk.versionsBytes)} (${formatBytes(s.device.disk.snapshotBytes)} snapshots, ${formatBytes(s.device.disk.versionsBytes)} in .stversions)`,
    );
  }
  if (!s.syncthing) {
    io.out('syncthing: not configured');
  } else if (!s.reachable) {
    io.out(`syncthing: unreachable (${s.error ?? 'unknown error'})`);
  } else {
    io.out(`syncthing: ${s.role}, device ${s.myID?.slice(0, 7) ?? '?'}`);
    for (const f of s.localFolders) {
      const notes = [
        f.paused ? 'PAUSED' : '',
        f.needBytes ? `${formatBytes(f.needBytes)} to receive` : '',
        f.receiveOnlyChangedFiles ? `${f.receiveOnlyChangedFiles} locally changed` : '',
        f.errors ? `${f.errors} error(s)` : '',
      ].filter(Boolean);
      io.out(`  folder ${f.folder}: ${f.state}${notes.length ? `, ${notes.join(', ')}` : ''}`);
    }
    const when = (iso: string | null): string => (iso ? `${formatAge(Date.now() - Date.parse(iso))} ago` : 'never');
    for (const d of s.devices) {
      const conn = d.connected ? `connected since ${when(d.since)}` : `not connected (last seen ${when(d.lastSeen)})`;
      io.out(`device ${d.name} (${d.id.slice(0, 7)}): ${conn}${d.stale ? ' — STALE' : ''}`);
      if (s.role === 'receiver') continue;
      for (const f of d.folders)
        io.out(`  ${f.folder}: ${f.completion.toFixed(1)}%${f.needBytes ? `, ${formatBytes(f.needBytes)} to send` : ''}`);
      const snap = !s.snapshot
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
  // When not ok, the command's error sentence lists the problems instead.
  if (s.ok) for (const p of s.problems) io.out(`problem: ${p}`);
}

/** Non-zero exit for cron and monitoring: one sentence listing what is wrong. */
export function statusFailure(s: ReplicationStatus): RemoteError {
  return new RemoteError(
    `${s.syncthing ? 'Replication' : 'The snapshots'} need${s.syncthing ? 's' : ''} attention: ${s.problems.map((p) => p.replace(/\.$/, '')).join('; ')}.`,
  );
}

export const registerStatus: RegisterCommand = (program, { io, config }) => {
  program
    .command('status')
    .description(
      'The newest snapshot and its age, and for each Syncthing device: connection, completion, bytes to send, whether it has the newest snapshot, and lag (commit to arrival). ' +
        'On a backup device: the newest snapshot held complete here, when it arrived, and the disk its copies use. ' +
        'Exits 1, saying what to do, when Syncthing is unreachable, a managed folder is paused, has errors or (on a device) locally changed files, ' +
        'a device lacks a snapshot older than syncthing.staleAfter (default 2h), or the newest snapshot is older than that (also without a syncthing section).',
    )
    .option('--json', 'print the status as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost status',
        'permafrost status --json | jq ".devices[] | {name, lagSeconds}"',
        'permafrost status || echo "replication is behind"',
        'permafrost status --json | jq ".device.disk"            # on a backup device',
      ]),
    )
    .action(async (opts: { json?: boolean }) => {
      const cfg = config();
      const [{ replicationStatus }, { readVerifyState, verifyStatus }, { checkStatus, readCheckState }, { listSnapshots }] =
        await Promise.all([
          import('../../replicate/status.js'),
          import('../../recover/verify-state.js'),
          import('../../vault/check.js'),
          import('../../vault/store.js'),
        ]);
      const status = await replicationStatus(cfg);
      const v = status.snapshot ? (await readVerifyState(cfg.vault.dir))[status.snapshot.id] : undefined;
      const verify = status.snapshot ? { status: verifyStatus(v), checkedAt: v?.checkedAt ?? null, reason: v?.reason ?? null } : null;
      const c = status.snapshot ? (await readCheckState(cfg.vault.dir)).snapshots[status.snapshot.id] : undefined;
      const check = status.snapshot ? { status: checkStatus(c), checkedAt: c?.checkedAt ?? null, problems: c?.problems ?? [] } : null;
      renderStatus(io, { ...status, verify, check }, Boolean(opts.json));
      for (const s of (await listSnapshots(cfg.vault.dir)).filter((x) => x.future)) {
        io.err(
          `warning: snapshot ${s.id} is dated in the future (the clock ran ahead?): it is not counted as the newest; move it out of ${cfg.vault.dir} once it is not needed.`,
        );
      }
      if (!status.ok) throw statusFailure(status);
    });
};
