import { InvalidArgumentError, type Command } from 'commander';
import type { ConfigOverrides } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { withRunContext, type Io } from './run.js';
import type { JobEvents } from '../events.js';
import type { RunContext } from '../run-context.js';
import { UserError } from '../errors.js';

/** What every command gets: where to print, and the config (loaded on first use, from --config). */
export interface CommandContext {
  io: Io;
  /** `overrides` (e.g. --vault) apply to the first load; every command loads the config once. */
  config: (overrides?: ConfigOverrides) => Config;
  /** The --config path given on the command line, if any (init writes there). */
  configFlag: () => string | undefined;
}

/** Each command file exports one of these; program.ts registers them all. */
export type RegisterCommand = (program: Command, ctx: CommandContext) => void;

/**
 * The --vault flag for commands that work on a vault copy alone (`.option(...VAULT_OPTION)`, then
 * `config({ vault: opts.vault })`): over vault.dir, or with no config file the whole config.
 */
export const VAULT_OPTION = [
  '--vault <dir>',
  "the vault folder or a copy of it (the device's Syncthing folder, a USB disk), or a bucket as s3://BUCKET/PREFIX; overrides vault.dir, and needs no config file",
] as const;

/** What a command that reads snapshots is told about a bucket (ops/bucket-vault.ts BucketFlags). */
export interface BucketOptionValues {
  vault?: string;
  target?: string;
  endpoint?: string;
  pathStyle?: boolean;
}

/** --target, --endpoint and --path-style: the snapshots are read from a bucket (with --vault s3://… or a configured target). */
export function bucketOptions(cmd: Command): Command {
  return cmd
    .option('--target <name>', 'read the snapshots from this offsite target of the config (docs/offsite.md) instead of the vault folder')
    .option(
      '--endpoint <url>',
      'with --vault s3://…: the S3 endpoint (default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, a configured target of that bucket, else AWS); keys from the AWS environment or profile, or that target',
    )
    .option('--path-style', 'with --vault s3://…: path-style addressing (MinIO, Garage, Ceph and most self-hosted servers)');
}

/** The config for a command that reads snapshots: with a bucket, the config file as it is (or none); else --vault over vault.dir. */
export function vaultConfig(config: CommandContext['config'], opts: BucketOptionValues): Config {
  return config(bucketFlags(opts) ? { bucket: true } : { vault: opts.vault });
}

/**
 * Runs `run` in a run context (withRunContext: the stop signal, `events`, the log) on the vault folder; with a bucket (--vault s3://…,
 * --target), on snapshot `snapshot` and its chain fetched into a private temp folder
 * (ops/bucket-vault.ts, removed on every way out), its warnings to stderr.
 */
export function onVault<T>(
  io: Io,
  cfg: Config,
  opts: BucketOptionValues,
  snapshot: string,
  events: JobEvents,
  run: (cfg: Config, snapshot: string, ctx: RunContext) => Promise<T>,
): Promise<T> {
  const bucket = bucketFlags(opts);
  return withRunContext(io, events, async (ctx) => {
    if (!bucket) return run(cfg, snapshot, ctx);
    const { withBucketSnapshot } = await import('../ops/bucket-vault.js');
    return withBucketSnapshot(cfg, bucket, snapshot, ctx.signal, (local, id, warnings) => {
      for (const w of warnings) io.err(`warning: ${w}`);
      return run(local, id, ctx);
    });
  });
}

/** The bucket the flags name, or undefined when the snapshots are in a folder; --endpoint/--path-style without a bucket: exit 2. */
export function bucketFlags(opts: BucketOptionValues): BucketOptionValues | undefined {
  if (opts.vault?.startsWith('s3://') || opts.target !== undefined) {
    return { vault: opts.vault, target: opts.target, endpoint: opts.endpoint, pathStyle: opts.pathStyle };
  }
  if (opts.endpoint !== undefined || opts.pathStyle) throw new UserError('--endpoint and --path-style go with --vault s3://BUCKET/PREFIX.');
  return undefined;
}

export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

/** An option parser for a count such as --jobs: a whole number of at least 1, else commander's bad-flag error (exit 2). */
export function positiveInt(example: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`expected a whole number of at least 1, e.g. ${example}.`);
    }
    return n;
  };
}
