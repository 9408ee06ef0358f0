import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../../src/config/load.js';
import type { MediaBucket } from '../../../src/config/schema-media-bucket.js';
import { UserError } from '../../../src/errors.js';
import { readMediaBucketKeys, runMediaCopy, runMediaRestore } from '../../../src/ops/offsite-media.js';
import { makeWorkspace, type Workspace } from '../../harness/env.js';
import { startS3, type S3Server } from '../../harness/s3.js';

// In process, against a real s3rver on loopback; the whole CLI path (media bucket, server-side copy) is test/e2e/offsite/media.test.ts.
describe('offsite media (in process)', () => {
  let s3: S3Server;
  let ws: Workspace;
  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket('pf-media');
    ws = makeWorkspace(null, '');
  }, 30_000);
  afterAll(() => {
    s3?.stop();
    ws?.cleanup();
  });

  /** A device config with `targets` offsite targets on the s3rver and, when given, local media. */
  const config = (opts: { media?: string; targets?: number } = {}) => {
    const credentials = s3.keyFiles(ws.dir);
    const offsite = Array.from({ length: opts.targets ?? 1 }, (_, i) => ({
      name: `t${i}`,
      endpoint: s3.endpoint,
      pathStyle: true,
      bucket: 'pf-media',
      prefix: `p${i}`,
      credentials,
    }));
    writeFileSync(ws.configFile, stringify({ vault: { dir: ws.vault }, offsite, ...(opts.media ? { media: { dir: opts.media } } : {}) }));
    return loadConfig(ws.configFile);
  };
  const fail = (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      () => null,
      (e: unknown) => e,
    );

  it('refuses what cannot work, each in one sentence (exit 2): no media, no destination, several targets unnamed', async () => {
    const none = await fail(runMediaCopy(config()));
    expect(none).toBeInstanceOf(UserError);
    expect((none as Error).message).toMatch(
      /^no media is configured: add mediaBucket .* or media\.dir \(public\/system\) to the config\.$/,
    );
    const nowhere = await fail(runMediaRestore(config()));
    expect(nowhere).toBeInstanceOf(UserError);
    expect((nowhere as Error).message).toBe(
      'say where the media goes: --to DIR (e.g. /home/mastodon/live/public/system), or configure mediaBucket.',
    );
    const two = await fail(runMediaRestore(config({ targets: 2 }), { to: ws.dir }));
    expect(two).toBeInstanceOf(UserError);
    expect((two as Error).message).toBe('several offsite targets are configured (t0, t1); name one with --target.');
  });

  it('uploads local media (not cache/), copies nothing the second time, and brings it back into a folder', async () => {
    const dir = mkdtempSync(path.join(ws.dir, 'system-'));
    const files = { 'accounts/avatars/1/a.png': 'avatar', 'media_attachments/files/2/b.jpg': 'picture' };
    for (const [rel, body] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      writeFileSync(path.join(dir, rel), body);
    }
    mkdirSync(path.join(dir, 'cache/remote'), { recursive: true });
    writeFileSync(path.join(dir, 'cache/remote/c.jpg'), 'cached');
    const c = config({ media: dir });
    const [first] = await runMediaCopy(c);
    expect(first).toMatchObject({ from: dir, mode: 'upload', copied: 2, bytes: 13, unchanged: 0, foreign: 0 });
    expect(first!.to).toMatch(/offsite target t0/);
    const [second] = await runMediaCopy(c);
    expect(second).toMatchObject({ copied: 0, unchanged: 2 });

    const back = mkdtempSync(path.join(ws.dir, 'back-'));
    const restored = await runMediaRestore(c, { to: back });
    expect(restored).toMatchObject({ to: back, mode: 'download', copied: 2, unchanged: 0 });
    for (const [rel, body] of Object.entries(files)) expect(readFileSync(path.join(back, rel), 'utf8')).toBe(body);
    expect(await runMediaRestore(c, { to: back })).toMatchObject({ copied: 0, unchanged: 2 });
  });
});

describe('readMediaBucketKeys (read once when the job starts)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-mediakeys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const bucket = (over: Partial<MediaBucket>): MediaBucket => ({ bucket: 'm', prefix: '', pathStyle: false, region: 'us-east-1', ...over });

  it('two key files; the variables of Mastodon\u2019s .env.production; neither: the AWS chain (undefined)', () => {
    const id = path.join(dir, 'id');
    const secret = path.join(dir, 'secret');
    writeFileSync(id, 'AKID\n', { mode: 0o600 });
    writeFileSync(secret, 'SHH\n', { mode: 0o600 });
    expect(readMediaBucketKeys(bucket({ credentials: { accessKeyIdFile: id, secretAccessKeyFile: secret } }))).toEqual({
      accessKeyId: 'AKID',
      secretAccessKey: 'SHH',
    });
    const env = path.join(dir, '.env.production');
    writeFileSync(env, 'S3_ENABLED=true\nAWS_ACCESS_KEY_ID= AKENV \nAWS_SECRET_ACCESS_KEY="SENV"\n', { mode: 0o600 });
    const fromEnv = { file: env, accessKeyId: 'AWS_ACCESS_KEY_ID', secretAccessKey: 'AWS_SECRET_ACCESS_KEY' };
    expect(readMediaBucketKeys(bucket({ credentialsFromEnv: fromEnv }))).toEqual({ accessKeyId: 'AKENV', secretAccessKey: 'SENV' });
    expect(readMediaBucketKeys(bucket({}))).toBeUndefined();
  });

  it('an unreadable env file and a variable it lacks are each one sentence (exit 2)', () => {
    const missing = path.join(dir, 'missing.env');
    const unreadable = { file: missing, accessKeyId: 'AWS_ACCESS_KEY_ID', secretAccessKey: 'AWS_SECRET_ACCESS_KEY' };
    expect(() => readMediaBucketKeys(bucket({ credentialsFromEnv: unreadable }))).toThrow(
      new UserError(`mediaBucket.credentialsFromEnv.file: cannot read ${missing}; run permafrost as a user that may read it.`),
    );
    const env = path.join(dir, 'partial.env');
    writeFileSync(env, 'AWS_ACCESS_KEY_ID=AK\nAWS_SECRET_ACCESS_KEY="  "\n');
    const lacking = { file: env, accessKeyId: 'AWS_ACCESS_KEY_ID', secretAccessKey: 'AWS_SECRET_ACCESS_KEY' };
    expect(() => readMediaBucketKeys(bucket({ credentialsFromEnv: lacking }))).toThrow(
      `mediaBucket.credentialsFromEnv: ${env} sets no AWS_SECRET_ACCESS_KEY; name the variable that holds the key.`,
    );
  });
});
