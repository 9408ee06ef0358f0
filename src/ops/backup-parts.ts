import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { redisPartError, startRedisCapture } from '../capture/redis.js';
import { openRedisSync } from '../capture/redis-sync.js';
import { openSecrets } from '../capture/secrets.js';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import { checkRedisCli } from '../tools/redis-cli.js';
import type { EncryptionKeys } from '../crypto/keys.js';
import type { RunContext } from '../run-context.js';
import { PART_FILE, type FailedPart, type ManifestFile } from '../vault/manifest.js';
import { vaultWriteCode } from '../vault/store.js';
import { captureFailure } from '../crypto/write-capture.js';
import { writeEncryptedPart } from '../crypto/write-part.js';
import type { SourceJob } from './secrets.js';

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

function redisJob(config: SourceJob, ctx: RunContext): PartJob | null {
  const redis = config.redis;
  if (!redis) return null;
  return {
    part: 'redis',
    optional: redis.optional,
    async write(dir, keys) {
      // A plain SYNC skips repl-diskless-sync-delay (5 s by default) when Redis saves RDB files anyway.
      let sync: Awaited<ReturnType<typeof openRedisSync>>;
      try {
        sync = await openRedisSync(redis, ctx.signal);
      } catch (err) {
        throw redisPartError(redis, err);
      }
      if ('stdout' in sync) {
        ctx.log('info', `redis part: SYNC (Redis saves RDB files itself: save "${sync.schedule}")`, { part: 'redis', path: 'sync' });
        try {
          return await writeEncryptedPart({ dir, part: 'redis', keys }, sync.stdout);
        } catch (err) {
          sync.stdout.destroy();
          throw redisPartError(redis, err);
        }
      }
      ctx.log('info', `redis part: redis-cli --rdb (${sync.fallback})`, { part: 'redis', path: 'redis-cli' });
      const cli = await checkRedisCli(redis);
      if (!cli.ok) throw redisPartError(redis, new Error(cli.reason));
      let capture: ReturnType<typeof startRedisCapture>;
      try {
        capture = startRedisCapture(redis, ctx);
      } catch (err) {
        throw redisPartError(redis, err);
      }
      try {
        const file = await writeEncryptedPart({ dir, part: 'redis', keys }, capture.stdout);
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

function secretsJob(config: Config): PartJob | null {
  const secrets = config.secrets;
  if (!secrets) return null;
  return {
    part: 'secrets',
    optional: secrets.optional,
    async write(dir, keys) {
      const stream: Readable = await openSecrets(secrets);
      try {
        return await writeEncryptedPart({ dir, part: 'secrets', keys }, stream);
      } catch (err) {
        stream.destroy();
        if (err instanceof PermafrostError) throw err;
        throw new PermafrostError('io', `Secrets part failed while encrypting ${secrets.file}: ${errorMessage(err)}.`, { cause: err });
      }
    },
  };
}

/**
 * Captures the roles part (its SQL is read in the capture session, `rolesSql` resolves with it;
 * without it a restore onto a fresh cluster lacks the owners, so a failure here fails the
 * snapshot), then Redis and the secrets file into the partial snapshot folder, each encrypted on
 * the fly, all at once: they run beside the database dump (backup.ts starts them before the
 * session opens), so Redis's
 * `repl-diskless-sync-delay` (5 s by default before `redis-cli --rdb` gets a byte) costs no wall time.
 * A failing part never costs the database dump: its half-written file is removed and the failure
 * is returned (recorded in the manifest; a warning too when the part is optional), so the snapshot
 * lists only what was captured. A vault write error (full or read-only disk) and a stop request
 * throw instead: the whole snapshot is then not to be trusted, whatever `optional` says.
 */
export async function captureExtraParts(
  config: SourceJob,
  opts: { dir: string; keys: EncryptionKeys; rolesSql: Promise<string> },
  ctx: RunContext,
): Promise<ExtraParts> {
  const { dir, keys } = opts;
  const roles = opts.rolesSql.then((sql) => writeEncryptedPart({ dir, part: 'roles', keys }, Readable.from([Buffer.from(sql, 'utf8')])));
  const jobs = [redisJob(config, ctx), secretsJob(config)].filter((j): j is PartJob => j !== null);
  const outcomes = await Promise.allSettled([roles, ...jobs.map((job) => runPart(job, dir, keys, ctx))]);
  // A failure that spoils the whole snapshot (roles, a vault write error, a stop) wins, in order.
  const thrown = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (thrown) throw thrown.reason;
  const [rolesFile, ...parts] = outcomes.map((o) => (o as PromiseFulfilledResult<ManifestFile | FailedPart>).value);
  const files = parts.filter((p): p is ManifestFile => 'sha256' in p);
  const failed = parts.filter((p): p is FailedPart => 'error' in p);
  const warnings = failed.filter((f) => f.optional).map((f) => `${f.part} part skipped (marked optional): ${f.error}`);
  return { files: [...files, rolesFile as ManifestFile], failed, warnings };
}

/** One optional part: its file, or its failure as the manifest records it (its half-written file removed). */
async function runPart(job: PartJob, dir: string, keys: EncryptionKeys, ctx: RunContext): Promise<ManifestFile | FailedPart> {
  try {
    return await job.write(dir, keys);
  } catch (err) {
    await rm(path.join(dir, PART_FILE[job.part]), { force: true });
    if (ctx.signal.aborted || vaultWriteCode(err)) throw err;
    return { part: job.part, error: errorMessage(err), optional: job.optional };
  }
}
