import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { redisPartError, startRedisCapture } from '../capture/redis.js';
import { openSecrets } from '../capture/secrets.js';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import { checkRedisCli } from '../tools/redis-cli.js';
import type { EncryptionKeys } from '../vault/keys.js';
import { PART_FILE, type FailedPart, type ManifestFile } from '../vault/manifest.js';
import { vaultWriteCode } from '../vault/store.js';
import { captureFailure } from '../vault/write-capture.js';
import { writeEncryptedPart } from '../vault/write-part.js';
import type { JobEvents } from './events.js';

export interface ExtraParts {
  files: ManifestFile[];
  /** Parts that failed (optional or not); the snapshot is committed without them. */
  failed: FailedPart[];
  /** One sentence per optional part that was skipped because it failed. */
  warnings: string[];
}

interface PartJob {
  part: 'redis' | 'secrets';
  optional: boolean;
  /** Streams the part's plaintext into the snapshot; throws an error that names the part. */
  write(dir: string, keys: EncryptionKeys): Promise<ManifestFile>;
}

function redisJob(config: Config, signal: AbortSignal | undefined, progress?: (n: number) => void): PartJob | null {
  const redis = config.redis;
  if (!redis) return null;
  return {
    part: 'redis',
    optional: redis.optional,
    async write(dir, keys) {
      const cli = await checkRedisCli(redis);
      if (!cli.ok) throw redisPartError(redis, new Error(cli.reason));
      let capture: ReturnType<typeof startRedisCapture>;
      try {
        capture = startRedisCapture(redis, signal);
      } catch (err) {
        throw redisPartError(redis, err);
      }
      try {
        const file = await writeEncryptedPart({ dir, part: 'redis', keys, progress }, capture.stdout);
        await capture.tool.done;
        return file;
      } catch (err) {
        // The tool's own error (exit status, stderr) says more than a broken pipe does, but not
        // more than a full vault: redis-cli only died because its file could not be written.
        throw redisPartError(redis, await captureFailure(err, [capture.tool]));
      }
    },
  };
}

function secretsJob(config: Config, progress?: (n: number) => void): PartJob | null {
  const secrets = config.secrets;
  if (!secrets) return null;
  return {
    part: 'secrets',
    optional: secrets.optional,
    async write(dir, keys) {
      const stream: Readable = await openSecrets(secrets);
      try {
        return await writeEncryptedPart({ dir, part: 'secrets', keys, progress }, stream);
      } catch (err) {
        stream.destroy();
        if (err instanceof PermafrostError) throw err;
        throw new PermafrostError('tool', `Secrets part failed while encrypting ${secrets.file}: ${errorMessage(err)}.`, { cause: err });
      }
    },
  };
}

/**
 * Captures the roles part (its SQL was read in the capture session; without it a restore onto a
 * fresh cluster lacks the owners, so a failure here fails the snapshot), then Redis and the secrets file into the partial snapshot folder, each encrypted on the fly.
 * A failing part never costs the database dump: its half-written file is removed and the failure
 * is returned (recorded in the manifest; a warning too when the part is optional), so the snapshot
 * lists only what was captured. A vault write error (full or read-only disk) and a stop request
 * throw instead: the whole snapshot is then not to be trusted, whatever `optional` says.
 */
export async function captureExtraParts(
  config: Config,
  opts: { dir: string; keys: EncryptionKeys; rolesSql: string; signal?: AbortSignal; events?: JobEvents },
): Promise<ExtraParts> {
  const { dir, keys } = opts;
  opts.events?.phase?.('roles');
  const roles = await writeEncryptedPart({ dir, part: 'roles', keys }, Readable.from([Buffer.from(opts.rolesSql, 'utf8')]));
  const jobs = [
    redisJob(config, opts.signal, (n) => opts.events?.bytes?.('redis', n)),
    secretsJob(config, (n) => opts.events?.bytes?.('secrets', n)),
  ].filter((j): j is PartJob => j !== null);
  const files: ManifestFile[] = [];
  const failed: FailedPart[] = [];
  const warnings: string[] = [];
  for (const job of jobs) {
    if (opts.signal?.aborted) break;
    opts.events?.phase?.(job.part);
    try {
      files.push(await job.write(dir, keys));
    } catch (err) {
      await rm(path.join(dir, PART_FILE[job.part]), { force: true });
      if (opts.signal?.aborted || vaultWriteCode(err)) throw err;
      failed.push({ part: job.part, error: errorMessage(err), optional: job.optional });
      if (job.optional) warnings.push(`${job.part} part skipped (marked optional): ${errorMessage(err)}`);
    }
  }
  return { files: [...files, roles], failed, warnings };
}
