/**
 * `permafrost rekey`: rewraps the session key of existing snapshots for the keys configured now
 * (vault.recipients, vault.passphraseFile) without re-encrypting their data. Each part's leading
 * key packets (PKESK, SKESK) are replaced; the SEIPD packet (the data) is copied byte for byte.
 * The rekeyed snapshot is written beside the old one and checked; only then does it take the
 * old one's name, and the old one is removed. A snapshot whose key packets already name exactly the
 * configured keys is skipped, so a run stopped half-way (or `rekey latest` before `rekey all`) is
 * completed by running it again; what a run killed between the two renames left is put right first.
 */
import { createDecipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as openpgp from 'openpgp';
import { errorMessage, IntegrityError, PermafrostError, UserError, type ErrorKind } from '../errors.js';
import { acquireLock } from '../vault/lock.js';
import { compareFolder } from '../vault/check.js';
import { HashCounter, sha256File } from '../crypto/hash.js';
import { fsyncDir, fsyncFile, writeFileAtomic } from '../vault/fs-durable.js';
import type { DecryptSecret, SecretFlags } from '../crypto/keys-identity.js';
import { decryptSecretFor, readVaultPassphrase } from './secrets.js';
import { GPG22_CONFIG, loadEncryptionKeys, messageKeysFor, readKeyFile, type EncryptionKeys } from '../crypto/keys.js';
import { MANIFEST_NAME, SIGNATURE_NAME, type Manifest, type ManifestFile } from '../vault/manifest.js';
import { readSigningKey, signDetached, type SigningKey } from '../crypto/signature.js';
import { createPartial, discardPartial, findSnapshot, listSnapshots, SNAPSHOT_ID_RE, type SnapshotEntry } from '../vault/store.js';
import { openVault, VAULT_NAMES, type Vault } from '../vault/layout.js';

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

/** Where the encrypted bytes of the SEIPD packet at `at` start: after its header and version octet. */
function seipdDataStart(head: Buffer, at: number): number | null {
  const b = head[at];
  if (b === undefined) return null;
  if ((b & 0x40) !== 0) {
    const l0 = head[at + 1];
    if (l0 === undefined) return null;
    // One length octet (also a partial body length's first chunk), two, or 0xff and four.
    return at + (l0 < 192 || (l0 >= 224 && l0 < 255) ? 2 : l0 < 224 ? 3 : 6) + 1;
  }
  const type = b & 3;
  return at + 1 + (type === 3 ? 0 : 1 << type) + 1;
}

/**
 * Whether `key` is the session key of the SEIPD packet at `at`: OpenPGP's quick check (RFC 4880
 * §5.13), the random first block's last two octets repeated, decrypts only that prefix, no data. A
 * wrong key passes it once in 65536; an SKESK without an encrypted session key (`gpg -c`, a
 * passphrase-only backup) yields a key for any passphrase, so this is what tells the right one.
 */
export function sessionKeyFits(head: Buffer, at: number, key: Buffer): boolean {
  const start = seipdDataStart(head, at);
  if (start === null || head[start - 1] !== 1 || head.length < start + 18 || key.length !== 32) return false;
  const prefix = createDecipheriv('aes-256-cfb', key, Buffer.alloc(16)).update(head.subarray(start, start + 18));
  return prefix[14] === prefix[16] && prefix[15] === prefix[17];
}

/** What rekey can unwrap session keys with itself (openpgp.js): not a key only gpg's agent holds. */
type RekeySecret = Exclude<DecryptSecret, { kind: 'agent' }>;

/** The private key the identity holds, unlocked. */
async function identityKey(secret: DecryptSecret & { kind: 'identity' }): Promise<openpgp.PrivateKey> {
  const key = (await readKeyFile(secret.file, '--identity')) as openpgp.PrivateKey;
  return key.isDecrypted() ? key : openpgp.decryptKey({ privateKey: key, passphrase: secret.keyPassphrase });
}

/** The AES-256 session key of one part, unwrapped from its key packets with the secret and proven by the quick check. */
async function unwrap(snapshot: SnapshotEntry, file: ManifestFile, part: PartHead, secret: RekeySecret): Promise<Buffer> {
  const opensNone = (cause?: unknown): UserError =>
    new UserError(
      `Cannot rekey snapshot ${snapshot.id}: ${secret.kind === 'identity' ? `the key ${secret.fingerprint}` : 'the passphrase'} opens none of the key packets of ${file.name}; pass the secret it was encrypted to (--identity or --passphrase-file).`,
      cause === undefined ? {} : { cause },
    );
  let keys: { data: Uint8Array; algorithm: string | null }[];
  try {
    keys = await openpgp.decryptSessionKeys(
      secret.kind === 'identity'
        ? { message: part.message, decryptionKeys: await identityKey(secret) }
        : { message: part.message, passwords: [secret.passphrase] },
    );
  } catch (err) {
    throw opensNone(err);
  }
  if (keys.some((k) => k.algorithm !== 'aes256' || k.data.length !== 32)) {
    throw new IntegrityError(
      `Snapshot ${snapshot.id} cannot be rekeyed: ${file.name} is not encrypted with AES-256 as permafrost writes it.`,
    );
  }
  // A wrong passphrase still "opens" an SKESK without an encrypted session key: only the quick check tells.
  const key = keys.map((k) => Buffer.from(k.data)).find((k) => sessionKeyFits(part.head, part.seipdAt, k));
  if (!key) throw opensNone();
  return key;
}

/** A part's first bytes: its key packets (read as a message) and where its SEIPD packet starts. */
interface PartHead {
  head: Buffer;
  seipdAt: number;
  message: openpgp.Message<Uint8Array>;
}

async function readPartHead(snapshot: SnapshotEntry, file: ManifestFile): Promise<PartHead> {
  const fh = await open(path.join(snapshot.dir, file.name), 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    throw new IntegrityError(`Snapshot ${snapshot.id} failed its integrity check: ${file.name} is missing; use another snapshot.`, {
      cause: err,
    });
  });
  const head = Buffer.alloc(Math.min(MAX_HEADER, file.bytes));
  try {
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  const seipdAt = seipdOffset(head);
  if (seipdAt === null)
    throw new IntegrityError(`Snapshot ${snapshot.id} cannot be rekeyed: ${file.name} does not start with key packets and a SEIPD packet.`);
  const message = await openpgp.readMessage({ binaryMessage: head.subarray(0, seipdAt), config: GPG22_CONFIG }).catch((err: unknown) => {
    throw new IntegrityError(
      `Snapshot ${snapshot.id} cannot be rekeyed: the key packets of ${file.name} cannot be read (${errorMessage(err)}).`,
      {
        cause: err,
      },
    );
  });
  return { head, seipdAt, message };
}

/** The key ids the PKESKs for the configured recipients name (the (sub)keys openpgp.js encrypts to now), sorted. */
async function configuredKeyIds(keys: EncryptionKeys): Promise<string[]> {
  const ids = await Promise.all(
    keys.recipients.map(async (r) =>
      (await r.key.getEncryptionKey(undefined, new Date(), undefined, { ...openpgp.config, ...GPG22_CONFIG }))
        .getKeyID()
        .toHex()
        .toUpperCase(),
    ),
  );
  return ids.sort();
}

/**
 * Whether a part is already wrapped for exactly the configured keys: its PKESKs name the configured
 * recipients' keys and no other, and it has an SKESK exactly when a passphrase is configured, one
 * that passphrase opens (proven by the quick check). Reads key packets only, never the data.
 */
async function wrappedForConfigured(part: PartHead, keys: EncryptionKeys, wantIds: readonly string[]): Promise<boolean> {
  const ids = part.message
    .getEncryptionKeyIDs()
    .map((id) => id.toHex().toUpperCase())
    .sort();
  if (ids.join(',') !== wantIds.join(',')) return false;
  const skesks = part.message.packets.filterByTag(openpgp.enums.packet.symEncryptedSessionKey).length;
  if (keys.passphrase === undefined) return skesks === 0;
  if (skesks === 0) return false;
  const found = await openpgp.decryptSessionKeys({ message: part.message, passwords: [keys.passphrase] }).catch(() => []);
  return found.some((k) => sessionKeyFits(part.head, part.seipdAt, Buffer.from(k.data)));
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
  const part = await readPartHead(snapshot, file);
  const start = part.seipdAt;
  const sessionKey = await unwrap(snapshot, file, part, secret);
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

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Puts right what a rekey killed mid-run left in the vault (call under the run lock, so no live
 * rekey owns any of it): a snapshot set aside as `.rekey-old-ID` whose rekeyed copy never took its
 * name goes back to ID, whole (the run rekeys it again); one whose rekeyed copy is in place is
 * removed; staging folders `.partial-rekey-*` are removed. One sentence per snapshot put right.
 */
async function finishInterrupted(vault: Vault): Promise<string[]> {
  const notes: string[] = [];
  for (const name of await readdir(vault.dir)) {
    const id = vault.rekeyAsideId(name);
    if (id === null || !SNAPSHOT_ID_RE.test(id)) continue;
    const aside = vault.rekeyAsideDir(id);
    if (await exists(vault.snapshotDir(id))) {
      await rm(aside, { recursive: true, force: true });
      notes.push(`removed ${name}, the old copy of snapshot ${id} a killed rekey left after it had put the rekeyed one in place`);
    } else {
      await rename(aside, vault.snapshotDir(id));
      await fsyncDir(vault.dir);
      notes.push(`put snapshot ${id} back from ${name}, where a killed rekey had set it aside before the rekeyed copy took its place`);
    }
  }
  for (const name of await readdir(vault.dir)) {
    if (name.startsWith(`${VAULT_NAMES.partialPrefix}${VAULT_NAMES.rekey.stagingTag}`))
      await rm(vault.leftover(name), { recursive: true, force: true });
  }
  return notes;
}

/**
 * Rekeys one snapshot: every part rewrapped into a staging folder with the new manifest (signed
 * when vault.signingKeyFile is set), the staging folder checked against it, then swapped in: the
 * old folder is moved aside, the new one takes its name, the old one is removed.
 */
async function rekeyOne(
  vault: Vault,
  snapshot: SnapshotEntry,
  keys: EncryptionKeys,
  signing: SigningKey | null,
  secret: RekeySecret,
  wantIds: readonly string[],
): Promise<RekeyResult | 'already'> {
  const manifest = snapshot.manifest;
  if (!manifest)
    throw new IntegrityError(
      `Snapshot ${snapshot.id} failed its integrity check: ${snapshot.problem ?? 'no manifest'}; use another snapshot.`,
    );
  const heads = await Promise.all(manifest.files.map((file) => readPartHead(snapshot, file)));
  const done = await Promise.all(heads.map((head) => wrappedForConfigured(head, keys, wantIds)));
  if (done.every(Boolean)) return 'already';
  const partial = await createPartial(vault.dir, `${VAULT_NAMES.rekey.stagingTag}${snapshot.id}`);
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
    // Not a partial name: a run that dies between the two renames leaves the old snapshot here, whole;
    // the next rekey puts it back (finishInterrupted).
    const aside = vault.rekeyAsideDir(snapshot.id);
    await rename(snapshot.dir, aside);
    // A failed second rename puts the old snapshot back under its name before the staging folder goes.
    await rename(partial.dir, snapshot.dir).catch(async (err: unknown) => {
      await rename(aside, snapshot.dir);
      throw err;
    });
    await fsyncDir(vault.dir);
    await rm(aside, { recursive: true, force: true });
    return { snapshot: snapshot.id, parts };
  } catch (err) {
    await discardPartial(partial);
    throw err;
  }
}

/** What a rekey run did with each snapshot it was given. */
export interface RekeyReport {
  /** Snapshots whose key packets were replaced. */
  rewrapped: RekeyResult[];
  /** Snapshots already wrapped for exactly the configured keys: left as they are. */
  alreadyDone: string[];
  /** Snapshots that could not be rekeyed, each with its sentence and exit code; left as they were. */
  failed: { snapshot: string; error: string; kind: ErrorKind; exitCode: number }[];
  /** What a rekey killed earlier had left, and how it was put right. */
  notes: string[];
}

/**
 * Rekeys `ref` (a snapshot id, "latest", or "all") for the configured keys, one snapshot at a
 * time under the run lock, after finishing what a killed rekey left. A snapshot already wrapped
 * for the configured keys is skipped; one that fails (wrong secret, damaged) is reported and the
 * run goes on with the others. `flags` give the secret that opens the snapshots as they are now.
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
): Promise<RekeyReport> {
  // vault.passphraseFile is read once: it may both decrypt (no --identity) and be one of the new keys.
  const passphrase = readVaultPassphrase(config.vault);
  const secret = await decryptSecretFor(config, flags, 'rekey', passphrase);
  if (secret.kind === 'agent') throw new UserError('rekey unwraps the session keys itself: pass the secret key with --identity FILE.');
  const keys = await loadEncryptionKeys(config.vault, passphrase);
  const wantIds = await configuredKeyIds(keys);
  const signing = config.vault.signingKeyFile === undefined ? null : await readSigningKey(config.vault.signingKeyFile);
  const vault = openVault(config.vault.dir);
  const lock = acquireLock(vault.dir, 'rekey');
  try {
    const report: RekeyReport = { rewrapped: [], alreadyDone: [], failed: [], notes: await finishInterrupted(vault) };
    const chosen = ref === 'all' ? await listSnapshots(config.vault.dir) : [await findSnapshot(config.vault.dir, ref)];
    for (const s of chosen) {
      try {
        const r = await rekeyOne(vault, s, keys, signing, secret, wantIds);
        if (r === 'already') report.alreadyDone.push(s.id);
        else report.rewrapped.push(r);
      } catch (err) {
        if (!(err instanceof PermafrostError)) throw err;
        report.failed.push({ snapshot: s.id, error: err.message, kind: err.kind, exitCode: err.exitCode });
      }
    }
    return report;
  } finally {
    lock.release();
  }
}

/** The error a run with failed snapshots ends with: the one sentence when one failed, else how many and the first. */
export function rekeyFailed(report: RekeyReport): PermafrostError | null {
  const [first, ...more] = report.failed;
  if (!first) return null;
  if (more.length === 0) return new PermafrostError(first.kind, first.error);
  return new PermafrostError(
    first.kind,
    `${report.failed.length} snapshots could not be rekeyed and keep their old key packets (${report.rewrapped.length} rewrapped, ${report.alreadyDone.length} already done); the first: ${first.error}`,
  );
}
