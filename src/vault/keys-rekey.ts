/**
 * `permafrost rekey`: rewraps the session key of existing snapshots for the keys configured now
 * (vault.recipients, vault.passphraseFile) without re-encrypting their data. Each part's leading
 * key packets (PKESK, SKESK) are replaced; the SEIPD packet (the data) is copied byte for byte.
 * The rekeyed snapshot is written beside the old one and checked; only then does it take the
 * old one's name, and the old one is removed.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as openpgp from 'openpgp';
import { IntegrityError, UserError } from '../errors.js';
import { acquireLock } from '../schedule/lock.js';
import { compareFolder } from './check.js';
import { HashCounter, sha256File } from './crypto.js';
import { fsyncDir, fsyncFile, writeFileAtomic } from './fs-durable.js';
import { decryptSecretFor, type DecryptSecret, type SecretFlags } from './keys-identity.js';
import { GPG22_CONFIG, loadEncryptionKeys, messageKeysFor, readKeyFile, type EncryptionKeys } from './keys.js';
import { MANIFEST_NAME, SIGNATURE_NAME, type Manifest, type ManifestFile } from './manifest.js';
import { readSigningKey, signDetached, type SigningKey } from './signature.js';
import { createPartial, discardPartial, findSnapshot, listSnapshots, type SnapshotEntry } from './store.js';

const KEY_PACKET_TAGS = new Set([1, 3]);
const SEIPD_TAG = 18;
/** Key packets are small; a header longer than this is no part of ours. */
const MAX_HEADER = 64 * 1024;

/** Where the key packets of an OpenPGP message end and its SEIPD packet starts (RFC 4880 §4.2), or null. */
export function seipdOffset(head: Buffer): number | null {
  let at = 0;
  while (at < head.length) {
    const b = head[at]!;
    if ((b & 0x80) === 0) return null;
    const newFormat = (b & 0x40) !== 0;
    const tag = newFormat ? b & 0x3f : (b >> 2) & 0x0f;
    if (tag === SEIPD_TAG) return at;
    if (!KEY_PACKET_TAGS.has(tag)) return null;
    let len: number;
    let hdr: number;
    if (newFormat) {
      const l0 = head[at + 1];
      if (l0 === undefined || (l0 >= 224 && l0 < 255)) return null;
      if (l0 < 192) [len, hdr] = [l0, 2];
      else if (l0 < 224) [len, hdr] = [((l0 - 192) << 8) + (head[at + 2] ?? 0) + 192, 3];
      else [len, hdr] = [head.readUInt32BE(at + 2), 6];
    } else {
      const type = b & 3;
      if (type === 3) return null;
      hdr = 1 + (1 << type);
      len = type === 0 ? head[at + 1]! : type === 1 ? head.readUInt16BE(at + 1) : head.readUInt32BE(at + 1);
    }
    at += hdr + len;
  }
  return null;
}

/** What rekey can unwrap session keys with itself (openpgp.js): not a key only gpg's agent holds. */
type RekeySecret = Exclude<DecryptSecret, { kind: 'agent' }>;

/** The private key the identity holds, unlocked. */
async function identityKey(secret: DecryptSecret & { kind: 'identity' }): Promise<openpgp.PrivateKey> {
  const key = (await readKeyFile(secret.file, '--identity')) as openpgp.PrivateKey;
  return key.isDecrypted() ? key : openpgp.decryptKey({ privateKey: key, passphrase: secret.keyPassphrase });
}

/** The AES-256 session key of one part, unwrapped from its key packets with the secret. */
async function unwrap(snapshot: SnapshotEntry, file: ManifestFile, packets: Buffer, secret: RekeySecret): Promise<Buffer> {
  const message = await openpgp.readMessage({ binaryMessage: packets, config: GPG22_CONFIG });
  let keys: { data: Uint8Array; algorithm: string | null }[];
  try {
    keys = await openpgp.decryptSessionKeys(
      secret.kind === 'identity' ? { message, decryptionKeys: await identityKey(secret) } : { message, passwords: [secret.passphrase] },
    );
  } catch (err) {
    throw new UserError(
      `Cannot rekey snapshot ${snapshot.id}: ${secret.kind === 'identity' ? `the key ${secret.fingerprint}` : 'the passphrase'} opens none of the key packets of ${file.name}; pass the secret it was encrypted to (--identity or --passphrase-file).`,
      { cause: err },
    );
  }
  const key = keys[0];
  if (!key || key.algorithm !== 'aes256' || key.data.length !== 32) {
    throw new IntegrityError(
      `Snapshot ${snapshot.id} cannot be rekeyed: ${file.name} is not encrypted with AES-256 as permafrost writes it.`,
    );
  }
  return Buffer.from(key.data);
}

