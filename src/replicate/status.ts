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
import { openVault, VAULT_NAMES, type Vault } from '../vault/layout.js';
import type { Secret } from '../config/secret-values.js';

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

async function readState(vault: Vault): Promise<ReplicationState> {
  try {
    return await readJsonState(vault.stateFile('replication'), replicationStateSchema, { seen: {} });
  } catch {
    // Unreadable (permissions): only the lag figures are lost.
    return { seen: {} };
  }
}

async function writeState(vault: Vault, state: ReplicationState, keep: Set<string>): Promise<void> {
  for (const byId of Object.values(state.seen)) for (const id of Object.keys(byId)) if (!keep.has(id)) delete byId[id];
  const file = vault.stateFile('replication');
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

type StFolder = z.infer<typeof stFolderSchema>;
type Connection = z.infer<typeof connectionsSchema>['connections'][string];

/** What status found on this host and learnt from Syncthing: gatherReplication's product, judgeReplication's input. */
export interface ReplicationFacts {
  role: Config['role'];
  now: Date;
  /** The vault's snapshots, newest first. */
  snaps: SnapshotEntry[];
  staleAfter: number;
  /** Receiver only: the newest snapshot held complete here and the disk the copies use. */
  device: ReplicationStatus['device'];
  /** Null without a syncthing section. */
  syncthing: SyncthingFacts | null;
}

/** What Syncthing said; when it could not be asked (`error`), nothing after `myID` was asked. */
export interface SyncthingFacts {
  role: 'source' | 'receiver';
  myID: string | null;
  error: string | null;
  /** The managed folders with their local status. */
  folders: Array<{ folder: StFolder; status: z.infer<typeof folderStatusSchema> }>;
  devices: DeviceFacts[];
  /** The first-seen times as read before this run (null when Syncthing could not be asked). */
  state: ReplicationState | null;
}

/** One configured device as Syncthing sees it (completions and snapshots only asked on a source). */
export interface DeviceFacts {
  name: string;
  id: string;
  connection: Connection | undefined;
  lastSeen: string | undefined;
  completions: Array<{ folder: string; completion: z.infer<typeof completionSchema> }>;
  /** The newest snapshot known to be complete there, when it was first seen there, and whether this run saw it first. */
  onDevice: { id: string; seenAt: string; firstSeenNow: boolean } | null;
  /** The oldest snapshot newer than onDevice (the one the device lacks longest). */
  oldestMissing: SnapshotEntry | null;
  /** Why asking which snapshots it holds failed. */
  problem: string | null;
}

/** Replication state of every configured device (source) or of the local replicas (receiver); `apiKey` as read at the job's start. */
export async function replicationStatus(config: Config, apiKey: Secret | undefined, opts: { now?: Date } = {}): Promise<ReplicationStatus> {
  const facts = await gatherReplication(config, opts.now ?? new Date(), apiKey);
  const status = judgeReplication(facts);
  if (facts.syncthing?.role === 'source' && facts.syncthing.state)
    await recordArrivals(openVault(config.vault.dir), facts, facts.syncthing.state);
  return status;
}

/** Reads the vault and asks Syncthing (when configured); judges nothing. */
async function gatherReplication(config: Config, now: Date, apiKey: Secret | undefined): Promise<ReplicationFacts> {
  const st = config.syncthing;
  const facts: ReplicationFacts = {
    role: config.role,
    now,
    snaps: await listSnapshots(config.vault.dir),
    staleAfter: st?.staleAfter ?? DEFAULT_STALE_AFTER_S,
    device: null,
    syncthing: null,
  };
  if (config.role === 'receiver') {
    const fresh = await deviceFreshness(config, now);
    facts.device = { ...fresh, disk: await deviceDiskUse(openVault(config.vault.dir)) };
  }
  if (st) facts.syncthing = await gatherSyncthing(config, st, facts.snaps, now, apiKey);
  return facts;
}

/** The REST calls: who this Syncthing is, its connections, folders and, on a source, what each device holds. */
async function gatherSyncthing(
  config: Config,
  st: NonNullable<Config['syncthing']>,
  snaps: SnapshotEntry[],
  now: Date,
  apiKey: Secret | undefined,
): Promise<SyncthingFacts> {
  const client = clientFor(config, apiKey, { timeoutMs: 15_000 });
  const facts: SyncthingFacts = { role: st.role, myID: null, error: null, folders: [], devices: [], state: null };
  let connections: z.infer<typeof connectionsSchema>['connections'];
  let stats: z.infer<typeof deviceStatsSchema>;
  try {
    facts.myID = (await client.get('/rest/system/status', systemStatusSchema)).myID;
    connections = (await client.get('/rest/system/connections', connectionsSchema)).connections;
    stats = await client.get('/rest/stats/device', deviceStatsSchema);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err;
    facts.error = err.message;
    return facts;
  }
  const managed = (await client.get('/rest/config/folders', z.array(stFolderSchema))).filter(
    (f) => f.id === SNAPSHOTS_FOLDER || f.id === MEDIA_FOLDER,
  );
  const state = await readState(openVault(config.vault.dir));
  facts.state = state;
  for (const folder of managed)
    facts.folders.push({ folder, status: await client.get(`/rest/db/status?folder=${folder.id}`, folderStatusSchema) });
  for (const d of st.devices) {
    const id = normalizeDeviceId(d.id) ?? d.id;
    const device: DeviceFacts = {
      name: d.name,
      id,
      connection: connections[id],
      lastSeen: stats[id]?.lastSeen,
      completions: [],
      onDevice: null,
      oldestMissing: null,
      problem: null,
    };
    facts.devices.push(device);
    if (st.role === 'receiver') continue;
    for (const { id: folder } of managed)
      device.completions.push({
        folder,
        completion: await client.get(`/rest/db/completion?folder=${folder}&device=${id}`, completionSchema),
      });
    Object.assign(device, await findNewestOnDevice(client, snaps, state.seen[id] ?? {}, id, Boolean(device.connection?.connected), now));
  }
  return facts;
}

/**
 * Newest first, the first snapshot the device holds (older ones no longer matter): known from the
 * first-seen record, or asked of Syncthing while the device is connected.
 */
async function findNewestOnDevice(
  client: SyncthingClient,
  snaps: SnapshotEntry[],
  seen: Readonly<Record<string, string>>,
  deviceID: string,
  connected: boolean,
  now: Date,
): Promise<Pick<DeviceFacts, 'onDevice' | 'oldestMissing' | 'problem'>> {
  let oldestMissing: SnapshotEntry | null = null;
  for (const s of snaps) {
    const seenAt = seen[s.id];
    if (seenAt !== undefined) return { onDevice: { id: s.id, seenAt, firstSeenNow: false }, oldestMissing, problem: null };
    if (connected) {
      let complete: boolean;
      try {
        complete = await snapshotOnDevice(client, s, deviceID);
      } catch (err) {
        return { onDevice: null, oldestMissing, problem: errorMessage(err) };
      }
      if (complete) {
        // The arrival itself, from Syncthing's events; when they no longer reach back, now (an upper bound).
        const arrival = (await arrivalFromEvents(client, s, deviceID).catch(() => null)) ?? now.toISOString();
        return { onDevice: { id: s.id, seenAt: arrival, firstSeenNow: true }, oldestMissing, problem: null };
      }
    }
    oldestMissing = s;
  }
  return { onDevice: null, oldestMissing, problem: null };
}

/** The verdict from the facts, pure: every figure the status shows and each problem with its fix. */
export function judgeReplication(facts: ReplicationFacts): ReplicationStatus {
  const { now, staleAfter, syncthing: st } = facts;
  // A snapshot dated in the future would look newest (and never age) forever.
  const newest = facts.snaps.find((s) => !s.future) ?? null;
  const snapshot = newest
    ? {
        id: newest.id,
        finishedAt: finishedAt(newest).toISOString(),
        ageSeconds: Math.round((now.getTime() - finishedAt(newest).getTime()) / 1000),
      }
    : null;
  const issues: ReplicationIssue[] = [];
  if (facts.role === 'receiver' && facts.device?.problem) issues.push(issue('device-freshness', facts.device.problem, null));
  let localFolders: ReplicationStatus['localFolders'] = [];
  let devices: DeviceStatus[] = [];
  if (!st) {
    // Without Syncthing the newest snapshot's age is all there is to judge: too old means backups stopped.
    if (facts.role === 'source') issues.push(...judgeSnapshotAge(snapshot, staleAfter));
  } else if (st.error !== null) {
    issues.push(issue('syncthing-unreachable', `Syncthing: ${st.error}`, null));
  } else {
    if (!st.folders.some((f) => f.folder.id === SNAPSHOTS_FOLDER))
      issues.push(issue('folder', `Syncthing has no ${SNAPSHOTS_FOLDER} folder yet`, 'run `permafrost sync apply`'));
    localFolders = st.folders.map((f) => judgeLocalFolder(f, st.role, issues));
    devices = st.devices.map((d) => judgeDevice(d, st.role, newest, facts, issues));
  }
  return {
    role: facts.role,
    syncthing: st !== null,
    reachable: st !== null && st.error === null,
    error: st?.error ?? null,
    myID: st?.myID ?? null,
    snapshot,
    localFolders,
    device: facts.device,
    devices,
    staleAfterSeconds: staleAfter,
    ok: issues.length === 0,
    problems: issues.map((i) => (i.fix ? `${i.message}: ${i.fix}` : i.message)),
    issues,
  };
}

function issue(code: ReplicationIssue['code'], message: string, fix: string | null, device: string | null = null): ReplicationIssue {
  return { code, device, message, fix };
}

/** A source without Syncthing: no snapshot, or one older than staleAfter. */
function judgeSnapshotAge(snapshot: ReplicationStatus['snapshot'], staleAfter: number): ReplicationIssue[] {
  if (!snapshot) return [issue('no-snapshot', 'there is no snapshot yet', 'run `permafrost backup`')];
  if (snapshot.ageSeconds <= staleAfter) return [];
  return [
    issue(
      'snapshot-stale',
      `the newest snapshot, ${snapshot.id}, is older than ${staleAfter}s`,
      'check that backups run (permafrost daemon, or its timer)',
    ),
  ];
}

/** One managed folder's local state; its problems (paused, locally changed files, errors) appended to `issues`. */
function judgeLocalFolder(
  { folder: f, status: s }: SyncthingFacts['folders'][number],
  role: SyncthingFacts['role'],
  issues: ReplicationIssue[],
): ReplicationStatus['localFolders'][number] {
  const side = role === 'receiver' ? 'this backup device' : 'this server';
  const changed = role === 'receiver' ? (s.receiveOnlyChangedFiles ?? 0) : 0;
  const errors = (s.errors ?? 0) + (s.pullErrors ?? 0);
  if (f.paused)
    issues.push(
      issue(
        'folder',
        `folder ${f.id} is paused on ${side}, so nothing ${role === 'receiver' ? 'arrives' : 'is sent'}`,
        'run `permafrost sync apply` here to resume it',
      ),
    );
  if (changed > 0)
    issues.push(
      issue(
        'folder',
        `folder ${f.id} has ${changed} locally changed file(s) on ${side}, which hide the server's copies`,
        'run `permafrost sync revert` here',
      ),
    );
  if (errors > 0 || s.error)
    issues.push(
      issue(
        'folder',
        `folder ${f.id} has errors on ${side} (${s.error || `${errors} file(s) failed`})`,
        "see Syncthing's log or GUI for the failing files and fix their permissions or disk space",
      ),
    );
  return { folder: f.id, state: s.state, paused: f.paused, needBytes: s.needBytes, receiveOnlyChangedFiles: changed, errors };
}

/** One device's status; its problems (folder paused or not shared there, a snapshot missing too long) appended to `issues`. */
function judgeDevice(
  d: DeviceFacts,
  role: SyncthingFacts['role'],
  newest: SnapshotEntry | null,
  { now, staleAfter }: Pick<ReplicationFacts, 'now' | 'staleAfter'>,
  issues: ReplicationIssue[],
): DeviceStatus {
  const conn = d.connection;
  const dev: DeviceStatus = {
    name: d.name,
    id: d.id,
    connected: Boolean(conn?.connected),
    since: conn?.connected && conn.startedAt ? conn.startedAt : null,
    address: conn?.connected ? (conn.address ?? null) : null,
    lastSeen: d.lastSeen && !d.lastSeen.startsWith('1970') ? d.lastSeen : null,
    folders: [],
    bytesToSend: 0,
    newestSnapshotComplete: null,
    newestOnDevice: d.onDevice?.id ?? null,
    lagSeconds: null,
    lagPending: false,
    stale: false,
    problem: d.problem,
  };
  if (role === 'receiver') return dev;
  for (const { folder, completion: c } of d.completions) {
    // Syncthing ≥ 1.23 says when the device paused or does not share the folder: then what it lacks is its side's doing.
    if (c.remoteState === 'paused' || c.remoteState === 'notSharing') {
      const what = c.remoteState === 'paused' ? 'has paused' : 'does not share';
      issues.push(
        issue(
          'device-folder',
          `device ${d.name} ${what} folder ${folder}, so it receives nothing`,
          'run `permafrost sync apply` on that device',
          d.name,
        ),
      );
    }
    dev.folders.push({ folder, completion: c.completion, needBytes: c.needBytes, needItems: c.needItems + (c.needDeletes ?? 0) });
    dev.bytesToSend += c.needBytes;
  }
  if (newest) {
    if (d.onDevice?.id === newest.id) {
      dev.newestSnapshotComplete = true;
      dev.lagSeconds = Math.max(0, Math.round((Date.parse(d.onDevice.seenAt) - finishedAt(newest).getTime()) / 1000));
    } else {
      dev.newestSnapshotComplete = dev.connected ? false : null;
      dev.lagPending = true;
      dev.lagSeconds = Math.round((now.getTime() - finishedAt(newest).getTime()) / 1000);
    }
  }
  const missing = d.oldestMissing;
  if (missing && (now.getTime() - finishedAt(missing).getTime()) / 1000 > staleAfter) {
    dev.stale = true;
    const since = dev.newestOnDevice ? `its newest snapshot is ${dev.newestOnDevice}` : 'it has no snapshot';
    const why = `device ${d.name} lacks snapshot ${missing.id}, older than ${staleAfter}s (${since}${dev.connected ? '' : '; it is not connected'})`;
    issues.push(issue('device-stale', why, null, d.name));
  }
  return dev;
}

/** Records when each device was first seen holding a snapshot (the lag's start), for the snapshots still in the vault. */
async function recordArrivals(vault: Vault, facts: ReplicationFacts, state: ReplicationState): Promise<void> {
  for (const d of facts.syncthing?.devices ?? []) {
    const seen = (state.seen[d.id] ??= {});
    if (d.onDevice?.firstSeenNow) seen[d.onDevice.id] = d.onDevice.seenAt;
  }
  await writeState(vault, state, new Set(facts.snaps.map((s) => s.id)));
}
