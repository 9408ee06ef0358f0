/**
 * Every secret a job needs, read once when it starts: the only place besides `init` that opens a
 * secret file (eslint.config.mjs keeps config/secret-file.ts to the layers that start jobs). The
 * steps below get the values (config/secret-values.ts), never a path to read.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { loadOpenpgp } from '../crypto/openpgp-load.js';
import type { Config, SourceConfig } from '../config/schema.js';
import type { SyncthingConfig } from '../config/schema-replicate.js';
import { passphraseFor, readPassphraseFile, readSecretFile } from '../config/secret-file.js';
import { Secret, type JobSecrets } from '../config/secret-values.js';
import type { DecryptSecret, SecretFlags } from '../crypto/keys-identity.js';
import { readKeyFile } from '../crypto/keys.js';
import { UserError } from '../errors.js';
import type { PgServer } from '../tools/postgres.js';
import type { RedisServer } from '../tools/redis-cli.js';

/** A secret file of the config, read now; undefined when the config names none. */
function secretFile(file: string | undefined, key: string): Secret | undefined {
  return file === undefined ? undefined : Secret.read(() => readSecretFile(file, key));
}

/**
 * Every secret the config names, each read once (a job calls this at its start and passes the
 * values down). One that cannot be read is kept with its error, thrown where the value is used:
 * a job fails for it exactly where and how it did when each step read its own file, and an alert
 * channel or an optional part that cannot read its secret costs the run nothing more than before.
 */
export function readJobSecrets(config: Config): JobSecrets {
  const source = config.role === 'source' ? config : null;
  const redis = config.redis || undefined;
  return {
    database: secretFile(source?.database.passwordFile, 'database.passwordFile'),
    verifyDatabase: secretFile(config.verify?.connection?.passwordFile, 'database.passwordFile'),
    redis: secretFile(source ? redis?.passwordFile : undefined, 'redis.passwordFile'),
    syncthing: readSyncthingKey(config),
    mastodon: secretFile(config.notify?.mastodon?.tokenFile, 'notify.mastodon.tokenFile'),
    web: secretFile(config.web?.tokenFile, 'web.tokenFile'),
    vaultPassphrase: readVaultPassphrase(config.vault),
  };
}

/** A server's config as its backup steps use it: the database and Redis with their passwords, and every secret of the job. */
export type SourceJob = SourceConfig & {
  readonly database: PgServer;
  readonly redis: RedisServer | false | undefined;
  /** Every secret of the job (`secrets` is the config's .env.production part). */
  readonly secretValues: JobSecrets;
};

/** The config with the secrets read at the job's start attached where its steps connect. */
export function withSourceSecrets(config: SourceConfig, secrets: JobSecrets): SourceJob {
  return {
    ...config,
    database: { ...config.database, password: secrets.database },
    redis: config.redis ? { ...config.redis, password: secrets.redis } : config.redis,
    secretValues: secrets,
  };
}

/** vault.passphraseFile as stock gpg will read it (see readPassphraseFile), read now; undefined when the config names none. */
export function readVaultPassphrase(vault: { passphraseFile?: string | undefined }): Secret | undefined {
  const file = vault.passphraseFile;
  return file === undefined ? undefined : Secret.read(() => readPassphraseFile(file));
}

/** The Syncthing API key, read now; undefined when the config has no syncthing section. */
export function readSyncthingKey(config: Pick<Config, 'syncthing'>): Secret | undefined {
  const st = config.syncthing;
  return st ? Secret.read(() => readApiKey(st)) : undefined;
}

/** The API key from syncthing.apiKeyFile, or from <gui><apikey> in syncthing.home's config.xml. */
export function readApiKey(cfg: SyncthingConfig): string {
  if (cfg.apiKeyFile) return readSecretFile(cfg.apiKeyFile, 'syncthing.apiKeyFile');
  const file = path.join(cfg.home!, 'config.xml');
  let xml: string;
  try {
    xml = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`syncthing.home: cannot read ${file}; point syncthing.home at Syncthing's folder (the one holding config.xml).`, {
      cause: err,
    });
  }
  const m = /<gui\b[\s\S]*?<apikey>([^<]+)<\/apikey>[\s\S]*?<\/gui>/.exec(xml);
  if (!m?.[1])
    throw new UserError(`syncthing.home: ${file} has no GUI API key; set one in Syncthing's settings, or use syncthing.apiKeyFile.`);
  return m[1].trim();
}

