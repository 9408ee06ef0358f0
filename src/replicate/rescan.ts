import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { HttpError } from '../net/http.js';
import { clientFor } from './client.js';
import { SNAPSHOTS_FOLDER } from './plan.js';
import type { Secret } from '../config/secret-values.js';

/**
 * Asks the source's Syncthing to scan the snapshots folder now, so a new snapshot starts moving
 * within seconds instead of at the next rescan interval. Never throws: replication trouble must
 * not fail a backup, so it returns a warning sentence (or null when all went well or there is
 * nothing to do).
 */
export async function requestSnapshotRescan(config: Config, apiKey: Secret | undefined): Promise<string | null> {
  const st = config.syncthing;
  if (!st || st.role !== 'source') return null;
  try {
    // The scan call returns when the scan is done; a 250 MB snapshot hashes in a few seconds.
    const client = clientFor(config, apiKey, { timeoutMs: 300_000 });
    await client.post(`/rest/db/scan?folder=${SNAPSHOTS_FOLDER}`);
    return null;
  } catch (err) {
    if (err instanceof HttpError && err.unreachable) return `replication is unreachable: ${err.message}`;
    return `replication rescan failed, the snapshot will move at the next rescan: ${errorMessage(err)}`;
  }
}
