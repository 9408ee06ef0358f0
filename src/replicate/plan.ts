import path from 'node:path';
import type { MediaConfig, SyncthingConfig } from '../config/schema-replicate.js';
import { UserError } from '../errors.js';
import { VAULT_IGNORES } from '../vault/layout.js';
import type { StDevice, StFolder } from './api.js';
import { normalizeDeviceId } from './device-id.js';

/** The two folders permafrost manages; any other folder is never touched. */
export const SNAPSHOTS_FOLDER = 'permafrost-snapshots';
export const MEDIA_FOLDER = 'mastodon-media';
export const MANAGED_FOLDERS = [SNAPSHOTS_FOLDER, MEDIA_FOLDER] as const;

/**
 * Snapshot folder ignores: in-progress snapshots and permafrost's own files (the run lock
 * `.permafrost.lock`, its takeover temp file, the replication state file) never leave the server.
 */
export const SNAPSHOT_IGNORES = [...VAULT_IGNORES];

/** Folder timing: scans are requested after each backup; the watcher and interval are the safety net. */
const RESCAN_INTERVAL_S = 3600;
const WATCHER_DELAY_S = 10;

/** What the local Syncthing has now (only the parts the planner looks at). */
export interface CurrentState {
  myID: string;
  devices: StDevice[];
  folders: StFolder[];
  /** Ignore lines of each managed folder that exists. */
  ignores: Record<string, string[]>;
}

export interface DesiredDevice {
  deviceID: string;
  name: string;
  addresses: string[];
  /** Config key, for error messages: syncthing.devices[i]. */
  key: string;
}

export interface DesiredFolder {
  id: string;
  label: string;
  path: string;
  type: 'sendonly' | 'receiveonly';
  /** Every device it is shared with, including this one. */
  deviceIDs: string[];
  rescanIntervalS: number;
  fsWatcherEnabled: boolean;
  fsWatcherDelayS: number;
  /** Only set on a receiver; the source's versioning is left as the admin has it. */
  versioning?: { type: string; params: Record<string, string> };
  ignores: string[];
}

export interface DesiredState {
  devices: DesiredDevice[];
  folders: DesiredFolder[];
}

/** One REST call that brings Syncthing closer to the config. */
export interface Change {
  kind: 'add-device' | 'update-device' | 'add-folder' | 'update-folder' | 'set-ignores' | 'resume-folder';
  /** One line for humans: "add device nas (ABCDEFG) at dynamic". */
  summary: string;
  method: 'POST' | 'PATCH';
  path: string;
  body: unknown;
  /** Config key the change comes from, named in errors. */
  key: string;
}

function versioningParams(v: SyncthingConfig['versioning']): { type: string; params: Record<string, string> } {
  switch (v.type) {
    case 'simple':
      return { type: 'simple', params: { keep: String(v.keep), cleanoutDays: String(v.cleanoutDays) } };
    case 'staggered':
      return { type: 'staggered', params: { maxAge: String(v.maxAge) } };
    case 'trashcan':
      return { type: 'trashcan', params: { cleanoutDays: String(v.cleanoutDays) } };
  }
}

