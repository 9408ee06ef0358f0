import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSecrets } from '../../../src/capture/secrets.js';
import { UserError } from '../../../src/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const failure = (file: string): Promise<unknown> =>
  openSecrets({ file, optional: false }).then(
    () => null,
    (e: unknown) => e,
  );

describe('openSecrets (the secrets part: Mastodon\u2019s .env.production)', () => {
  it('reads the file byte for byte, binary and odd line ends included', async () => {
    const body = Buffer.concat([Buffer.from('SECRET_KEY_BASE=abc\r\nOTP_SECRET=\u00e9\n'), Buffer.from([0, 255, 10])]);
    const file = path.join(dir, '.env.production');
    writeFileSync(file, body);
    const stream = await openSecrets({ file, optional: false });
    expect(Buffer.concat(await stream.toArray()).equals(body)).toBe(true);
  });

  it('a folder is refused as not a regular file, naming the setting to fix (exit 2)', async () => {
    const folder = path.join(dir, 'a-folder');
    mkdirSync(folder);
    const err = await failure(folder);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`secrets.file: ${folder} is not a regular file; point it at Mastodon's .env.production.`);
  });

  it('a missing file says ENOENT, to check secrets.file or make the part optional (exit 2)', async () => {
    const missing = path.join(dir, 'nope', '.env.production');
    const err = await failure(missing);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `Secrets part failed: cannot read ${missing} (ENOENT); check secrets.file, or set secrets.optional: true.`,
    );
  });

  it('any other refusal (here: a path through a file, ENOTDIR) says to run as a user that can read it', async () => {
    const file = path.join(dir, 'plain');
    writeFileSync(file, 'x');
    const err = await failure(path.join(file, 'below'));
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/\(ENOTDIR\); run permafrost as a user that can read it, or set secrets\.optional: true\.$/);
  });
});
