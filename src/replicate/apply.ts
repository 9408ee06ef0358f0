import type { Config } from '../config/schema.js';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { HttpError } from '../net/http.js';
import { folderStatusSchema, ignoresSchema, pendingFoldersSchema, stDeviceSchema, stFolderSchema, systemStatusSchema } from './api.js';
import { clientFor, requireSyncthing, type SyncthingClient } from './client.js';
import { MANAGED_FOLDERS, MEDIA_FOLDER, desiredState, planChanges, type Change, type CurrentState } from './plan.js';
import type { Secret } from '../config/secret-values.js';

export interface ApplyResult {
  role: 'source' | 'receiver';
  myID: string;
  /** The changes made (or, with dryRun, that would be made); empty when already in line. */
  changes: Array<Pick<Change, 'kind' | 'summary' | 'method' | 'path' | 'body'>>;
  dryRun: boolean;
  /** What the config leaves out that the other side offers (the server's media on a device without media.dir), and the fix. */
  warnings: Array<{ message: string; fix: string }>;
}

/** Reads what the planner needs from Syncthing. */
export async function readCurrentState(client: SyncthingClient): Promise<CurrentState> {
  const status = await client.get('/rest/system/status', systemStatusSchema);
  const devices = await client.get('/rest/config/devices', z.array(stDeviceSchema));
  const folders = await client.get('/rest/config/folders', z.array(stFolderSchema));
  const ignores: Record<string, string[]> = {};
  for (const f of folders) {
    if (!(MANAGED_FOLDERS as readonly string[]).includes(f.id)) continue;
    const r = await client.get(`/rest/db/ignores?folder=${encodeURIComponent(f.id)}`, ignoresSchema);
    ignores[f.id] = r.ignore ?? [];
  }
  return { myID: status.myID, devices, folders, ignores };
}

/** Runs the planned calls in order; an error names the config key the failing change came from. */
export async function executeChanges(client: SyncthingClient, changes: Change[]): Promise<void> {
  for (const c of changes) {
    try {
      await client.request(c.method, c.path, c.body);
    } catch (err) {
      if (err instanceof HttpError && err.status !== null && err.status !== 401 && err.status !== 403) {
        const setting = c.kind.endsWith('device') ? `${c.key}.id and ${c.key}.addresses` : c.key;
        throw new HttpError(`Syncthing refused to ${c.summary} (HTTP ${err.status}: ${err.body || 'no details'}); fix ${setting}.`, {
          method: c.method,
          url: err.url,
          socketPath: err.socketPath ?? undefined,
          status: err.status,
          body: err.body,
          cause: err,
        });
      }
      throw err;
    }
  }
}

/**
 * Makes the local Syncthing match the config's syncthing/vault/media sections. Idempotent: a
 * second run plans no change. Only the managed folders and the configured devices are touched.
 */
export async function applySync(
  config: Config,
  apiKey: Secret | undefined,
  opts: { dryRun?: boolean; client?: SyncthingClient } = {},
): Promise<ApplyResult> {
  const st = requireSyncthing(config);
  const client = opts.client ?? clientFor(config, apiKey);
  const current = await readCurrentState(client);
  const desired = desiredState({ vault: config.vault, media: config.media, syncthing: st }, current.myID);
  const changes = planChanges(desired, current);
  if (!opts.dryRun) await executeChanges(client, changes);
  const warnings = st.role === 'receiver' && !config.media ? await mediaOffered(client, current, config.configPath) : [];
  return {
    role: st.role,
    myID: current.myID,
    changes: changes.map(({ kind, summary, method, path, body }) => ({ kind, summary, method, path, body })),
    dryRun: Boolean(opts.dryRun),
    warnings,
  };
}

/**
 * On a device without media.dir: the server's offer of its media folder, which this device does
 * not take (a restore from here would have no media). Read from Syncthing's pending folders; a
 * Syncthing too old to list them (404) gives no warning.
 */
async function mediaOffered(client: SyncthingClient, current: CurrentState, configPath: string): Promise<ApplyResult['warnings']> {
  if (current.folders.some((f) => f.id === MEDIA_FOLDER)) return [];
  let pending: z.output<typeof pendingFoldersSchema>;
  try {
    pending = await client.get('/rest/cluster/pending/folders', pendingFoldersSchema);
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) return [];
    throw err;
  }
  const offeredBy = Object.keys(pending[MEDIA_FOLDER]?.offeredBy ?? {});
  if (offeredBy.length === 0) return [];
  const names = offeredBy.map((id) => {
    const d = current.devices.find((x) => x.deviceID === id);
    return d?.name ? `${d.name} (${id.slice(0, 7)})` : id.slice(0, 7);
  });
  return [
    {
      message: `${names.join(', ')} shares its media folder ${MEDIA_FOLDER}, but ${configPath} has no media.dir, so this device does not take it and a restore from here has no media`,
      fix: 'add `media: { dir: /srv/permafrost/media }` (a folder of its own, beside vault.dir) to the config, or write it with `permafrost init --device --media DIR`, then run `permafrost sync apply` again',
    },
  ];
}

/** This Syncthing's device ID (what the other side puts in syncthing.devices). */
export async function localDeviceId(config: Config, apiKey: Secret | undefined): Promise<string> {
  const client = clientFor(config, apiKey);
  const status = await client.get('/rest/system/status', systemStatusSchema);
  return status.myID;
}

/**
 * Undoes local changes in a receive-only device's managed folders (Syncthing's "Revert Local
 * Changes"): files changed or added there are replaced by, or removed for, the server's copies.
 * Returns the folders that had changes.
 */
export async function revertLocalChanges(
  config: Config,
  apiKey: Secret | undefined,
  opts: { client?: SyncthingClient } = {},
): Promise<string[]> {
  const st = requireSyncthing(config);
  if (st.role !== 'receiver') {
    throw new UserError(
      `permafrost sync revert undoes local changes on a backup device, but ${config.configPath} is the server's (syncthing.role: source), whose folders are send-only; run it on the device.`,
    );
  }
  const client = opts.client ?? clientFor(config, apiKey);
  const reverted: string[] = [];
  const folders = await client.get('/rest/config/folders', z.array(stFolderSchema));
  for (const f of folders.filter((x) => (MANAGED_FOLDERS as readonly string[]).includes(x.id))) {
    const s = await client.get(`/rest/db/status?folder=${encodeURIComponent(f.id)}`, folderStatusSchema);
    if ((s.receiveOnlyChangedFiles ?? 0) === 0) continue;
    await client.post(`/rest/db/revert?folder=${encodeURIComponent(f.id)}`);
    reverted.push(f.id);
  }
  return reverted;
}
