import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../config/load.js';
import {
  databaseAccess,
  deriveFromMastodonEnv,
  readMastodonEnv,
  type DatabaseAccess,
  type MastodonDerivation,
} from '../config/mastodon-env.js';
import { UserError } from '../errors.js';
import { findAccount, type Account } from '../tools/getent.js';
import { debianIdentFiles, peerMapLines } from '../doctor/peer.js';
import { userInfo } from 'node:os';
import { readPassphraseFile } from '../config/secret-file.js';
import { createExclusive, writeFileAtomic } from '../vault/fs-durable.js';
import { readRecipient } from '../crypto/keys.js';
import { describeSnapshotKeys, passphraseOpens, snapshotKeys } from '../crypto/keys-reuse.js';
import { listSnapshots, type SnapshotEntry } from '../vault/store.js';
import { generateKeys, type GeneratedKeys } from '../crypto/keys-generate.js';
import type { KeepPolicy } from '../vault/retention.js';
import { commentedSections, guessSyncthingHome } from './init-sections.js';

export const DEFAULT_VAULT_DIR = '/var/lib/permafrost/snapshots';

/** The retention policy `init` writes: without one, snapshots pile up until the disk is full. */
const DEFAULT_KEEP = { last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 } as const satisfies KeepPolicy;

export interface InitOptions {
  /** The Mastodon install folder holding .env.production. */
  mastodonDir: string;
  /** Where the config is written. */
  configPath: string;
  force?: boolean;
  vaultDir?: string;
  /**
   * Generate a recipient and a signing key pair instead of a passphrase: the recipient's secret
   * half goes into this folder (to be moved off the server), so the server holds no secret that decrypts.
   */
  generateKeysDir?: string;
  /** Reuse this passphrase (a file, or `-` for standard input) instead of making a new one: a rebuilt server keeps the old key. */
  reusePassphraseFile?: string;
  /** Encrypt to these public keys (vault.recipients), e.g. the old server's, instead of a new passphrase. */
  recipients?: string[];
}

export interface InitResult {
  configPath: string;
  /** Null with generated keys: the server then holds no passphrase. */
  passphraseFile: string | null;
  /** The generated keys (--generate-keys), else null. */
  keys: GeneratedKeys | null;
  /** False when an existing passphrase file was kept, or none was made. */
  passphraseCreated: boolean;
  /** Secret files written (mode 0600). */
  passwordFiles: string[];
  vaultDir: string;
  /** The retention policy written as vault.keep. */
  keep: KeepPolicy;
  mediaDir: string | null;
  notes: string[];
  /**
   * How the database is reached, and the OS user permafrost must run as (peer authentication: the
   * one named like the database role; null when any user can connect, with the password file);
   * switchUser: this user is not osUser, so the commands to run next start with `runuser -u osUser --`.
   */
  access: DatabaseAccess & { osUser: string | null; osUserExists: boolean; switchUser: boolean };
  /**
   * Peer authentication with no OS user of the role's name here: the pg_ident.conf line (in
   * identFile) and the pg_hba.conf line that let the user running init connect as the role instead.
   */
  peerMap: { ident: string; identFile: string; hba: string } | null;
  /** Files and folders init handed to access.osUser (running as root), so that it can run the backups. */
  handedOver: string[];
  /** The key the vault's existing snapshots need, which this config keeps using; null on an empty vault. */
  reusedKey: string | null;
}

/** How to keep the old key, for the refusal: the flags that reuse a passphrase or public keys. */
function reuseHint(mastodonDir: string, vaultDir: string): string {
  return (
    `reuse the key they need: \`permafrost init --mastodon ${mastodonDir} --vault ${vaultDir} --passphrase-file FILE\` ` +
    '(the passphrase from your offline copy; `-` reads it from standard input), or `--recipients PUBLIC.asc` (the vault.recipients key of the old server)'
  );
}