/** What the config asks of this Syncthing. Pure; throws UserError for IDs that cannot work. */
export function desiredState(
  config: { vault: { dir: string }; media?: MediaConfig; syncthing: SyncthingConfig },
  myID: string,
): DesiredState {
  const st = config.syncthing;
  const devices: DesiredDevice[] = st.devices.map((d, i) => {
    const key = `syncthing.devices[${i}]`;
    const deviceID = normalizeDeviceId(d.id);
    if (deviceID === null) {
      throw new UserError(
        `${key}.id: ${d.id} is not a valid Syncthing device ID; copy it again from \`permafrost device-id\` on that device.`,
      );
    }
    if (deviceID === myID) {
      throw new UserError(
        `${key}.id: ${d.id} is this machine's own Syncthing ID; list the other side's ID (run \`permafrost device-id\` there).`,
      );
    }
    return { deviceID, name: d.name, addresses: d.addresses ?? ['dynamic'], key };
  });
  const seen = new Set<string>();
  for (const d of devices) {
    if (seen.has(d.deviceID)) throw new UserError(`${d.key}.id: the same device is listed twice; remove one of them.`);
    seen.add(d.deviceID);
  }
  const type = st.role === 'source' ? 'sendonly' : 'receiveonly';
  const versioning = st.role === 'receiver' ? versioningParams(st.versioning) : undefined;
  const base: Omit<DesiredFolder, 'id' | 'label' | 'path' | 'ignores'> = {
    type,
    deviceIDs: [myID, ...devices.map((d) => d.deviceID)],
    rescanIntervalS: RESCAN_INTERVAL_S,
    fsWatcherEnabled: true,
    fsWatcherDelayS: WATCHER_DELAY_S,
    ...(versioning ? { versioning } : {}),
  };
  const folders: DesiredFolder[] = [
    { id: SNAPSHOTS_FOLDER, label: 'permafrost snapshots', path: path.resolve(config.vault.dir), ignores: SNAPSHOT_IGNORES, ...base },
  ];
  if (config.media) {
    folders.push({
      id: MEDIA_FOLDER,
      label: 'Mastodon media',
      path: path.resolve(config.media.dir),
      ignores: config.media.ignore,
      ...base,
    });
  }
  return { devices, folders };
}

/** What the receiver's versioning keeps, and who bounds it: the device's prune applies vault.keep to `.stversions`. */
function describeVersioning(v: { type: string; params: Record<string, string> }): string {
  return `versioning ${v.type} ${JSON.stringify(v.params)} (replaced and deleted files go to .stversions; the device's prune and daemon apply vault.keep there)`;
}

const short = (id: string): string => id.slice(0, 7);
const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const sameSet = (a: readonly string[], b: readonly string[]): boolean => sameList([...a].sort(), [...b].sort());

function folderPatch(want: DesiredFolder, have: StFolder): { patch: Record<string, unknown>; what: string[] } {
  const patch: Record<string, unknown> = {};
  const what: string[] = [];
  const set = (field: string, from: unknown, to: unknown, label = field): void => {
    patch[field] = to;
    what.push(`${label} ${JSON.stringify(from)} → ${JSON.stringify(to)}`);
  };
  if (have.label !== want.label) set('label', have.label, want.label);
  if (have.path !== want.path) set('path', have.path, want.path);
  if (have.type !== want.type) set('type', have.type, want.type);
  const haveIDs = have.devices.map((d) => d.deviceID);
  if (!sameSet(haveIDs, want.deviceIDs)) {
    patch.devices = want.deviceIDs.map((deviceID) => ({ deviceID }));
    const added = want.deviceIDs.filter((d) => !haveIDs.includes(d)).map(short);
    const removed = haveIDs.filter((d) => !want.deviceIDs.includes(d)).map(short);
    what.push(`devices${added.length ? ` +${added.join(' +')}` : ''}${removed.length ? ` -${removed.join(' -')}` : ''}`);
  }
  if (have.rescanIntervalS !== want.rescanIntervalS) set('rescanIntervalS', have.rescanIntervalS, want.rescanIntervalS);
  if (have.fsWatcherEnabled !== want.fsWatcherEnabled) set('fsWatcherEnabled', have.fsWatcherEnabled, want.fsWatcherEnabled);
  if (have.fsWatcherDelayS !== want.fsWatcherDelayS) set('fsWatcherDelayS', have.fsWatcherDelayS, want.fsWatcherDelayS);
  if (want.versioning) {
    const hv = have.versioning ?? { type: '', params: {} };
    const paramsMatch = Object.entries(want.versioning.params).every(([k, v]) => hv.params?.[k] === v);
    if (hv.type !== want.versioning.type || !paramsMatch) {
      patch.versioning = want.versioning;
      what.push(`versioning ${hv.type || 'none'} → ${describeVersioning(want.versioning)}`);
    }
  }
  return { patch, what };
}

/**
 * The REST calls that make `current` match `desired`, in order. Pure: a table of inputs and
 * outputs tests it, `--dry-run` prints it, and an empty list means "nothing to do".
 * Folders are created paused and only resumed once their ignores (and versioning) are in place,
 * so nothing is announced or pulled before the patterns apply.
 */
