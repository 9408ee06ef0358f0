import { existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { UserError } from '../errors.js';
import { describeIssues } from '../schema-issues.js';
import { normalizeConfig } from './normalize.js';
import { configSchema, type Config } from './schema.js';

export const DEFAULT_CONFIG_PATHS = ['./permafrost.yaml', '/etc/permafrost/permafrost.yaml'];

/** The config file to use: --config, else $PERMAFROST_CONFIG, else the first default that exists. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return path.resolve(flag);
  if (env.PERMAFROST_CONFIG) return path.resolve(env.PERMAFROST_CONFIG);
  for (const candidate of DEFAULT_CONFIG_PATHS) {
    if (existsSync(candidate)) return path.resolve(candidate);
  }
  throw new UserError(
    `No config file found: pass --config FILE, set PERMAFROST_CONFIG, or create ./permafrost.yaml (see \`permafrost init\`).`,
  );
}

/** Checks against the real system that the schema cannot express: files that must exist. */
function systemProblems(config: Config): string[] {
  const problems: string[] = [];
  const mustExist: Array<[string, string | undefined]> = [
    ['vault.passphraseFile', config.vault.passphraseFile],
    ['database.passwordFile', config.role === 'source' ? config.database.passwordFile : undefined],
    ['syncthing.apiKeyFile', config.syncthing?.apiKeyFile],
  ];
  for (const [key, file] of mustExist) {
    if (file !== undefined && !existsSync(file)) problems.push(`${key}: file ${file} does not exist`);
  }
  if (existsSync(config.vault.dir) && !statSync(config.vault.dir).isDirectory()) {
    problems.push(`vault.dir: ${config.vault.dir} exists but is not a directory`);
  }
  const tempDir = tempDirProblem(config.vault.tempDir);
  if (tempDir) problems.push(`vault.tempDir: ${tempDir}`);
  return problems;
}

/**
 * Restore and verify decrypt whole snapshots there: it must be a folder, and one that others may
 * write to needs the sticky bit (as /tmp has), or they could rename our private folder away.
 */
function tempDirProblem(dir: string | undefined): string | null {
  if (dir === undefined) return null;
  if (!existsSync(dir)) return `folder ${dir} does not exist; create it (mode 0700 or 1777) or point vault.tempDir at an existing one`;
  const s = statSync(dir);
  if (!s.isDirectory()) return `${dir} is not a folder; point vault.tempDir at one`;
  if ((s.mode & 0o002) !== 0 && (s.mode & 0o1000) === 0) {
    return `${dir} is writable by every user but lacks the sticky bit, so another user could move decrypted snapshots away; run chmod +t ${dir} (or chmod o-w ${dir})`;
  }
  return null;
}

/** What the command line may set over the config file (or instead of one). */
export interface ConfigOverrides {
  /** --vault DIR: the vault folder (or a copy of it); without a config file, a vault-only device config. */
  vault?: string;
  /**
   * The snapshots are read from a bucket (--vault s3://…, --target): the config file is used as it
   * is, and with none at all a vault-only device config stands in. Its vault.dir is never read:
   * verify and restore bring the snapshot into their own private temp folder and read it there.
   */
  bucket?: boolean;
}

/** Parses and validates config text (YAML → schema → normalize → system checks); every problem of a step is reported at once. */
export function parseConfig(text: string, configPath: string, overrides: ConfigOverrides = {}): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
    throw new UserError(`Config ${configPath} is not valid YAML${where}: fix the syntax.`, { cause: err });
  }
  if (overrides.vault !== undefined && raw !== null && typeof raw === 'object') {
    const vault = (raw as { vault?: unknown }).vault;
    raw = { ...raw, vault: { ...(vault !== null && typeof vault === 'object' ? vault : {}), dir: overrides.vault } };
  }
  return checkedConfig(raw ?? {}, configPath);
}

function checkedConfig(raw: unknown, configPath: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw configProblems(configPath, describeIssues(result.error.issues));
  const normalized = normalizeConfig(result.data, configPath);
  if (!normalized.ok) throw configProblems(configPath, normalized.problems);
  const problems = systemProblems(normalized.config);
  if (problems.length > 0) throw configProblems(configPath, problems);
  return normalized.config;
}

function configProblems(configPath: string, problems: string[]): UserError {
  return new UserError(`Config ${configPath} has ${problems.length} problem${problems.length > 1 ? 's' : ''}; fix each key listed below.`, {
    details: problems,
  });
}

/** --vault as an absolute path to an existing folder, or exit 2 saying so. */
function vaultFlag(dir: string): string {
  const abs = path.resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new UserError(
      `--vault: ${abs} is not a folder; point it at the vault or a copy of it (the folder holding the snapshot folders).`,
    );
  }
  return abs;
}

/**
 * Reads and parses the config that resolveConfigPath picks; `--vault` overrides vault.dir. With
 * `--vault` and no config file at all (no --config, no $PERMAFROST_CONFIG, no default file), a
 * vault-only backup device config is synthesized: a machine with only a copy of the vault.
 */
export function loadConfig(flag?: string, overrides: ConfigOverrides = {}): Config {
  if (overrides.bucket && !flag && !process.env.PERMAFROST_CONFIG && !DEFAULT_CONFIG_PATHS.some((p) => existsSync(p))) {
    return checkedConfig({ vault: { dir: tmpdir() } }, '(no config file: the snapshots are read from a bucket)');
  }
  const vault = overrides.vault === undefined ? undefined : vaultFlag(overrides.vault);
  if (vault !== undefined && !flag && !process.env.PERMAFROST_CONFIG && !DEFAULT_CONFIG_PATHS.some((p) => existsSync(p))) {
    return checkedConfig({ vault: { dir: vault } }, `(no config file: --vault ${vault})`);
  }
  const configPath = resolveConfigPath(flag);
  let text: string;
  try {
    text = readFileSync(configPath, 'utf8');
  } catch (err) {
    throw new UserError(`Cannot read config ${configPath}: check the path and its permissions.`, { cause: err });
  }
  return parseConfig(text, configPath, { vault });
}