/**
 * Refuses a new passphrase or key where the vault already holds snapshots (a rebuilt server would
 * split the vault in two halves that open with different secrets), and checks that a reused
 * passphrase opens the newest snapshot. Returns the reused passphrase and what the snapshots need.
 */
async function reuseKeys(
  opts: InitOptions,
  vaultDir: string,
  passphraseFile: string | null,
  recipients: string[],
): Promise<{ passphrase: string | null; snapshots: number; describe: string }> {
  let snaps: SnapshotEntry[];
  try {
    snaps = (await listSnapshots(vaultDir, { versions: true })).filter((s) => s.manifest !== null);
  } catch {
    snaps = [];
  }
  const newest = snaps.find((s) => !s.future) ?? snaps[0];
  const needs = newest?.manifest ? snapshotKeys(newest.manifest) : null;
  const describe = needs ? describeSnapshotKeys(needs) : '';
  const mastodonDir = path.resolve(opts.mastodonDir);
  const given = await Promise.all(recipients.map((f) => readRecipient(f, '--recipients')));
  const passphrase = opts.reusePassphraseFile === undefined ? null : readPassphraseFile(opts.reusePassphraseFile, '--passphrase-file');
  if (passphrase !== null && passphraseFile !== null && existsSync(passphraseFile)) {
    if (readPassphraseFile(passphraseFile) !== passphrase) {
      throw new UserError(
        `${passphraseFile} already holds another passphrase than --passphrase-file ${opts.reusePassphraseFile}; move it away (keep it if any snapshot needs it) and run init again.`,
      );
    }
  }
  if (!newest || !needs) return { passphrase, snapshots: 0, describe };
  const where = `${vaultDir} already holds ${snaps.length} snapshot${snaps.length > 1 ? 's' : ''} (newest ${newest.id}, opened by ${describe})`;
  if (opts.generateKeysDir !== undefined) {
    throw new UserError(`${where}; --generate-keys would make a new key and split the vault: ${reuseHint(mastodonDir, vaultDir)}.`);
  }
  if (passphrase !== null) {
    if (needs.passphrase && (await passphraseOpens(newest, passphrase)) === false) {
      throw new UserError(
        `--passphrase-file ${opts.reusePassphraseFile}: that passphrase does not open snapshot ${newest.id} in ${vaultDir} (opened by ${describe}); give the passphrase its snapshots were made with.`,
      );
    }
    return { passphrase, snapshots: snaps.length, describe };
  }
  if (given.length > 0) {
    if (!given.some((k) => needs.recipients.includes(k.fingerprint))) {
      throw new UserError(
        `--recipients: ${given.map((k) => k.fingerprint).join(', ')} opens none of the snapshots in ${vaultDir} (newest ${newest.id} is opened by ${describe}); give the key they were made for, or --passphrase-file.`,
      );
    }
    return { passphrase: null, snapshots: snaps.length, describe };
  }
  // An existing passphrase file is kept as it is: it is the old key unless someone replaced it.
  if (passphraseFile !== null && existsSync(passphraseFile)) return { passphrase: null, snapshots: snaps.length, describe };
  throw new UserError(
    `${where}; a new passphrase would split the vault into snapshots that open with different secrets: ${reuseHint(mastodonDir, vaultDir)}.`,
  );
}

