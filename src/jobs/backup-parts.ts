import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { redisPartError, startRedisCapture } from '../capture/redis.js';
import { openSecrets } from '../capture/secrets.js';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import { checkRedisCli } from '../tools/redis-cli.js';
import { pipelineFailure } from '../tools/run.js';
import type { ManifestFile } from '../vault/manifest.js';
import { writeEncryptedPart } from '../vault/write-part.js';

/** File names of the parts next to the database in each snapshot. */
export const PART_FILES = { redis: 'redis.rdb.gpg', secrets: 'env.production.gpg' } as const;

export interface ExtraParts {
  files: ManifestFile[];
  /** One sentence per optional part that was skipped because it failed. */
  warnings: string[];
}

interface PartJob {
  part: 'redis' | 'secrets';
  optional: boolean;
  /** Streams the part's plaintext into the snapshot; throws an error that names the part. */
  write(dir: string, passphrase: string): Promise<ManifestFile>;
}

function redisJob(config: Config, signal: AbortSignal | undefined, progress?: (n: number) => void): PartJob | null {
  const redis = config.redis;
  if (!redis) return null;
  return {
    part: 'redis',
    optional: redis.optional,
    async write(dir, passphrase) {
      const cli = await checkRedisCli(redis);
      if (!cli.ok) throw redisPartError(redis, new Error(cli.reason));
      let capture: ReturnType<typeof startRedisCapture>;
      try {
        capture = startRedisCapture(redis, signal);
      } catch (err) {
        throw redisPartError(redis, err);
      }
      try {
        const file = await writeEncryptedPart(dir, PART_FILES.redis, 'redis', capture.stdout, passphrase, progress);
        await capture.tool.done;
        return file;
      } catch (err) {
        // The tool's own error (exit status, stderr) says more than a broken pipe does.
        throw redisPartError(redis, await pipelineFailure(err, [capture.tool]));
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
    async write(dir, passphrase) {
      const stream: Readable = await openSecrets(secrets);
      try {
        return await writeEncryptedPart(dir, PART_FILES.secrets, 'secrets', stream, passphrase, progress);
      } catch (err) {
        stream.destroy();
        if (err instanceof PermafrostError) throw err;
        throw new PermafrostError('tool', `Secrets part failed while encrypting ${secrets.file}: ${errorMessage(err)}.`, { cause: err });
      }
    },
  };
}

/**
 * Captures Redis and the secrets file into the partial snapshot folder, each encrypted on the fly.
 * A failing part throws (naming it) unless the config marks it optional: then its half-written
 * file is removed and a warning is returned instead, so the manifest lists only what was captured.
 */
export async function captureExtraParts(
  config: Config,
  dir: string,
  passphrase: string,
  opts: { signal?: AbortSignal; phase?(name: string): void; bytes?(part: string, n: number): void } = {},
): Promise<ExtraParts> {
  const jobs = [
    redisJob(config, opts.signal, (n) => opts.bytes?.('redis', n)),
    secretsJob(config, (n) => opts.bytes?.('secrets', n)),
  ].filter((j): j is PartJob => j !== null);
  const files: ManifestFile[] = [];
  const warnings: string[] = [];
  for (const job of jobs) {
    if (opts.signal?.aborted) break;
    opts.phase?.(job.part);
    try {
      files.push(await job.write(dir, passphrase));
    } catch (err) {
      await rm(path.join(dir, PART_FILES[job.part]), { force: true });
      if (!job.optional || opts.signal?.aborted) throw err;
      warnings.push(`${job.part} part skipped (marked optional): ${errorMessage(err)}`);
    }
  }
  return { files, warnings };
}