export function planChanges(desired: DesiredState, current: CurrentState): Change[] {
  return [
    ...desired.devices.flatMap((want) =>
      deviceChanges(
        want,
        current.devices.find((d) => d.deviceID === want.deviceID),
      ),
    ),
    ...desired.folders.flatMap((want) =>
      folderChanges(
        want,
        current.folders.find((f) => f.id === want.id),
        current.ignores[want.id],
      ),
    ),
  ];
}

/** The call that adds a device Syncthing does not know, or updates its name and addresses. */
function deviceChanges(want: DesiredDevice, have: StDevice | undefined): Change[] {
  const addr = want.addresses.join(', ');
  if (!have) {
    return [
      {
        kind: 'add-device',
        summary: `add device ${want.name} (${short(want.deviceID)}) at ${addr}`,
        method: 'POST',
        path: '/rest/config/devices',
        body: { deviceID: want.deviceID, name: want.name, addresses: want.addresses },
        key: want.key,
      },
    ];
  }
  const patch: Record<string, unknown> = {};
  const what: string[] = [];
  if (have.name !== want.name) {
    patch.name = want.name;
    what.push(`name ${JSON.stringify(have.name)} → ${JSON.stringify(want.name)}`);
  }
  if (!sameList(have.addresses ?? [], want.addresses)) {
    patch.addresses = want.addresses;
    what.push(`addresses ${(have.addresses ?? []).join(', ') || 'none'} → ${addr}`);
  }
  if (what.length === 0) return [];
  return [
    {
      kind: 'update-device',
      summary: `update device ${want.name} (${short(want.deviceID)}): ${what.join('; ')}`,
      method: 'PATCH',
      path: `/rest/config/devices/${want.deviceID}`,
      body: patch,
      key: want.key,
    },
  ];
}

/** The calls for one managed folder: add it paused, set its ignores, patch what differs, resume it. */
function folderChanges(want: DesiredFolder, have: StFolder | undefined, haveIgnores: string[] | undefined): Change[] {
  const key = want.id === SNAPSHOTS_FOLDER ? 'vault.dir' : 'media';
  const ignores: Change = {
    kind: 'set-ignores',
    summary: `set ignore patterns of ${want.id}: ${want.ignores.join(' ') || '(none)'}`,
    method: 'POST',
    path: `/rest/db/ignores?folder=${encodeURIComponent(want.id)}`,
    body: { ignore: want.ignores },
    key: want.id === MEDIA_FOLDER ? 'media.ignore' : key,
  };
  const resume: Change = {
    kind: 'resume-folder',
    summary: `resume ${want.id}`,
    method: 'PATCH',
    path: `/rest/config/folders/${encodeURIComponent(want.id)}`,
    body: { paused: false },
    key,
  };
  if (!have) return [addFolder(want, key), ignores, resume];
  const changes: Change[] = [];
  if (!sameList(haveIgnores ?? [], want.ignores)) changes.push(ignores);
  const { patch, what } = folderPatch(want, have);
  if (what.length > 0) {
    changes.push({
      kind: 'update-folder',
      summary: `update folder ${want.id}: ${what.join('; ')}`,
      method: 'PATCH',
      path: `/rest/config/folders/${encodeURIComponent(want.id)}`,
      body: patch,
      key,
    });
  }
  if (have.paused) changes.push(resume);
  return changes;
}

/** A new folder, created paused: nothing is announced or pulled before its ignores apply. */
function addFolder(want: DesiredFolder, key: string): Change {
  return {
    kind: 'add-folder',
    summary:
      `add folder ${want.id} (${want.type}) at ${want.path}, shared with ${want.deviceIDs.length - 1} device(s), paused until set up` +
      (want.versioning ? `, ${describeVersioning(want.versioning)}` : ''),
    method: 'POST',
    path: '/rest/config/folders',
    body: {
      id: want.id,
      label: want.label,
      path: want.path,
      type: want.type,
      devices: want.deviceIDs.map((deviceID) => ({ deviceID })),
      rescanIntervalS: want.rescanIntervalS,
      fsWatcherEnabled: want.fsWatcherEnabled,
      fsWatcherDelayS: want.fsWatcherDelayS,
      paused: true,
      ...(want.versioning ? { versioning: want.versioning } : {}),
    },
    key,
  };
}
