import { rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { HttpError } from '../net/http.js';
import { readJsonState } from '../vault/state-file.js';
import { listSnapshots, type SnapshotEntry } from '../vault/store.js';
import { MANIFEST_NAME } from '../vault/manifest.js';
import { completionSchema, connectionsSchema, deviceStatsSchema, fileInfoSchema, folderStatusSchema, systemStatusSchema } from './api.js';
import { clientFor, requireSyncthing, type SyncthingClient } from './client.js';
import { normalizeDeviceId } from './device-id.js';
import { MEDIA_FOLDER, SNAPSHOTS_FOLDER } from './plan.js';

/**
 * When each snapshot was first seen complete on each device, kept beside the snapshots (ignored
 * by Syncthing through the `/.permafrost*` pattern). Syncthing does not remember when a remote
 * got a file, so this is how lag is known, and how an offline device's last snapshot is known.
 */
export const STATE_FILE = '.permafrost-replication.json';

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
  /** Seconds from the newest snapshot's finish to its arrival (an upper bound: first seen), or waiting so far. */
  lagSeconds: number | null;
  lagPending: boolean;
  stale: boolean;
  problem: string | null;
}

export interface ReplicationStatus {
  role: 'source' | 'receiver';
  reachable: boolean;
  /** Why Syncthing could not be asked, when it could not. */
  error: string | null;
  myID: string | null;
  snapshot: { id: string; finishedAt: string; ageSeconds: number } | null;
  /** Receiver only: the managed folders' local state. */
  localFolders: Array<{ folder: string; state: string; needBytes: number; receiveOnlyChangedFiles: number }>;
  devices: DeviceStatus[];
  staleAfterSeconds: number;
  /** False when Syncthing is unreachable or any device lacks a snapshot older than staleAfter. */
  ok: boolean;
  problems: string[];
}

function finishedAt(s: SnapshotEntry): Date {
  const t = s.manifest?.finishedAt ? Date.parse(s.manifest.finishedAt) : Number.NaN;
  return Number.isNaN(t) ? s.time : new Date(t);
}

function snapshotFiles(s: SnapshotEntry): string[] {
  return [MANIFEST_NAME, ...(s.manifest?.files.map((f) => f.name) ?? [])].map((n) => `${s.id}/${n}`);
}

async function readState(vaultDir: string): Promise<ReplicationState> {
  try {
    return await readJsonState(path.join(vaultDir, STATE_FILE), replicationStateSchema, { seen: {} });
  } catch {
    // Unreadable (permissions): only the lag figures are lost.
    return { seen: {} };
  }
}

async function writeState(vaultDir: string, state: ReplicationState, keep: Set<string>): Promise<void> {
  for (const byId of Object.values(state.seen)) for (const id of Object.keys(byId)) if (!keep.has(id)) delete byId[id];
  const file = path.join(vaultDir, STATE_FILE);
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

/** Receiver side: every file of the manifest present with its size. */
async function snapshotPresentLocally(s: SnapshotEntry): Promise<boolean> {
  if (!s.manifest) return false;
  for (const f of s.manifest.files) {
    try {
      if ((await stat(path.join(s.dir, f.name))).size !== f.bytes) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Replication state of every configured device (source) or of the local replicas (receiver). */
export async function replicationStatus(config: Config, opts: { now?: Date } = {}): Promise<ReplicationStatus> {
  const st = requireSyncthing(config);
  const now = opts.now ?? new Date();
  const snaps = await listSnapshots(config.vault.dir);
  // A snapshot dated in the future would look newest (and never age) forever.
  const newest = snaps.find((s) => !s.future);
  const result: ReplicationStatus = {
    role: st.role,
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
    devices: [],
    staleAfterSeconds: st.staleAfter,
    ok: true,
    problems: [],
  };
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
    result.ok = false;
    result.problems.push(`Syncthing: ${err.message}`);
    return result;
  }
  const folders = (await client.get('/rest/config/folders', z.array(z.looseObject({ id: z.string() }))))
    .map((f) => f.id)
    .filter((id) => id === SNAPSHOTS_FOLDER || id === MEDIA_FOLDER);
  if (!folders.includes(SNAPSHOTS_FOLDER)) {
    result.ok = false;
    result.problems.push(`Syncthing has no ${SNAPSHOTS_FOLDER} folder yet: run \`permafrost sync apply\`.`);
  }
  const state = await readState(config.vault.dir);

  if (st.role === 'receiver') {
    for (const folder of folders) {
      const s = await client.get(`/rest/db/status?folder=${folder}`, folderStatusSchema);
      result.localFolders.push({ folder, state: s.state, needBytes: s.needBytes, receiveOnlyChangedFiles: s.receiveOnlyChangedFiles ?? 0 });
      if ((s.receiveOnlyChangedFiles ?? 0) > 0) {
        result.problems.push(
          `${folder} has ${s.receiveOnlyChangedFiles} locally changed file(s) on this receiver; revert them in Syncthing ("Revert Local Changes").`,
        );
      }
    }
    const complete = [] as SnapshotEntry[];
    for (const s of snaps) if (await snapshotPresentLocally(s)) complete.push(s);
    const have = complete[0];
    const age = have ? (now.getTime() - finishedAt(have).getTime()) / 1000 : null;
    if (age === null || age > st.staleAfter) {
      result.ok = false;
      result.problems.push(
        have ? `the newest snapshot received (${have.id}) is older than ${st.staleAfter}s` : 'no complete snapshot has been received yet',
      );
    }
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
        if (complete) seen[s.id] = now.toISOString();
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
      result.ok = false;
      const since = dev.newestOnDevice ? `its newest snapshot is ${dev.newestOnDevice}` : 'it has no snapshot';
      result.problems.push(
        `device ${d.name} lacks snapshot ${oldestMissing.id}, older than ${st.staleAfter}s (${since}${dev.connected ? '' : '; it is not connected'})`,
      );
    }
  }
  if (st.role === 'source') await writeState(config.vault.dir, state, keep);
  return result;
}
