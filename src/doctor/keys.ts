/**
 * doctor's key lines: each vault.recipients key can encrypt now, the signing and signer keys are
 * usable, and the server holds no secret key of a recipient (which would undo the point of
 * recipients: whoever takes the server could decrypt every snapshot).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import * as openpgp from 'openpgp';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import { readRecipient } from '../crypto/keys.js';
import { readSignerKey, readSigningKey } from '../crypto/signature.js';
import type { CheckLine } from './checks.js';

/** Key files bigger than this are not looked into for secret keys. */
const MAX_KEY_FILE = 1 << 20;

/** Fingerprints of the secret keys in the regular files of `dirs` (not recursive), with the file each is in. */
async function secretKeysIn(dirs: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const dir of new Set(dirs)) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const file = path.join(dir, name);
      const st = await stat(file).catch(() => null);
      if (!st?.isFile() || st.size > MAX_KEY_FILE) continue;
      const bytes = await readFile(file).catch(() => null);
      if (!bytes) continue;
      const text = bytes.toString('latin1');
      const keys = await (text.includes('-----BEGIN PGP PRIVATE KEY BLOCK')
        ? openpgp.readPrivateKeys({ armoredKeys: text })
        : openpgp.readPrivateKeys({ binaryKeys: bytes })
      ).catch(() => []);
      for (const k of keys) found.set(k.getFingerprint().toUpperCase(), file);
    }
  }
  return found;
}

/** One line per configured key (recipients, signing key, signer key), and a WARN per recipient whose secret key is on this host. */
export async function checkKeys(config: Config): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  const recipients = config.vault.recipients ?? [];
  const fingerprints: string[] = [];
  for (const file of recipients) {
    try {
      const r = await readRecipient(file);
      const expires = await r.key.getExpirationTime();
      fingerprints.push(r.fingerprint);
      lines.push({
        check: 'recipient',
        status: 'ok',
        message: `${file}: key ${r.fingerprint} can encrypt${expires instanceof Date ? `, expires ${expires.toISOString().slice(0, 10)}` : ', does not expire'}`,
      });
    } catch (err) {
      lines.push({
        check: 'recipient',
        status: 'fail',
        message: errorMessage(err),
        fix: 'replace the file with a usable public key (see README, Keys)',
      });
    }
  }
  if (config.role === 'source' && fingerprints.length > 0) {
    const dirs = [path.dirname(config.configPath), ...recipients.map((f) => path.dirname(f))];
    const secrets = await secretKeysIn(dirs);
    for (const fpr of fingerprints) {
      const at = secrets.get(fpr);
      if (at) {
        lines.push({
          check: 'recipient',
          status: 'warn',
          message: `the secret key of recipient ${fpr} is on this server (${at}): whoever takes the server can decrypt every snapshot`,
          fix: `move ${at} off the server (keep it where you restore), then \`shred -u\` it here`,
        });
      }
    }
  }
  for (const [setting, read] of [
    [
      'signing key',
      async () => (config.vault.signingKeyFile === undefined ? null : (await readSigningKey(config.vault.signingKeyFile)).fingerprint),
    ],
    ['signer key', async () => (await readSignerKey(config.vault.signerKeyFile))?.fingerprint ?? null],
  ] as const) {
    try {
      const fpr = await read();
      // The fingerprint is what a restore pins (--signer): the admin keeps it off the server, with the key.
      if (fpr) {
        lines.push({
          check: setting,
          status: 'ok',
          message: `key ${fpr} is usable; keep this fingerprint with your keys: restores check manifests against it (restore.sh --signer ${fpr})`,
        });
      }
    } catch (err) {
      lines.push({
        check: setting,
        status: 'fail',
        message: errorMessage(err),
        fix: 'fix the key file as the message says (see README, Keys)',
      });
    }
  }
  return lines;
}