/** Refuses a secret key file that group or others can read: it is the key to every snapshot. */
function checkPrivateFile(file: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode & 0o777;
  } catch (err) {
    throw new UserError(`--identity: cannot read ${file}; fix the path.`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new UserError(
      `--identity: ${file} is accessible by group or others (mode 0${mode.toString(8)}); run \`chmod 600 ${file}\` and try again.`,
    );
  }
}

/** Reads and unlocks the identity: a secret key, with its passphrase from the file or the terminal when protected. */
async function readIdentity(flags: SecretFlags & { identity: string }): Promise<DecryptSecret> {
  const file = flags.identity;
  checkPrivateFile(file);
  const key = await readKeyFile(file, '--identity');
  if (!key.isPrivate()) {
    throw new UserError(`--identity: ${file} is a public key; pass the secret key (\`gpg --export-secret-keys --armor KEYID > FILE\`).`);
  }
  const fingerprint = key.getFingerprint().toUpperCase();
  if (key.isDecrypted()) return { kind: 'identity', file, fingerprint, keyPassphrase: '' };
  let keyPassphrase: string;
  if (flags.identityPassphraseFile !== undefined)
    keyPassphrase = readPassphraseFile(flags.identityPassphraseFile, '--identity-passphrase-file');
  else if (flags.askIdentityPassphrase) keyPassphrase = await flags.askIdentityPassphrase(`Passphrase of the key ${fingerprint}: `);
  else {
    throw new UserError(
      `--identity: the key ${fingerprint} in ${file} is passphrase-protected; pass --identity-passphrase-file FILE (a 0600 file holding it), or run on a terminal to be asked.`,
    );
  }
  try {
    await (await loadOpenpgp()).decryptKey({ privateKey: key, passphrase: keyPassphrase });
  } catch (err) {
    throw new UserError(`--identity: the passphrase given does not unlock the key ${fingerprint} in ${file}; check it and try again.`, {
      cause: err,
    });
  }
  return { kind: 'identity', file, fingerprint, keyPassphrase };
}

/**
 * The secret a decrypting job uses, read once at its start: --gpg-agent or --identity when given,
 * else the passphrase (--passphrase-file, else vault.passphraseFile as read at the job's start). The identity is checked here (a
 * secret key, unlocked by its passphrase) so a wrong one fails before anything is decrypted; gpg
 * imports it into a throwaway home inside the private temp folder (recover/decrypt.ts). On a
 * server that encrypts only to recipients, one UserError says plainly that it holds no secret, as
 * it should, and where the job can run instead.
 */
export async function decryptSecretFor(
  config: { vault: { passphraseFile?: string | undefined; recipients?: readonly string[] | undefined } },
  flags: SecretFlags,
  job: string,
  vaultPassphrase: Secret | undefined,
): Promise<DecryptSecret> {
  if (flags.gpgAgent) {
    if (flags.identity !== undefined) throw new UserError('--identity and --gpg-agent each name the secret key: pass one of them.');
    return { kind: 'agent', home: process.env.GNUPGHOME || path.join(homedir(), '.gnupg') };
  }
  if (flags.identity !== undefined) return readIdentity({ ...flags, identity: flags.identity });
  if (flags.passphraseFile === undefined && config.vault.passphraseFile === undefined && config.vault.recipients !== undefined) {
    throw new UserError(
      `permafrost ${job} cannot decrypt here: this host holds no secret (vault.recipients encrypts to public keys only, and no vault.passphraseFile is set); run it where a recipient's secret key is, with --identity FILE.`,
    );
  }
  const from = flags.passphraseFile === undefined ? 'vault.passphraseFile' : `--passphrase-file ${flags.passphraseFile}`;
  const passphrase =
    flags.passphraseFile === undefined && vaultPassphrase ? vaultPassphrase.reveal() : passphraseFor(config, flags.passphraseFile, job);
  return { kind: 'passphrase', passphrase, from };
}
