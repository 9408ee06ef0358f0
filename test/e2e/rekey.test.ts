import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { seipdOffset } from '../../src/vault/keys-rekey.js';
import type { Manifest } from '../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../harness/env.js';
import { fingerprint } from '../harness/fingerprint.js';
import { gpgDecryptIn, makeGpgKey } from '../harness/gpg-keys.js';
import { clusterPerFile } from '../harness/suite.js';

const cluster = clusterPerFile('source');
const offServer = mkdtempSync(path.join(tmpdir(), 'permafrost-rekey-'));
afterAll(() => rmSync(offServer, { recursive: true, force: true }));
const oldKey = makeGpgKey(offServer, 'old');
const newKey = makeGpgKey(offServer, 'new', { algo: 'rsa3072' });
let ws: Workspace;
afterEach(() => ws?.cleanup());

function useRecipients(...keys: { publicFile: string }[]): void {
  const recipients = keys.map((k) => {
    const onServer = path.join(ws.dir, path.basename(k.publicFile));
    copyFileSync(k.publicFile, onServer);
    return onServer;
  });
  ws.writeConfig({ vault: { recipients, passphraseFile: undefined } });
}

/** SHA-256 of a part's SEIPD packet: the encrypted data, which rekey must not touch. */
function seipdHash(file: string): string {
  const bytes = readFileSync(file);
  const at = seipdOffset(bytes.subarray(0, 65536));
  expect(at).not.toBeNull();
  return createHash('sha256').update(bytes.subarray(at!)).digest('hex');
}

describe('permafrost rekey (issue 12 item 4, against real gpg)', () => {
  it('rekey to a new recipient: old snapshots decrypt with the new key, not with the removed one; the SEIPD bytes are unchanged; list --json names the new key', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    useRecipients(oldKey);
    const b = await runCli(['--config', ws.configFile, 'backup', '--json']);
    expect(b.code, b.stderr).toBe(0);
    const m = JSON.parse(b.stdout) as Manifest;
    const part = path.join(ws.vault, m.id, 'database.pgdump.gpg');
    const before = seipdHash(part);

    useRecipients(newKey);
    const noSecret = await runCli(['--config', ws.configFile, 'rekey', 'all']);
    expect(noSecret.code).toBe(2);
    expect(errorSentence(noSecret.stderr)).toMatch(/^permafrost rekey cannot decrypt here: this host holds no secret/);

    const wrong = await runCli(['--config', ws.configFile, 'rekey', 'all', '--identity', newKey.secretFile]);
    expect(wrong.code).toBe(2);
    expect(errorSentence(wrong.stderr)).toMatch(
      /^Cannot rekey snapshot .*: the key [0-9A-F]{40} opens none of the key packets of database\.pgdump\.gpg/,
    );
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.partial-') || n.startsWith('.rekey-old-'))).toEqual([]);
    expect(seipdHash(part)).toBe(before);

    const r = await runCli(['--config', ws.configFile, 'rekey', 'all', '--identity', oldKey.secretFile, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { snapshot: string; parts: { seipdSha256: string }[] }[];
    expect(result[0]!.parts[0]!.seipdSha256).toBe(before);
    expect(seipdHash(part)).toBe(before);

    const out = path.join(offServer, 'rekeyed.pgdump');
    const withNew = gpgDecryptIn(newKey.home, part, out);
    expect(withNew.status, withNew.stderr).toBe(0);
    rmSync(out);
    const withOld = gpgDecryptIn(oldKey.home, part, out);
    expect(withOld.status).not.toBe(0);
    expect(withOld.stderr).toMatch(/no secret key/i);

    const list = JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as {
      keys: Record<string, { recipients: { fingerprint: string }[] }>;
    }[];
    expect(list[0]!.keys.database!.recipients.map((k) => k.fingerprint)).toEqual([newKey.fingerprint]);
    expect((await runCli(['--config', ws.configFile, 'check'])).code).toBe(0);
    const restore = await runCli([
      '--config',
      ws.configFile,
      'restore',
      'latest',
      '--database',
      'rekeyed',
      '--identity',
      newKey.secretFile,
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(fingerprint(cluster.get(), 'rekeyed')).toEqual(fingerprint(cluster.get(), 'source'));
    // Nothing staged or set aside is left in the vault.
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.partial-') || n.startsWith('.rekey-old-'))).toEqual([]);
  });
});
