import { rename, writeFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { HttpError } from '../net/http.js';
import { readJsonState } from '../vault/state-file.js';
import { listSnapshots, type SnapshotEntry } from '../vault/store.js';
import { MANIFEST_NAME } from '../vault/manifest.js';
import {
  completionSchema,
  connectionsSchema,
  deviceStatsSchema,
  eventsSchema,
  fileInfoSchema,
  folderStatusSchema,
  stFolderSchema,
  systemStatusSchema,
} from './api.js';
import { clientFor, type SyncthingClient } from './client.js';
import { DEFAULT_STALE_AFTER_S } from '../config/schema-replicate.js';
import { deviceDiskUse, deviceFreshness, finishedAt, type DeviceFreshness } from './device.js';
import { normalizeDeviceId } from './device-id.js';
import { MEDIA_FOLDER, SNAPSHOTS_FOLDER } from './plan.js';
import { openVault, VAULT_NAMES } from '../vault/layout.js';

/**
 * When each snapshot was first seen complete on each device, kept beside the snapshots (ignored
 * by Syncthing through the `/.permafrost*` pattern). Syncthing does not remember when a remote
 * got a file, so this is how lag is known, and how an offline device's last snapshot is known.
 */
export const STATE_FILE = VAULT_NAMES.state.replication;

const replicationStateSchema = z.object({
  /** deviceID → snapshot id → ISO time first seen complete there. */
  seen: z.record(z.string(), z.record(z.string(), z.string())),
});
type ReplicationState = z.infer<typeof replicationStateSchema>;

export interface FolderCompletion {
  folder: string;
  completion: number;
  needBytes: number;
  needItems: number;
}

export interface DeviceStatus {
  name: string;
  id: string;
  connected: boolean;
  /** When the current connection started. */
  since: string | null;
  address: string | null;
  lastSeen: string | null;
  folders: FolderCompletion[];
  bytesToSend: number;
  /** Whether the newest snapshot is fully on the device; null: unknown (device offline, never seen). */
  newestSnapshotComplete: boolean | null;
  /** Newest snapshot known to be fully on the device. */
  newestOnDevice: string | null;
  /**
   * Seconds from the newest snapshot's commit (manifest finishedAt) to the moment the device held it
   * complete (from Syncthing's events; first seen by status when they no longer reach back), or waiting so far.
   */
  lagSeconds: number | null;
  lagPending: boolean;
  stale: boolean;
  problem: string | null;
}

export interface ReplicationStatus {
  role: 'source' | 'receiver';
  /** Whether the config has a syncthing section; without one, only the newest snapshot and its age are known. */
  syncthing: boolean;
  reachable: boolean;
  /** Why Syncthing could not be asked, when it could not. */
  error: string | null;
  myID: string | null;
  snapshot: { id: string; finishedAt: string; ageSeconds: number } | null;
  /** The managed folders' local state (paused, errors; on a receiver also what it still needs and local changes). */
  localFolders: Array<{
    folder: string;
    state: string;
    paused: boolean;
    needBytes: number;
    receiveOnlyChangedFiles: number;
    errors: number;
  }>;
  /** Receiver only: the newest snapshot held complete here, when it arrived, and the disk the copies use. */
  device: (DeviceFreshness & { disk: { snapshotBytes: number; versionsBytes: number } }) | null;
  devices: DeviceStatus[];
  staleAfterSeconds: number;
  /** False when Syncthing is unreachable or any device lacks a snapshot older than staleAfter. */
  ok: boolean;
  /** Each problem as one sentence: what is wrong, then what to do. */
  problems: string[];
  /** The same problems, structured for the overview's judgement (src/ops/overview.ts). */
  issues: ReplicationIssue[];
}

/** One replication problem: what is wrong and what fixes it (problems[] joins them with ': '). */
export interface ReplicationIssue {
  code: 'no-snapshot' | 'snapshot-stale' | 'device-freshness' | 'syncthing-unreachable' | 'folder' | 'device-folder' | 'device-stale';
  /** The device it is about (device-folder, device-stale). */
  device: string | null;
  message: string;
  fix: string | null;
}

function snapshotFiles(s: SnapshotEntry): string[] {
  return [MANIFEST_NAME, ...(s.manifest?.files.map((f) => f.name) ?? [])].map((n) => `${s.id}/${n}`);
}

async function readState(vaultDir: string): Promise<ReplicationState> {
  try {
    return await readJsonState(openVault(vaultDir).stateFile('replication'), replicationStateSchema, { seen: {} });
  } catch {
    // Unreadable (permissions): only the lag figures are lost.
    return { seen: {} };
  }
}

async function writeState(vaultDir: string, state: ReplicationState, keep: Set<string>): Promise<void> {
  for (const byId of Object.values(state.seen)) for (const id of Object.keys(byId)) if (!keep.has(id)) delete byId[id];
  const file = openVault(vaultDir).stateFile('replication');
  try {
    await writeFile(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
    await rename(`${file}.tmp`, file);
  } catch {
    // Status is read-only at heart: an unwritable vault only loses the lag figure.
  }
}

/** Whether the device holds the current global version of every file of the snapshot (connected devices only). */
async function snapshotOnDevice(client: SyncthingClient, s: SnapshotEntry, deviceID: string): Promise<boolean> {
  for (const file of snapshotFiles(s)) {
    let info: z.infer<typeof fileInfoSchema>;
    try {
      info = await client.get(`/rest/db/file?folder=${SNAPSHOTS_FOLDER}&file=${encodeURIComponent(file)}`, fileInfoSchema);
    } catch (err) {
      // 404: Syncthing has not scanned it yet, so no device has it.
      if (err instanceof HttpError && err.status === 404) return false;
      throw err;
    }
    if (!(info.availability ?? []).some((a) => a.id === deviceID)) return false;
  }
  return true;
}

/**
 * When `deviceID` got the snapshot complete, from Syncthing's event buffer: the last index update
 * the device sent for the folder after this Syncthing announced the snapshot's files and before it
 * announced anything else. Null when the buffer no longer reaches back that far.
 */
async function arrivalFromEvents(client: SyncthingClient, s: SnapshotEntry, deviceID: string): Promise<string | null> {
  const files = new Set(snapshotFiles(s));
  const events = await client.get('/rest/events?since=0&timeout=0', eventsSchema);
  let announced = false;
  let arrival: string | null = null;
  for (const e of events) {
    if (e.data?.folder !== SNAPSHOTS_FOLDER) continue;
    if (e.type === 'LocalIndexUpdated') {
      const ours = (e.data.filenames ?? []).some((f) => files.has(f));
      if (announced && !ours) break;
      announced ||= ours;
    } else if (announced && e.type === 'RemoteIndexUpdated' && e.data.device === deviceID) {
      arrival = e.time;
    }
  }
  return arrival && !Number.isNaN(Date.parse(arrival)) ? new Date(Date.parse(arrival)).toISOString() : null;
}

/** Replication state of every configured device (source) or of the local replicas (receiver). */
export async function replicationStatus(config: Config, opts: { now?: Date } = {}): Promise<ReplicationStatus> {
  const st = config.syncthing;
  const now = opts.now ?? new Date();
  const snaps = await listSnapshots(config.vault.dir);
  // A snapshot dated in the future would look newest (and never age) forever.
  const newest = snaps.find((s) => !s.future);
  const staleAfter = st?.staleAfter ?? DEFAULT_STALE_AFTER_S;
  const result: ReplicationStatus = {
    role: config.role,
    syncthing: st !== undefined,
    reachable: false,
    error: null,
    myID: null,
    snapshot: newest
      ? {
          id: newest.id,
          finishedAt: finishedAt(newest).toISOString(),
          ageSeconds: Math.round((now.getTime() - finishedAt(newest).getTime()) / 1000),
        }
      : null,
    localFolders: [],
    device: null,
    devices: [],
    staleAfterSeconds: staleAfter,
    ok: true,
    problems: [],
    issues: [],
  };
  const problem = (code: ReplicationIssue['code'], message: string, fix: string | null, device: string | null = null): void => {
    result.ok = false;
    result.problems.push(fix ? `${message}: ${fix}` : message);
    result.issues.push({ code, device, message, fix });
  };
  if (config.role === 'receiver') {
    const fresh = await deviceFreshness(config, now);
    result.device = { ...fresh, disk: await deviceDiskUse(config.vault.dir) };
    if (fresh.problem) problem('device-freshness', fresh.problem, null);
  }
  if (!st) {
    // Without Syncthing the newest snapshot's age is all there is to judge: too old means backups stopped.
    if (config.role === 'source') {
      if (!result.snapshot) problem('no-snapshot', 'there is no snapshot yet', 'run `permafrost backup`');
      else if (result.snapshot.ageSeconds > staleAfter)
        problem(
          'snapshot-stale',
          `the newest snapshot, ${result.snapshot.id}, is older than ${staleAfter}s`,
          'check that backups run (permafrost daemon, or its timer)',
        );
    }
    return result;
  }
  const client = clientFor(config, { timeoutMs: 15_000 });
  let connections: z.infer<typeof connectionsSchema>['connections'];
  let stats: z.infer<typeof deviceStatsSchema>;
  try {
    result.myID = (await client.get('/rest/system/status', systemStatusSchema)).myID;
    connections = (await client.get('/rest/system/connections', connectionsSchema)).connections;
    stats = await client.get('/rest/stats/device', deviceStatsSchema);
    result.reachable = true;
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    result.error = err.message;
    problem('syncthing-unreachable', `Syncthing: ${err.message}`, null);
    return result;
  }
  const managed = (await client.get('/rest/config/folders', z.array(stFolderSchema))).filter(
    (f) => f.id === SNAPSHOTS_FOLDER || f.id === MEDIA_FOLDER,
  );
  const folders = managed.map((f) => f.id);
  if (!folders.includes(SNAPSHOTS_FOLDER))
    problem('folder', `Syncthing has no ${SNAPSHOTS_FOLDER} folder yet`, 'run `permafrost sync apply`');
  const state = await readState(config.vault.dir);

  const side = st.role === 'receiver' ? 'this backup device' : 'this server';
  for (const f of managed) {
    const s = await client.get(`/rest/db/status?folder=${f.id}`, folderStatusSchema);
    const changed = st.role === 'receiver' ? (s.receiveOnlyChangedFiles ?? 0) : 0;
    const errors = (s.errors ?? 0) + (s.pullErrors ?? 0);
    result.localFolders.push({
      folder: f.id,
      state: s.state,
      paused: f.paused,
      needBytes: s.needBytes,
      receiveOnlyChangedFiles: changed,
      errors,
    });
    if (f.paused)
      problem(
        'folder',
        `folder ${f.id} is paused on ${side}, so nothing ${st.role === 'receiver' ? 'arrives' : 'is sent'}`,
        'run `permafrost sync apply` here to resume it',
      );
    if (changed > 0)
      problem(
        'folder',
        `folder ${f.id} has ${changed} locally changed file(s) on ${side}, which hide the server's copies`,
        'run `permafrost sync revert` here',
      );
    if (errors > 0 || s.error)
      problem(
        'folder',
        `folder ${f.id} has errors on ${side} (${s.error || `${errors} file(s) failed`})`,
        "see Syncthing's log or GUI for the failing files and fix their permissions or disk space",
      );
  }

  const keep = new Set(snaps.map((s) => s.id));
  for (const d of st.devices) {
    const id = normalizeDeviceId(d.id) ?? d.id;
    const conn = connections[id];
    const lastSeen = stats[id]?.lastSeen;
    const dev: DeviceStatus = {
      name: d.name,
      id,
      connected: Boolean(conn?.connected),
      since: conn?.connected && conn.startedAt ? conn.startedAt : null,
      address: conn?.connected ? (conn.address ?? null) : null,
      lastSeen: lastSeen && !lastSeen.startsWith('1970') ? lastSeen : null,
      folders: [],
      bytesToSend: 0,
      newestSnapshotComplete: null,
      newestOnDevice: null,
      lagSeconds: null,
      lagPending: false,
      stale: false,
      problem: null,
    };
    result.devices.push(dev);
    if (st.role === 'receiver') continue;
    for (const folder of folders) {
      const c = await client.get(`/rest/db/completion?folder=${folder}&device=${id}`, completionSchema);
      // Syncthing ≥ 1.23 says when the device paused or does not share the folder: then what it lacks is its side's doing.
      if (c.remoteState === 'paused' || c.remoteState === 'notSharing') {
        problem(
          'device-folder',
          `device ${d.name} ${c.remoteState === 'paused' ? 'has paused' : 'does not share'} folder ${folder}, so it receives nothing`,
          'run `permafrost sync apply` on that device',
          d.name,
        );
      }
      dev.folders.push({ folder, completion: c.completion, needBytes: c.needBytes, needItems: c.needItems + (c.needDeletes ?? 0) });
      dev.bytesToSend += c.needBytes;
    }
    const seen = (state.seen[id] ??= {});
    // Newest first: stop at the first snapshot the device has (older ones no longer matter).
    let oldestMissing: SnapshotEntry | null = null;
    for (const s of snaps) {
      let complete = seen[s.id] !== undefined;
      if (!complete && dev.connected) {
        try {
          complete = await snapshotOnDevice(client, s, id);
        } catch (err) {
          dev.problem = errorMessage(err);
          break;
        }
        // The arrival itself, from Syncthing's events; when they no longer reach back, now (an upper bound).
        if (complete) seen[s.id] = (await arrivalFromEvents(client, s, id).catch(() => null)) ?? now.toISOString();
      }
      if (complete) {
        dev.newestOnDevice = s.id;
        break;
      }
      oldestMissing = s;
    }
    if (newest) {
      if (dev.newestOnDevice === newest.id) {
        dev.newestSnapshotComplete = true;
        dev.lagSeconds = Math.max(0, Math.round((Date.parse(seen[newest.id]!) - finishedAt(newest).getTime()) / 1000));
      } else {
        dev.newestSnapshotComplete = dev.connected ? false : null;
        dev.lagPending = true;
        dev.lagSeconds = Math.round((now.getTime() - finishedAt(newest).getTime()) / 1000);
      }
    }
    if (oldestMissing && (now.getTime() - finishedAt(oldestMissing).getTime()) / 1000 > st.staleAfter) {
      dev.stale = true;
      const since = dev.newestOnDevice ? `its newest snapshot is ${dev.newestOnDevice}` : 'it has no snapshot';
      problem(
        'device-stale',
        `device ${d.name} lacks snapshot ${oldestMissing.id}, older than ${st.staleAfter}s (${since}${dev.connected ? '' : '; it is not connected'})`,
        null,
        d.name,
      );
    }
  }
  if (st.role === 'source') await writeState(config.vault.dir, state, keep);
  return result;
}
