/**
 * Issue 23 item 5: Mastodon's media in object storage, copied to the offsite targets and back,
 * through the built CLI against real s3rver processes on loopback. One server holds the media
 * bucket and a target (same endpoint: server-side CopyObject, no media byte through this host), a
 * second server the other target (streamed GET→PUT). cache/ is never copied; a second run copies
 * only what is new or changed; local media (media.dir) goes the same way; media-restore brings it
 * back into a folder and into a bucket.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { startS3, type S3Server } from '../../harness/s3.js';

const MEDIA = {
  'accounts/avatars/000/000/001/original/a1b2.png': randomBytes(3000),
  'media_attachments/files/110/000/001/original/c3d4.jpg': randomBytes(40_000),
  // Over one 16 MiB part: the streamed copy goes multipart.
  'media_attachments/files/110/000/002/original/video.mp4': randomBytes(17 * 1024 * 1024 + 5),
};
const CACHE = 'cache/media_attachments/files/111/222/333/original/remote.jpg';

interface Result {
  from: string;
  to: string;
  mode: string;
  copied: number;
  unchanged: number;
  foreign: number;
}

describe('offsite media', () => {
  let a: S3Server;
  let b: S3Server;
  let ws: Workspace;
  beforeAll(async () => {
    [a, b] = await Promise.all([startS3(), startS3()]);
    await Promise.all([
      a.createBucket('mastodon-media'),
      a.createBucket('pf-same'),
      a.createBucket('mastodon-new'),
      b.createBucket('pf-other'),
    ]);
    const c = a.client();
    for (const [key, body] of [...Object.entries(MEDIA), [CACHE, randomBytes(500)] as const])
      await c.send(new PutObjectCommand({ Bucket: 'mastodon-media', Key: key, Body: body }));
    ws = makeWorkspace(null, 'unused');
  }, 60_000);
  afterAll(() => {
    a?.stop();
    b?.stop();
    ws?.cleanup();
  });

  /** A backup device's config (no database) with the two targets, the media bucket read with the keys in .env.production, and local media. */
  const config = (over: { mediaBucket?: string; media?: string } = {}) => {
    const env = path.join(ws.dir, '.env.production');
    // Both servers take the same keys: one pair of key files serves both targets.
    const credentials = a.keyFiles(ws.dir);
    writeFileSync(env, 'S3_ENABLED=true\nS3_BUCKET=mastodon-media\nAWS_ACCESS_KEY_ID=S3RVER\nAWS_SECRET_ACCESS_KEY=S3RVER\n', {
      mode: 0o600,
    });
    writeFileSync(
      ws.configFile,
      stringify({
        vault: { dir: ws.vault },
        offsite: [
          {
            name: 'same',
            endpoint: a.endpoint,
            pathStyle: true,
            bucket: 'pf-same',
            prefix: 'pf',
            credentials,
            lock: { mode: 'governance', days: 30 },
          },
          {
            name: 'other',
            endpoint: b.endpoint,
            pathStyle: true,
            bucket: 'pf-other',
            credentials,
            lock: { mode: 'compliance', days: 7 },
          },
        ],
        ...(over.mediaBucket === undefined
          ? {}
          : {
              mediaBucket: { endpoint: a.endpoint, pathStyle: true, bucket: over.mediaBucket, credentialsFromEnv: { file: env } },
            }),
        ...(over.media === undefined ? {} : { media: { dir: over.media } }),
      }),
    );
  };
  const media = async (...args: string[]): Promise<Result[]> => {
    const r = await runCli(['--config', ws.configFile, 'offsite', 'media', '--json', ...args]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Result[];
  };
  const keys = async (s: S3Server, bucket: string, prefix = ''): Promise<string[]> =>
    ((await s.client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!).sort();
  const body = async (s: S3Server, bucket: string, key: string): Promise<Buffer> =>
    Buffer.from(await (await s.client().send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());

  it('same endpoint: server-side copies with the lock, never cache/; no media byte is read through this host', async () => {
    config({ mediaBucket: 'mastodon-media' });
    const before = a.requests().length;
    const [r] = await media('--target', 'same');
    expect(r).toMatchObject({ mode: 'server-side', copied: 3, unchanged: 0, foreign: 0 });
    expect(await keys(a, 'pf-same')).toEqual(
      Object.keys(MEDIA)
        .map((k) => `pf/media/${k}`)
        .sort(),
    );
    for (const [k, v] of Object.entries(MEDIA)) expect((await body(a, 'pf-same', `pf/media/${k}`)).equals(v)).toBe(true);
    const reqs = a.requests().slice(before);
    const copies = reqs.filter((q) => q.method === 'PUT' && q.headers['x-amz-copy-source'] !== undefined);
    expect(copies).toHaveLength(3);
    for (const q of copies) expect(q.headers).toMatchObject({ 'x-amz-object-lock-mode': 'GOVERNANCE' });
    expect(copies.map((q) => q.headers['x-amz-copy-source']).join()).not.toContain('cache');
    // Only listings were read from the media bucket: no GET of an object.
    expect(reqs.filter((q) => q.method === 'GET' && q.path.startsWith('/mastodon-media/') && q.path !== '/mastodon-media/')).toEqual([]);
  });

  it('another endpoint: streamed GET→PUT (multipart for the large file), byte for byte, never cache/', async () => {
    const [r] = await media('--target', 'other');
    expect(r).toMatchObject({ mode: 'streamed', copied: 3, unchanged: 0 });
    expect(await keys(b, 'pf-other')).toEqual(
      Object.keys(MEDIA)
        .map((k) => `media/${k}`)
        .sort(),
    );
    for (const [k, v] of Object.entries(MEDIA)) expect((await body(b, 'pf-other', `media/${k}`)).equals(v)).toBe(true);
    const creates = b
      .requests()
      .filter((q) => q.path.startsWith('/pf-other/media/'))
      .filter((q) => (q.method === 'POST' && q.query.startsWith('?uploads')) || (q.method === 'PUT' && !q.query.includes('partNumber')));
    expect(creates.filter((q) => q.method === 'POST')).toHaveLength(1);
    expect(creates.length).toBe(3);
    for (const q of creates) expect(q.headers).toMatchObject({ 'x-amz-object-lock-mode': 'COMPLIANCE' });
  });

  it('a second run copies only what is new or changed', async () => {
    const c = a.client();
    const added = 'media_attachments/files/110/000/003/original/e5f6.webp';
    const changed = 'accounts/avatars/000/000/001/original/a1b2.png';
    await c.send(new PutObjectCommand({ Bucket: 'mastodon-media', Key: added, Body: randomBytes(1234) }));
    const newAvatar = randomBytes(3000); // same size: the ETag tells it changed
    await c.send(new PutObjectCommand({ Bucket: 'mastodon-media', Key: changed, Body: newAvatar }));
    const rs = await media();
    expect(rs.map((r) => [r.mode, r.copied, r.unchanged])).toEqual([
      ['server-side', 2, 2],
      ['streamed', 2, 2],
    ]);
    expect((await body(b, 'pf-other', `media/${changed}`)).equals(newAvatar)).toBe(true);
    expect((await media()).map((r) => r.copied)).toEqual([0, 0]);
  });

  it('local media (media.dir): uploaded without cache/, then only what changed', async () => {
    const dir = path.join(ws.dir, 'system');
    const file = (rel: string, data: Buffer) => {
      mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      writeFileSync(path.join(dir, rel), data);
    };
    file('site_uploads/files/000/000/001/original/logo.png', randomBytes(800));
    file('media_attachments/files/200/000/001/original/local.jpg', randomBytes(900));
    file('cache/accounts/avatars/999/original/x.png', randomBytes(100));
    config({ media: dir });
    const [r] = await media('--target', 'other');
    expect(r).toMatchObject({ mode: 'upload', copied: 2, from: dir });
    const there = await keys(b, 'pf-other', 'media/');
    expect(there).toContain('media/site_uploads/files/000/000/001/original/logo.png');
    expect(there.some((k) => k.includes('cache/'))).toBe(false);
    // Changed after its copy (a later mtime): copied again; the rest stays.
    const logo = path.join(dir, 'site_uploads/files/000/000/001/original/logo.png');
    const next = randomBytes(800);
    writeFileSync(logo, next);
    const later = new Date(Date.now() + 5000);
    utimesSync(logo, later, later);
    const [again] = await media('--target', 'other');
    expect(again).toMatchObject({ copied: 1 });
    expect((await body(b, 'pf-other', 'media/site_uploads/files/000/000/001/original/logo.png')).equals(next)).toBe(true);
  });

  it('media-restore: into a folder, then again with nothing to do; into a bucket by server-side copy', async () => {
    config({ mediaBucket: 'mastodon-new' });
    const to = path.join(ws.dir, 'restored');
    const run = async (...args: string[]) => {
      const r = await runCli(['--config', ws.configFile, 'offsite', 'media-restore', '--json', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as Result;
    };
    const first = await run('--target', 'other', '--to', to);
    expect(first).toMatchObject({ mode: 'download', copied: 6, unchanged: 0 });
    expect(
      readFileSync(path.join(to, 'media_attachments/files/110/000/002/original/video.mp4')).equals(
        MEDIA['media_attachments/files/110/000/002/original/video.mp4'],
      ),
    ).toBe(true);
    expect((await run('--target', 'other', '--to', to)).copied).toBe(0);

    const intoBucket = await run('--target', 'same');
    expect(intoBucket).toMatchObject({ mode: 'server-side', copied: 4 });
    expect(await keys(a, 'mastodon-new')).toEqual([...Object.keys(MEDIA), 'media_attachments/files/110/000/003/original/e5f6.webp'].sort());
  });

  it('bad input: no target named so, no media configured, a missing media bucket, several targets without --target: one sentence, exit 2', async () => {
    config();
    const none = await runCli(['--config', ws.configFile, 'offsite', 'media']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no media is configured: add mediaBucket/);
    config({ mediaBucket: 'mastodon-media' });
    const unknown = await runCli(['--config', ws.configFile, 'offsite', 'media', '--target', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no offsite target is named nope; the config has same, other/);
    config({ mediaBucket: 'no-such-media' });
    const missing = await runCli(['--config', ws.configFile, 'offsite', 'media', '--target', 'same']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(
      /media bucket s3:\/\/no-such-media\/: the bucket does not exist; create it or fix mediaBucket\.bucket\./,
    );
    expect(missing.stderr).not.toContain('S3RVER');
    const which = await runCli(['--config', ws.configFile, 'offsite', 'media-restore']);
    expect(which.code).toBe(2);
    expect(which.stderr).toMatch(/name one with --target/);
  });
});