/** Writes one part anew into `dir`: new key packets, then the old file's bytes from the SEIPD packet on. Returns its manifest entry and the SEIPD's SHA-256. */
async function rewrapPart(
  snapshot: SnapshotEntry,
  file: ManifestFile,
  dir: string,
  keys: EncryptionKeys,
  secret: RekeySecret,
): Promise<{ entry: ManifestFile; seipdSha256: string }> {
  const src = path.join(snapshot.dir, file.name);
  const actual = await sha256File(src);
  if (actual.sha256 !== file.sha256 || actual.bytes !== file.bytes) {
    throw new IntegrityError(
      `Snapshot ${snapshot.id} failed its integrity check: ${file.name} does not match the SHA-256 in the manifest; use another snapshot.`,
    );
  }
  const fh = await open(src, 'r');
  const head = Buffer.alloc(Math.min(MAX_HEADER, file.bytes));
  try {
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  const offset = seipdOffset(head);
  if (offset === null)
    throw new IntegrityError(`Snapshot ${snapshot.id} cannot be rekeyed: ${file.name} does not start with key packets and a SEIPD packet.`);
  const start = offset;
  const sessionKey = await unwrap(snapshot, file, head.subarray(0, start), secret);
  const { message, facts } = await messageKeysFor(keys, sessionKey);
  const out = path.join(dir, file.name);
  const whole = new HashCounter();
  const seipd = createHash('sha256');
  async function* bytes(): AsyncGenerator<Buffer> {
    yield message.packets;
    for await (const chunk of createReadStream(src, { start, highWaterMark: 1 << 20 })) {
      seipd.update(chunk as Buffer);
      yield chunk as Buffer;
    }
  }
  await pipeline(Readable.from(bytes()), whole, createWriteStream(out, { mode: 0o640, flags: 'wx' }));
  await fsyncFile(out);
  return { entry: { ...file, bytes: whole.bytes, sha256: whole.sha256(), keys: facts }, seipdSha256: seipd.digest('hex') };
}

export interface RekeyResult {
  snapshot: string;
  /** SHA-256 of each part's SEIPD packet (the data), the same before and after. */
  parts: { name: string; seipdSha256: string; keys: ManifestFile['keys'] }[];
}

/** Hashes every file of `dir` and compares the folder with `manifest`, as `permafrost check` does. */
async function checkStaged(dir: string, manifest: Manifest): Promise<string[]> {
  const names = [MANIFEST_NAME, ...(await readdir(dir)).filter((n) => n !== MANIFEST_NAME)];
  const found = await Promise.all(names.map(async (name) => ({ name, regular: true, ...(await sha256File(path.join(dir, name))) })));
  return compareFolder(manifest, found);
}

/**
 * Rekeys one snapshot: every part rewrapped into a staging folder with the new manifest (signed
 * when vault.signingKeyFile is set), the staging folder checked against it, then swapped in: the
 * old folder is moved aside, the new one takes its name, the old one is removed.
 */
async function rekeyOne(
  vaultDir: string,
  snapshot: SnapshotEntry,
  keys: EncryptionKeys,
  signing: SigningKey | null,
  secret: RekeySecret,
): Promise<RekeyResult> {
  const manifest = snapshot.manifest;
  if (!manifest)
    throw new IntegrityError(
      `Snapshot ${snapshot.id} failed its integrity check: ${snapshot.problem ?? 'no manifest'}; use another snapshot.`,
    );
  const partial = await createPartial(vaultDir, `rekey-${snapshot.id}`);
  try {
    const parts: RekeyResult['parts'] = [];
    const files: ManifestFile[] = [];
    for (const file of manifest.files) {
      const r = await rewrapPart(snapshot, file, partial.dir, keys, secret);
      files.push(r.entry);
      parts.push({ name: file.name, seipdSha256: r.seipdSha256, keys: r.entry.keys });
    }
    // The old signature (and its signer) no longer covers the new manifest: sign anew or not at all.
    const next: Manifest = { ...manifest, files };
    delete next.signedBy;
    if (signing) next.signedBy = signing.fingerprint;
    const text = `${JSON.stringify(next, null, 2)}\n`;
    await writeFileAtomic(path.join(partial.dir, MANIFEST_NAME), text);
    if (signing) await writeFileAtomic(path.join(partial.dir, SIGNATURE_NAME), await signDetached(Buffer.from(text), signing));
    await fsyncDir(partial.dir);
    const problems = await checkStaged(partial.dir, next);
    if (problems.length > 0)
      throw new IntegrityError(
        `Rekeying snapshot ${snapshot.id} wrote a folder that fails its check (${problems.join('; ')}); the old snapshot is kept.`,
      );
    // Not a partial name: a run that dies between the two renames leaves the old snapshot here, whole (README, Keys).
    const aside = path.join(vaultDir, `.rekey-old-${snapshot.id}`);
    await rename(snapshot.dir, aside);
    await rename(partial.dir, snapshot.dir);
    await fsyncDir(vaultDir);
    await rm(aside, { recursive: true, force: true });
    return { snapshot: snapshot.id, parts };
  } catch (err) {
    await discardPartial(partial);
    throw err;
  }
}

/**
 * Rekeys `ref` (a snapshot id, "latest", or "all") for the configured keys, one snapshot at a
 * time under the run lock. `flags` give the secret that opens the snapshots as they are now.
 */
export async function runRekey(
  config: {
    vault: {
      dir: string;
      passphraseFile?: string | undefined;
      recipients?: readonly string[] | undefined;
      signingKeyFile?: string | undefined;
    };
  },
  ref: string,
  flags: SecretFlags,
): Promise<RekeyResult[]> {
  const secret = await decryptSecretFor(config, flags, 'rekey');
  if (secret.kind === 'agent') throw new UserError('rekey unwraps the session keys itself: pass the secret key with --identity FILE.');
  const keys = await loadEncryptionKeys(config.vault);
  const signing = config.vault.signingKeyFile === undefined ? null : await readSigningKey(config.vault.signingKeyFile);
  const lock = acquireLock(config.vault.dir, 'rekey');
  try {
    const chosen = ref === 'all' ? await listSnapshots(config.vault.dir) : [await findSnapshot(config.vault.dir, ref)];
    const results: RekeyResult[] = [];
    for (const s of chosen) results.push(await rekeyOne(config.vault.dir, s, keys, signing, secret));
    return results;
  } finally {
    lock.release();
  }
}
