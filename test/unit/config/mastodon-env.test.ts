import { parseEnv } from 'node:util';
import { describe, expect, it } from 'vitest';
import { deriveFromMastodonEnv, type MastodonDerivation } from '../../../src/config/mastodon-env.js';
import { configSchema } from '../../../src/config/schema.js';

const DIR = '/home/mastodon/live';
const PATHS = { databasePasswordFile: '/etc/permafrost/database.password', redisPasswordFile: '/etc/permafrost/redis.password' };
const MEDIA = { dir: '/home/mastodon/live/public/system', ignore: ['cache/**'] };

type Expected = Partial<Omit<MastodonDerivation, 'notes'>> & { notes?: RegExp[] };

const CASES: Array<[string, Record<string, string>, Expected]> = [
  [
    'nothing set: Mastodon production defaults',
    {},
    {
      database: { name: 'mastodon_production', host: 'localhost', port: 5432, user: 'mastodon' },
      redis: { url: 'redis://localhost:6379/0' },
      media: MEDIA,
      passwords: { database: undefined, redis: undefined },
    },
  ],
  [
    'DB_* form with a password and the sample socket host',
    { DB_HOST: '/var/run/postgresql', DB_PORT: '5433', DB_NAME: 'social', DB_USER: 'toot', DB_PASS: 's3cret#x' },
    {
      database: { name: 'social', host: '/var/run/postgresql', port: 5433, user: 'toot', passwordFile: PATHS.databasePasswordFile },
      passwords: { database: 's3cret#x', redis: undefined },
    },
  ],
  [
    'empty DB_PASS means no password',
    { DB_PASS: '' },
    {
      database: { name: 'mastodon_production', host: 'localhost', port: 5432, user: 'mastodon' },
      passwords: { database: undefined, redis: undefined },
    },
  ],
  [
    'DATABASE_URL overrides DB_* and moves its password out',
    { DATABASE_URL: 'postgresql://toot:p%40ss@db.internal:6432/mastodon', DB_NAME: 'ignored', DB_HOST: 'ignored' },
    {
      database: { name: 'mastodon', host: 'db.internal', port: 6432, user: 'toot', passwordFile: PATHS.databasePasswordFile },
      passwords: { database: 'p@ss', redis: undefined },
    },
  ],
  [
    'DATABASE_URL without host or port keeps DB_* and defaults (as Rails merges it)',
    { DATABASE_URL: 'postgres:///mastodon_x?host=/run/postgresql', DB_USER: 'masto' },
    { database: { name: 'mastodon_x', host: '/run/postgresql', port: 5432, user: 'masto' } },
  ],
  [
    'DATABASE_URL with a percent-encoded socket folder as host',
    { DATABASE_URL: 'postgresql://postgres@%2Ftmp%2Fpg%2Fsock:5499/source' },
    { database: { name: 'source', host: '/tmp/pg/sock', port: 5499, user: 'postgres' } },
  ],
  [
    'REDIS_HOST/PORT/PASSWORD/DB',
    { REDIS_HOST: '10.0.0.5', REDIS_PORT: '6380', REDIS_PASSWORD: 'r3dis', REDIS_DB: '2' },
    {
      redis: { url: 'redis://10.0.0.5:6380/2', passwordFile: PATHS.redisPasswordFile },
      passwords: { database: undefined, redis: 'r3dis' },
    },
  ],
  [
    'REDIS_URL with a password: the password leaves the URL',
    { REDIS_URL: 'redis://:hunter2@127.0.0.1:6379/1' },
    {
      redis: { url: 'redis://127.0.0.1:6379/1', passwordFile: PATHS.redisPasswordFile },
      passwords: { database: undefined, redis: 'hunter2' },
    },
  ],
  [
    'REDIS_URL wins over REDIS_PASSWORD, which Mastodon then ignores',
    { REDIS_URL: 'redis://127.0.0.1:6379/0', REDIS_PASSWORD: 'unused', REDIS_HOST: 'ignored' },
    { redis: { url: 'redis://127.0.0.1:6379/0' }, passwords: { database: undefined, redis: undefined } },
  ],
  [
    'REDIS_URL as a unix socket with a password',
    { REDIS_URL: 'unix://:pw@localhost/run/redis.sock' },
    {
      redis: { url: 'unix://localhost/run/redis.sock', passwordFile: PATHS.redisPasswordFile },
      passwords: { database: undefined, redis: 'pw' },
    },
  ],
  ['REDIS_URL as a unix socket', { REDIS_URL: 'unix:///var/run/redis/redis.sock' }, { redis: { url: 'unix:///var/run/redis/redis.sock' } }],
  [
    'PAPERCLIP_ROOT_PATH absolute, relative and with :rails_root',
    { PAPERCLIP_ROOT_PATH: '/srv/media' },
    { media: { dir: '/srv/media', ignore: ['cache/**'] } },
  ],
  [
    'PAPERCLIP_ROOT_PATH relative to the Mastodon folder',
    { PAPERCLIP_ROOT_PATH: 'media' },
    { media: { dir: '/home/mastodon/live/media', ignore: ['cache/**'] } },
  ],
  [
    'PAPERCLIP_ROOT_PATH with :rails_root',
    { PAPERCLIP_ROOT_PATH: ':rails_root/public/files' },
    { media: { dir: '/home/mastodon/live/public/files', ignore: ['cache/**'] } },
  ],
  [
    'S3_ENABLED=true without S3_BUCKET: no local media, no media bucket, and a note saying why',
    { S3_ENABLED: 'true', PAPERCLIP_ROOT_PATH: '/x' },
    { media: undefined, mediaBucket: undefined, notes: [/object storage \(S3_ENABLED=true\), but S3_BUCKET is not set/] },
  ],
  [
    'S3_ENABLED=true with an endpoint: the media bucket, path-style, its keys by variable name',
    {
      S3_ENABLED: 'true',
      S3_BUCKET: 'files-example',
      S3_ENDPOINT: 'https://s3.fr-par.scw.cloud',
      S3_REGION: 'fr-par',
      AWS_ACCESS_KEY_ID: 'SCWKEYID',
      AWS_SECRET_ACCESS_KEY: 'very-secret',
    },
    {
      media: undefined,
      mediaBucket: {
        bucket: 'files-example',
        endpoint: 'https://s3.fr-par.scw.cloud',
        region: 'fr-par',
        pathStyle: true,
        credentialsFromEnv: { file: `${DIR}/.env.production`, accessKeyId: 'AWS_ACCESS_KEY_ID', secretAccessKey: 'AWS_SECRET_ACCESS_KEY' },
      },
      notes: [/Media lives in the bucket files-example .*read from .env.production when a job starts/],
    },
  ],
  [
    'S3_ENABLED=true on AWS with an instance role: virtual-hosted, no keys, the AWS chain',
    { S3_ENABLED: 'true', S3_BUCKET: 'files-example', S3_REGION: 'eu-west-1', S3_OVERRIDE_PATH_STYLE: 'true' },
    {
      mediaBucket: { bucket: 'files-example', region: 'eu-west-1', pathStyle: false },
      notes: [/standard AWS chain/],
    },
  ],
  [
    'SWIFT_ENABLED=true: no local media, and a note saying why',
    { SWIFT_ENABLED: 'true' },
    { media: undefined, mediaBucket: undefined, notes: [/object storage \(SWIFT_ENABLED=true\)/] },
  ],
  ['S3_ENABLED=false keeps local media', { S3_ENABLED: 'false' }, { media: MEDIA, notes: [] }],
  ['a separate Sidekiq Redis gets a note', { SIDEKIQ_REDIS_URL: 'redis://10.0.0.9:6379/0' }, { notes: [/SIDEKIQ_REDIS_URL/] }],
];