/** A strong passphrase: 256 random bits, printable, one line. */
export function newPassphrase(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Writes a working config from a Mastodon install's .env.production: passwords into 0600 files
 * next to the config, a fresh passphrase file (0400) unless one exists, and the YAML itself,
 * which is validated before it is written and never replaces an existing one without `force`.
 */
export async function runInit(opts: InitOptions): Promise<InitResult> {
  const plan = planInit(opts);
  const reused = await reuseKeys(opts, plan.vaultDir, plan.passphraseFile, plan.recipients);
  const access = databaseAccess(plan.derived.database);
  // Peer authentication lets only the OS user of the role's name connect as that role over the socket.
  const osUser = access.method === 'peer' ? access.role : null;
  const account = osUser === null ? null : await findAccount(osUser);
  const root = process.getuid?.() === 0;
  const handTo = root && account !== null && account.uid !== 0 ? account : null;

  const homeExisted = existsSync(plan.home);
  // Folders above it as /etc is (0755), so that the user running backups reaches the config.
  await mkdir(path.dirname(plan.home), { recursive: true, mode: 0o755 });
  await mkdir(plan.home, { recursive: true, mode: 0o750 });
  const passwordFiles = await writePasswordFiles(plan.derived);
  const keys = opts.generateKeysDir === undefined ? null : await generateKeys(plan.home, opts.generateKeysDir);
  let passphraseCreated = false;
  if (plan.passphraseFile !== null && !existsSync(plan.passphraseFile)) {
    await createExclusive(plan.passphraseFile, `${reused.passphrase ?? newPassphrase()}\n`, 0o400);
    passphraseCreated = true;
  }
  const secretsMade = [
    ...passwordFiles,
    ...(passphraseCreated && plan.passphraseFile ? [plan.passphraseFile] : []),
    ...(keys ? [keys.signingSecret] : []),
  ];
  const handedOver = handTo
    ? await handOverAll(handTo, { home: homeExisted ? null : plan.home, secretsMade, vaultDir: plan.vaultDir })
    : [];

  const text = configText(plan, keys, osUser);
  // Fails with every problem listed if the derivation produced something the loader rejects.
  parseConfig(text, plan.configPath);
  await writeFileAtomic(plan.configPath, text, 0o644);
  return {
    configPath: plan.configPath,
    passphraseFile: plan.passphraseFile,
    keys,
    passphraseCreated,
    passwordFiles,
    vaultDir: plan.vaultDir,
    keep: { ...DEFAULT_KEEP },
    mediaDir: plan.derived.media?.dir ?? null,
    notes: plan.derived.notes,
    reusedKey: reused.snapshots > 0 ? reused.describe : null,
    peerMap:
      access.method === 'peer' && account === null
        ? peerMapLines({
            osUser: userInfo().username,
            role: access.role,
            database: plan.derived.database.name,
            identFiles: debianIdentFiles(),
          })
        : null,
    access: { ...access, osUser, osUserExists: account !== null, switchUser: osUser !== null && account?.uid !== process.getuid?.() },
    handedOver,
  };
}

/** Where everything goes, and what .env.production says: read and decided before anything is written. */
interface InitPlan {
  mastodonDir: string;
  configPath: string;
  /** The config's folder, which holds the secret files beside it. */
  home: string;
  derived: MastodonDerivation;
  recipients: string[];
  passphraseFile: string | null;
  vaultDir: string;
}

/** Refuses to replace a config without --force, reads .env.production, and names every file init writes. */
function planInit(opts: InitOptions): InitPlan {
  const mastodonDir = path.resolve(opts.mastodonDir);
  const configPath = path.resolve(opts.configPath);
  if (existsSync(configPath) && !opts.force) {
    throw new UserError(`${configPath} already exists; pass --force to replace it, or --config to write elsewhere.`);
  }
  const env = readMastodonEnv(mastodonDir);
  const home = path.dirname(configPath);
  const base = path.basename(configPath).replace(/\.ya?ml$/, '');
  const prefix = base === 'permafrost' ? '' : `${base}.`;
  const derived = deriveFromMastodonEnv(env, mastodonDir, {
    databasePasswordFile: path.join(home, `${prefix}database.password`),
    redisPasswordFile: path.join(home, `${prefix}redis.password`),
  });
  const recipients = (opts.recipients ?? []).map((f) => path.resolve(f));
  const passphraseOnly = opts.generateKeysDir === undefined && (recipients.length === 0 || opts.reusePassphraseFile !== undefined);
  const passphraseFile = passphraseOnly ? path.join(home, `${prefix}passphrase`) : null;
  const vaultDir = path.resolve(opts.vaultDir ?? DEFAULT_VAULT_DIR);
  return { mastodonDir, configPath, home, derived, recipients, passphraseFile, vaultDir };
}

/** The database's and Redis's passwords from .env.production, each into its 0600 file. */
async function writePasswordFiles(derived: MastodonDerivation): Promise<string[]> {
  const written: string[] = [];
  const secrets: Array<[string | undefined, string | undefined]> = [
    [derived.database.passwordFile, derived.passwords.database],
    [derived.redis.passwordFile, derived.passwords.redis],
  ];
  for (const [file, value] of secrets) {
    if (file === undefined || value === undefined) continue;
    await writeFileAtomic(file, `${value}\n`, 0o600);
    written.push(file);
  }
  return written;
}

/**
 * The backups run as `account`: it reads the config folder (when init made it), owns the secrets
 * init made, and the vault (when init makes it). Returns what was handed over.
 */
async function handOverAll(account: Account, made: { home: string | null; secretsMade: string[]; vaultDir: string }): Promise<string[]> {
  const handedOver: string[] = [];
  if (made.home !== null) await handOver(made.home, account, 'group', handedOver);
  for (const f of made.secretsMade) await handOver(f, account, 'owner', handedOver);
  if (!existsSync(made.vaultDir)) {
    await mkdir(path.dirname(made.vaultDir), { recursive: true, mode: 0o755 });
    await mkdir(made.vaultDir, { mode: 0o750 });
    await handOver(made.vaultDir, account, 'owner', handedOver);
  }
  return handedOver;
}

/** The config's YAML: a header that says how it was made and who runs permafrost, the config, and the commented sections. */
function configText(plan: InitPlan, keys: GeneratedKeys | null, osUser: string | null): string {
  const { derived, passphraseFile, recipients } = plan;
  const config = {
    database: derived.database,
    vault: {
      dir: plan.vaultDir,
      ...(passphraseFile !== null ? { passphraseFile } : {}),
      ...(keys ? { recipients: [keys.recipientPublic], signingKeyFile: keys.signingSecret, signerKeyFile: keys.signerPublic } : {}),
      ...(recipients.length > 0 ? { recipients } : {}),
      keep: { ...DEFAULT_KEEP },
    },
    redis: derived.redis,
    secrets: derived.secrets,
    ...(derived.media ? { media: derived.media } : {}),
    ...(derived.mediaBucket ? { mediaBucket: derived.mediaBucket } : {}),
  };
  const header = [
    `# permafrost config written by \`permafrost init --mastodon ${plan.mastodonDir}\` on ${new Date().toISOString()}.`,
    '# Passwords live in the 0600 files named here, never in this file. Check it with `permafrost doctor`.',
    ...derived.notes.map((n) => `# Note: ${n}`),
    ...(osUser !== null
      ? [
          `# The database is reached over the unix socket ${derived.database.host} without a password (peer authentication):`,
          `# run permafrost as the OS user ${osUser}, e.g. \`runuser -u ${osUser} -- permafrost --config ${plan.configPath} doctor\`.`,
        ]
      : []),
  ];
  const sections = commentedSections({ role: 'source', configDir: plan.home, syncthingHome: guessSyncthingHome() });
  return `${header.join('\n')}\n${stringify(config)}${sections}`;
}

/** Gives `file` to `account`: as its owner (mode kept), or its group (root keeps the folder, the account reads it). */
async function handOver(file: string, account: Account, how: 'owner' | 'group', done: string[]): Promise<void> {
  const st = await stat(file);
  if (how === 'owner') await chown(file, account.uid, account.gid);
  else await chown(file, st.uid, account.gid);
  done.push(file);
}

/** Where `init --device` puts snapshots and media unless told: beside each other, as the server's vault. */
export const DEFAULT_DEVICE_VAULT_DIR = '/srv/permafrost/snapshots';
export const DEFAULT_DEVICE_MEDIA_DIR = '/srv/permafrost/media';

export interface InitDeviceOptions {
  /** Where the config is written. */
  configPath: string;
  force?: boolean;
  /** The device's Syncthing folder for snapshots (vault.dir). */
  vaultDir?: string;
  /** The device's Syncthing folder for the server's media (media.dir). */
  mediaDir?: string;
  /** Syncthing's folder on the device (its config.xml holds the API key). */
  syncthingHome?: string;
  /** Syncthing's GUI/REST address (or unix socket) on the device; default http://127.0.0.1:8384. */
  syncthingUrl?: string;
  /** The server's Syncthing device ID (`permafrost device-id` on the server), as syncthing.devices. */
  serverId?: string;
}

export interface InitDeviceResult {
  configPath: string;
  vaultDir: string;
  mediaDir: string;
  syncthingHome: string;
  keep: KeepPolicy;
  /** The server's device ID written into syncthing.devices, or null: it is still to be added. */
  serverId: string | null;
}

/**
 * Writes a backup device's config: vault.dir and media.dir (the folders Syncthing fills), the
 * receiver's syncthing section, vault.keep, and the alerting and page sections commented out.
 * No database, no passphrase: a device holds only encrypted copies.
 */
export async function runInitDevice(opts: InitDeviceOptions): Promise<InitDeviceResult> {
  const configPath = path.resolve(opts.configPath);
  if (existsSync(configPath) && !opts.force) {
    throw new UserError(`${configPath} already exists; pass --force to replace it, or --config to write elsewhere.`);
  }
  const home = path.dirname(configPath);
  const vaultDir = path.resolve(opts.vaultDir ?? DEFAULT_DEVICE_VAULT_DIR);
  const mediaDir = path.resolve(opts.mediaDir ?? DEFAULT_DEVICE_MEDIA_DIR);
  if (mediaDir === vaultDir || mediaDir.startsWith(`${vaultDir}/`) || vaultDir.startsWith(`${mediaDir}/`)) {
    throw new UserError(
      `--media ${mediaDir} and --vault ${vaultDir} overlap; Syncthing needs two separate folders, e.g. ${DEFAULT_DEVICE_VAULT_DIR} and ${DEFAULT_DEVICE_MEDIA_DIR}.`,
    );
  }
  const syncthingHome = path.resolve(opts.syncthingHome ?? guessSyncthingHome());
  const config = {
    vault: { dir: vaultDir, keep: { ...DEFAULT_KEEP } },
    media: { dir: mediaDir },
    syncthing: {
      url: opts.syncthingUrl ?? 'http://127.0.0.1:8384',
      home: syncthingHome,
      role: 'receiver',
      devices: opts.serverId ? [{ name: 'server', id: opts.serverId }] : [],
      // The dead-man alarm: the daemon alerts when no snapshot newer than this has arrived.
      staleAfter: '2h',
    },
  };
  const header = [
    `# permafrost config of a backup device, written by \`permafrost init --device\` on ${new Date().toISOString()}.`,
    '# It holds encrypted copies only: no database, no passphrase. vault.dir receives the snapshots and media.dir the',
    "# server's media (public/system without cache/), both through Syncthing (`permafrost sync apply` sets it up).",
    ...(opts.serverId
      ? []
      : ['# syncthing.devices: add the server, - { name: server, id: "<what `permafrost device-id` prints there>" }.']),
  ];
  const sections = commentedSections({ role: 'receiver', configDir: home, syncthingHome, skip: ['syncthing'] });
  const text = `${header.join('\n')}\n${stringify(config)}${sections}`;
  parseConfig(text, configPath);
  await mkdir(path.dirname(home), { recursive: true, mode: 0o755 });
  await mkdir(home, { recursive: true, mode: 0o750 });
  await writeFileAtomic(configPath, text, 0o644);
  return { configPath, vaultDir, mediaDir, syncthingHome, keep: { ...DEFAULT_KEEP }, serverId: opts.serverId ?? null };
}
