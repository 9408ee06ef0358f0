import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { checkKeys } from '../../../src/doctor/keys.js';
import { makeGpgKey } from '../../harness/gpg-keys.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-doctor-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const keys = mkdtempSync(path.join(dir, 'keys-'));
const alice = makeGpgKey(keys, 'alice');
const signer = makeGpgKey(keys, 'signer');
// The public key as the server holds it: away from the secret half.
const alicePub = path.join(mkdtempSync(path.join(dir, 'pub-')), 'alice.asc');
copyFileSync(alice.publicFile, alicePub);

/** A server config in its own folder, as /etc/permafrost would be. */
function serverConfig(vault: Record<string, unknown>): { config: Config; etc: string } {
  const etc = mkdtempSync(path.join(dir, 'etc-'));
  const config = {
    role: 'source',
    configPath: path.join(etc, 'permafrost.yaml'),
    vault: { dir: path.join(etc, 'vault'), ...vault },
  } as unknown as Config;
  return { config, etc };
}

describe('doctor: keys', () => {
  it('a usable recipient and signing/signer keys are OK lines naming their fingerprints', async () => {
    const { config } = serverConfig({
      recipients: [alicePub],
      signingKeyFile: signer.secretFile,
      signerKeyFile: signer.publicFile,
    });
    const lines = await checkKeys(config);
    expect(lines.map((l) => [l.check, l.status])).toEqual([
      ['recipient', 'ok'],
      ['signing key', 'ok'],
      ['signer key', 'ok'],
    ]);
    expect(lines[0]!.message).toBe(`${alicePub}: key ${alice.fingerprint} can encrypt, does not expire`);
  });

  it('WARNs when the secret key of a recipient is in the config folder; FAILs a missing recipient and a world-readable signing key', async () => {
    const { config, etc } = serverConfig({
      recipients: [alicePub, path.join(dir, 'gone.asc')],
      signingKeyFile: path.join(dir, 'loose.asc'),
    });
    copyFileSync(alice.secretFile, path.join(etc, 'backup-key.asc'));
    writeFileSync(path.join(dir, 'loose.asc'), 'x', { mode: 0o644 });
    const lines = await checkKeys(config);
    expect(lines.map((l) => [l.check, l.status])).toEqual([
      ['recipient', 'ok'],
      ['recipient', 'fail'],
      ['recipient', 'warn'],
      ['signing key', 'fail'],
    ]);
    expect(lines[2]!.message).toBe(
      `the secret key of recipient ${alice.fingerprint} is on this server (${path.join(etc, 'backup-key.asc')}): whoever takes the server can decrypt every snapshot`,
    );
    expect(lines[3]!.message).toMatch(/is accessible by group or others \(mode 0644\)/);
  });
});