describe('deriveFromMastodonEnv', () => {
  it.each(CASES)('%s', (_name, env, expected) => {
    const got = deriveFromMastodonEnv(env, DIR, PATHS);
    const { notes, ...rest } = expected;
    for (const [key, value] of Object.entries(rest)) expect(got[key as keyof MastodonDerivation], key).toEqual(value);
    if (notes) {
      expect(got.notes).toHaveLength(notes.length);
      notes.forEach((re, i) => expect(got.notes[i]).toMatch(re));
    }
    expect(got.secrets).toEqual({ file: '/home/mastodon/live/.env.production' });
  });

  it('never puts a password into the sections that become YAML, and they pass the config schema', () => {
    const env = parseEnv(
      'DATABASE_URL=postgresql://toot:dbsecret@db/mastodon\nREDIS_URL="redis://:redissecret@127.0.0.1:6379/0"\nS3_ENABLED=true\nS3_BUCKET=files-x\nAWS_ACCESS_KEY_ID=s3keyid\nAWS_SECRET_ACCESS_KEY=s3keysecret\n',
    ) as Record<string, string>;
    const got = deriveFromMastodonEnv(env, DIR, PATHS);
    const yamlSections = {
      database: got.database,
      redis: got.redis,
      secrets: got.secrets,
      mediaBucket: got.mediaBucket,
      vault: { dir: '/v', passphraseFile: '/p' },
    };
    const text = JSON.stringify(yamlSections);
    expect(got.mediaBucket).toBeDefined();
    expect(text).not.toContain('s3keysecret');
    expect(text).not.toContain('s3keyid');
    expect(text).not.toContain('dbsecret');
    expect(text).not.toContain('redissecret');
    expect(got.passwords).toEqual({ database: 'dbsecret', redis: 'redissecret' });
    expect(configSchema.safeParse(yamlSections).success).toBe(true);
  });

  it.each([
    [{ DB_PORT: 'abc' }, /DB_PORT=abc/],
    [{ DATABASE_URL: 'mysql://x@y/z' }, /postgresql:\/\//],
    [{ REDIS_URL: 'http://x' }, /REDIS_URL must start/],
  ])('rejects %o with a sentence naming the variable', (env, re) => {
    expect(() => deriveFromMastodonEnv(env, DIR, PATHS)).toThrow(re);
  });
});
