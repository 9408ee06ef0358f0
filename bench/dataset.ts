/**
 * A generated Mastodon-shaped database for the benchmark, kept in a cached PostgreSQL cluster under
 * .bench-cache/ so the slow generation happens once per size. Same tables as
 * test/harness/mastodon-fixture.sql, with realistic text (HTML, hashtags, mentions, URLs, emoji,
 * Arabic, Hebrew, CJK), jsonb/json and array columns, NULLs, Mastodon-like indexes and foreign keys.
 *
 * Rows are made server-side with INSERT … SELECT generate_series, never row by row from node.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPgBinDir, startCluster, type PgCluster } from '../test/harness/postgres.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CACHE = path.join(REPO, '.bench-cache');
/** Bump when the generator changes so stale caches are rebuilt. */
export const GENERATOR_VERSION = 5;
export const BENCH_DB = 'mastodon_production';

export interface DatasetInfo {
  generatorVersion: number;
  targetMb: number;
  /** pg_database_size after generation, in bytes. */
  bytes: number;
  rows: Record<string, number>;
  generationSeconds: number;
}

export interface BenchCluster {
  cluster: PgCluster;
  db: string;
  info: DatasetInfo;
  stop(): void;
}

/** Row counts for a target on-disk size (pg_database_size); proportions of a mid-size instance. */
export function rowsFor(targetMb: number): Record<'accounts' | 'users' | 'statuses' | 'media_attachments' | 'follows', number> {
  // Calibrated: these base counts take about 1024 / 1.33 MiB on disk.
  const k = (targetMb / 1024) * 1.33;
  const n = (base: number): number => Math.max(50, Math.round(base * k));
  // statuses: a multiple of 4 (media ids are spread over every 4th status); users ≤ accounts / 5.
  const accounts = n(100_000);
  return {
    accounts,
    users: Math.min(n(20_000), Math.floor(accounts / 5)),
    statuses: 4 * Math.ceil(n(950_000) / 4),
    media_attachments: n(250_000),
    follows: n(900_000),
  };
}

/**
 * Words of toots (generated here, and new ones in bench/churn.ts): English, German, French, Arabic,
 * Hebrew, Japanese, emoji, hashtags. Kept short (array subscripts over variable-width elements walk the array).
 */
export const WORDS = [
  'the',
  'a',
  'to',
  'and',
  'of',
  'is',
  'in',
  'it',
  'I',
  'that',
  'this',
  'for',
  'on',
  'with',
  'just',
  'my',
  'so',
  'not',
  'be',
  'are',
  'was',
  'but',
  'have',
  'you',
  'we',
  'they',
  'at',
  'what',
  'all',
  'about',
  'today',
  'new',
  'time',
  'people',
  'really',
  'think',
  'good',
  'fediverse',
  'Mastodon',
  'server',
  'instance',
  'toot',
  'boost',
  'timeline',
  'open',
  'source',
  'Linux',
  'coffee',
  'cat',
  'photo',
  'weather',
  'morning',
  'release',
  'update',
  'bug',
  'finally',
  'love',
  'thanks',
  'everyone',
  'week',
  'book',
  'music',
  'train',
  'der',
  'die',
  'und',
  'nicht',
  'heute',
  'schön',
  'le',
  'la',
  'et',
  'très',
  'aujourd’hui',
  'café',
  'مرحبا',
  'بالعالم',
  'اليوم',
  'شكرا',
  'جميل',
  'שלום',
  'עולם',
  'היום',
  'תודה',
  'יפה',
  'こんにちは',
  '今日',
  'ありがとう',
  '猫',
  '🐘',
  '🎉',
  '☕',
  '✨',
  '🌍',
  '❤️',
  '😂',
  '🐈',
  '📷',
  '🚀',
  '#introduction',
  '#photography',
  '#FOSS',
  '#caturday',
  '#news',
  '#art',
  '#linux',
  '#mastodon',
];
export const LANGS = ['en', 'en', 'en', 'de', 'fr', 'ar', 'he', 'ja', 'es', 'nl'];

/** An SQL text[] literal of `items`. */
export function sqlArray(items: readonly string[]): string {
  return `ARRAY[${items.map((w) => `'${w.replace(/'/g, "''")}'`).join(',')}]::text[]`;
}

/** The status id (a Mastodon-style snowflake from its timestamp) of status number `g` (an SQL expression). */
function statusId(g: string, ns: number): string {
  return `(((extract(epoch FROM timestamp '2017-01-01' + ((${g})::float8 / ${ns}) * interval '2600 days') * 1000)::bigint << 16) + ((${g}) % 65536))`;
}

/** The generation script in steps (label, SQL), for the given row counts. */
export function generationSteps(rows: ReturnType<typeof rowsFor>): Array<[string, string]> {
  const words = sqlArray(WORDS);
  const langs = sqlArray(LANGS);
  const nw = WORDS.length;
  const { accounts: na, users: nu, statuses: ns, media_attachments: nm, follows: nf } = rows;
  const perAccount = Math.max(1, Math.ceil(nf / na));
  const step = Math.max(1, Math.floor(na / (perAccount + 1)));
  const quarter = ns / 4;
  // A sentence of n random words (correlated on `seed` so it is evaluated per row).
  const sentence = (seed: string, n: string): string =>
    `(SELECT string_agg((${words})[1 + floor(random() * ${nw})::int], ' ') FROM generate_series(1, ${n} + 0 * ${seed}))`;
  const session = `SET synchronous_commit = off; SET maintenance_work_mem = '512MB';\n`;
  return [
    [
      'schema',
      `
CREATE TABLE schema_migrations (version character varying PRIMARY KEY);
CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar, created_at timestamp NOT NULL, updated_at timestamp NOT NULL);
CREATE SEQUENCE accounts_id_seq;
CREATE TABLE accounts (
  id bigint DEFAULT nextval('accounts_id_seq'), username varchar NOT NULL DEFAULT '', domain varchar,
  display_name varchar NOT NULL DEFAULT '', note text NOT NULL DEFAULT '', fields jsonb, also_known_as varchar[],
  created_at timestamp NOT NULL DEFAULT now(), suspended_at timestamp);
ALTER SEQUENCE accounts_id_seq OWNED BY accounts.id;
CREATE TABLE users (
  id bigserial, email varchar NOT NULL DEFAULT '', account_id bigint NOT NULL, encrypted_password varchar NOT NULL DEFAULT '',
  otp_secret varchar, settings jsonb, chosen_languages varchar[], created_at timestamp NOT NULL DEFAULT now());
CREATE TABLE statuses (
  id bigint, uri varchar, text text NOT NULL DEFAULT '', language varchar, account_id bigint NOT NULL, in_reply_to_id bigint,
  visibility integer NOT NULL DEFAULT 0, ordered_media_attachment_ids bigint[], created_at timestamp NOT NULL DEFAULT now(), deleted_at timestamp);
CREATE TABLE media_attachments (
  id bigserial, status_id bigint, file_file_name varchar, file_content_type varchar, file_file_size integer, file_meta json,
  remote_url varchar NOT NULL DEFAULT '', description text, blurhash varchar, account_id bigint);
CREATE TABLE follows (
  id bigserial, account_id bigint NOT NULL, target_account_id bigint NOT NULL, show_reblogs boolean NOT NULL DEFAULT true,
  languages varchar[], created_at timestamp NOT NULL DEFAULT now());
CREATE FUNCTION timestamp_id(table_name text) RETURNS bigint LANGUAGE sql AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint << 16 $$;
INSERT INTO schema_migrations SELECT to_char(timestamp '2016-03-01' + g * interval '3 days', 'YYYYMMDDHH24MISS') FROM generate_series(1, 900) g;
INSERT INTO ar_internal_metadata VALUES ('environment', 'production', now(), now()), ('schema_sha1', md5('x'), now(), now());`,
    ],
    [
      'accounts, users',
      `${session}
INSERT INTO accounts (id, username, domain, display_name, note, fields, also_known_as, created_at, suspended_at)
SELECT g,
  CASE g % 7 WHEN 0 THEN 'user_' || g WHEN 1 THEN 'ちゃん' || g ELSE (${words})[1 + g % ${nw}] || '_' || g END,
  CASE WHEN g % 5 = 0 THEN NULL ELSE 'social' || (g % 997) || '.example' END,
  CASE g % 4 WHEN 0 THEN '' WHEN 1 THEN 'مستخدم ' || g ELSE initcap(${sentence('g', '2')}) END,
  '<p>' || ${sentence('g', '(5 + g % 30)')} || '</p>',
  CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_array(
    jsonb_build_object('name', 'Website', 'value', '<a href="https://site' || g || '.example/" rel="me">site' || g || '.example</a>', 'verified_at', CASE WHEN g % 2 = 0 THEN (timestamp '2023-01-01' + g * interval '1 minute')::text END),
    jsonb_build_object('name', 'Pronouns', 'value', (ARRAY['she/her','he/him','they/them','עברית','العربية'])[1 + g % 5])) END,
  CASE WHEN g % 50 = 0 THEN ARRAY['https://old.example/users/u' || g] END,
  timestamp '2017-01-01' + (g::float8 / ${na}) * interval '2600 days',
  CASE WHEN g % 301 = 0 THEN timestamp '2024-01-02 03:04:05' END
FROM generate_series(1::bigint, ${na}) g;
SELECT setval('accounts_id_seq', ${na});
INSERT INTO users (email, account_id, encrypted_password, otp_secret, settings, chosen_languages, created_at)
SELECT 'user' || g || '@' || (ARRAY['example.org','mail.example','posteo.example'])[1 + g % 3],
  g * ${Math.max(1, Math.floor(na / nu))}, '$2a$10$' || substr(md5(g::text), 1, 22) || substr(md5((g + 1)::text), 1, 31),
  CASE WHEN g % 9 = 0 THEN md5('otp' || g) END,
  CASE WHEN g % 2 = 0 THEN jsonb_build_object('theme', (ARRAY['default','mastodon-light','contrast'])[1 + g % 3], 'default_language', (${langs})[1 + g % ${LANGS.length}], 'notification_emails', jsonb_build_object('follow', g % 3 = 0, 'mention', true)) END,
  CASE WHEN g % 4 = 0 THEN ARRAY[(${langs})[1 + g % ${LANGS.length}], 'en'] END,
  timestamp '2017-01-01' + (g::float8 / ${nu}) * interval '2600 days'
FROM generate_series(1::bigint, ${nu}) g;`,
    ],
    [
      'statuses',
      `${session}
INSERT INTO statuses (id, uri, text, language, account_id, in_reply_to_id, visibility, ordered_media_attachment_ids, created_at, deleted_at)
SELECT ${statusId('g', ns)}, 'https://social' || (a % 997) || '.example/users/u' || a || '/statuses/' || g,
  '<p>' || CASE WHEN g % 6 = 0 THEN '<span class="h-card"><a href="https://social' || (g % 997) || '.example/@u' || (g % ${na}) || '" class="u-url mention">@<span>u' || (g % ${na}) || '</span></a></span> ' ELSE '' END
    || ${sentence('g', '(4 + (g * 7) % 45)')}
    || CASE WHEN g % 4 = 0 THEN ' <a href="https://news.example/' || substr(md5(g::text), 1, 12) || '" rel="nofollow noopener" target="_blank">news.example/' || substr(md5(g::text), 1, 12) || '</a>' ELSE '' END
    || '</p>',
  CASE WHEN g % 11 = 0 THEN NULL ELSE (${langs})[1 + g % ${LANGS.length}] END,
  a,
  CASE WHEN g % 5 = 0 AND g > 1 THEN ${statusId('g - 1', ns)} END,
  g % 4,
  CASE WHEN g % 4 = 1 THEN NULLIF(ARRAY(SELECT (g - 1) / 4 + 1 + j * ${quarter} FROM generate_series(0, 3) j WHERE (g - 1) / 4 + 1 + j * ${quarter} <= ${nm}), '{}') END,
  timestamp '2017-01-01' + (g::float8 / ${ns}) * interval '2600 days',
  CASE WHEN g % 53 = 0 THEN timestamp '2017-01-01' + (g::float8 / ${ns}) * interval '2600 days' + interval '1 hour' END
FROM (SELECT g, 1 + (g * 7919) % ${na} AS a FROM generate_series(1::bigint, ${ns}) g) s;`,
    ],
    [
      'media_attachments',
      `${session}
INSERT INTO media_attachments (id, status_id, file_file_name, file_content_type, file_file_size, file_meta, remote_url, description, blurhash, account_id)
SELECT g, ${statusId('sg', ns)}, md5(g::text) || (ARRAY['.png','.jpeg','.mp4','.gif'])[1 + g % 4], (ARRAY['image/png','image/jpeg','video/mp4','image/gif'])[1 + g % 4],
  20000 + (g * 7717) % 4000000,
  json_build_object('original', json_build_object('width', 640 + g % 1280, 'height', 480 + g % 720, 'size', (640 + g % 1280) || 'x' || (480 + g % 720), 'aspect', round(((640 + g % 1280)::numeric / (480 + g % 720)), 6)),
                    'small', json_build_object('width', 400, 'height', 300, 'size', '400x300', 'aspect', 1.333333), 'focus', json_build_object('x', 0.0, 'y', 0.0)),
  CASE WHEN g % 3 = 0 THEN 'https://files.social' || (g % 997) || '.example/media_attachments/files/' || g || '/original/' || md5(g::text) || '.png' ELSE '' END,
  CASE WHEN g % 3 = 0 THEN initcap(${sentence('g', '(3 + g % 15)')}) END,
  substr(translate(md5(g::text) || md5((g * 3)::text), '0123456789abcdef', 'LEHV6nWB2yk8pyoJ'), 1, 28),
  1 + (sg * 7919) % ${na}
FROM (SELECT g, 1 + ((g - 1) * 4) % ${ns} AS sg FROM generate_series(1::bigint, ${nm}) g) m;
SELECT setval('media_attachments_id_seq', ${nm});`,
    ],
    [
      'follows',
      `${session}
INSERT INTO follows (account_id, target_account_id, show_reblogs, languages, created_at)
SELECT a, 1 + (a - 1 + k * ${step}) % ${na}, k % 9 <> 0, CASE WHEN (a + k) % 17 = 0 THEN ARRAY['en', 'de'] END,
  timestamp '2017-01-01' + ((a * ${perAccount} + k)::float8 / ${na * perAccount}) * interval '2600 days'
FROM generate_series(1::bigint, ${na}) a, generate_series(1, ${perAccount}) k
WHERE (a - 1) * ${perAccount} + k <= ${nf};`,
    ],
    [
      'indexes and constraints',
      `${session}
ALTER TABLE accounts ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower ON accounts (lower(username), COALESCE(lower(domain), ''));
CREATE INDEX index_accounts_on_domain_and_id ON accounts (domain, id);
ALTER TABLE users ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX index_users_on_email ON users (email);
CREATE INDEX index_users_on_account_id ON users (account_id);
ALTER TABLE statuses ADD PRIMARY KEY (id);
CREATE INDEX index_statuses_20190820 ON statuses (account_id, id DESC, visibility) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX index_statuses_on_uri ON statuses (uri text_pattern_ops) WHERE uri IS NOT NULL;
CREATE INDEX index_statuses_on_in_reply_to_id ON statuses (in_reply_to_id) WHERE in_reply_to_id IS NOT NULL;
CREATE INDEX index_statuses_public_20231213 ON statuses (id DESC, account_id) WHERE visibility = 0 AND deleted_at IS NULL;
ALTER TABLE media_attachments ADD PRIMARY KEY (id);
CREATE INDEX index_media_attachments_on_status_id ON media_attachments (status_id);
CREATE INDEX index_media_attachments_on_account_id_and_status_id ON media_attachments (account_id, status_id DESC);
ALTER TABLE follows ADD PRIMARY KEY (id);
CREATE UNIQUE INDEX index_follows_on_account_id_and_target_account_id ON follows (account_id, target_account_id);
CREATE INDEX index_follows_on_target_account_id ON follows (target_account_id);
ALTER TABLE users ADD FOREIGN KEY (account_id) REFERENCES accounts(id);
ALTER TABLE statuses ADD FOREIGN KEY (account_id) REFERENCES accounts(id);
ALTER TABLE media_attachments ADD FOREIGN KEY (status_id) REFERENCES statuses(id) ON DELETE SET NULL;
ALTER TABLE media_attachments ADD FOREIGN KEY (account_id) REFERENCES accounts(id);
ALTER TABLE follows ADD FOREIGN KEY (account_id) REFERENCES accounts(id);
ALTER TABLE follows ADD FOREIGN KEY (target_account_id) REFERENCES accounts(id);
CREATE MATERIALIZED VIEW account_summaries AS
  SELECT a.id AS account_id, a.username, count(s.id) AS statuses_count
  FROM accounts a LEFT JOIN statuses s ON s.account_id = a.id GROUP BY a.id, a.username WITH DATA;
CREATE UNIQUE INDEX index_account_summaries_on_account_id ON account_summaries (account_id);`,
    ],
    ['vacuum', 'VACUUM (FREEZE, ANALYZE);'],
  ];
}

/** Loads all data; each big step is a separate psql run so progress can be logged. */
function generate(c: PgCluster, rows: ReturnType<typeof rowsFor>, log: (s: string) => void): void {
  c.psql('postgres', `CREATE DATABASE ${BENCH_DB}`);
  log(`generating ${JSON.stringify(rows)}`);
  for (const [label, sql] of generationSteps(rows)) {
    const t0 = Date.now();
    c.psql(BENCH_DB, sql);
    log(`  ${label}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** A run that died (or a manual session) may have left the cached server running: stop it. */
function stopLeftover(root: string): void {
  const data = path.join(root, 'data');
  if (!existsSync(path.join(data, 'postmaster.pid'))) return;
  const argv = [path.join(findPgBinDir(), 'pg_ctl'), '-D', data, '-m', 'fast', '-w', 'stop'];
  const full = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
  spawnSync(full[0]!, full.slice(1), { stdio: 'ignore' });
}

export function readInfo(root: string): DatasetInfo | null {
  const f = path.join(root, 'ready.json');
  if (!existsSync(f)) return null;
  const info = JSON.parse(readFileSync(f, 'utf8')) as DatasetInfo;
  return info.generatorVersion === GENERATOR_VERSION ? info : null;
}

/**
 * Starts the cached cluster for `targetMb` (generating it first if missing or stale) with fsync on,
 * as a production server runs.
 */
export function openDataset(targetMb: number, opts: { port?: number; log?: (s: string) => void } = {}): BenchCluster {
  const log = opts.log ?? ((s: string) => process.stderr.write(`[dataset] ${s}\n`));
  const root = path.join(CACHE, `pg-${targetMb}mb`);
  let info = readInfo(root);
  if (!info) {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(CACHE, { recursive: true });
    const t0 = Date.now();
    const rows = rowsFor(targetMb);
    const gen = startCluster(opts.port ?? 5432, { root, fsync: false });
    try {
      generate(gen, rows, log);
      const bytes = Number(gen.psql(BENCH_DB, `SELECT pg_database_size(current_database())`).trim());
      const counts: Record<string, number> = {};
      for (const t of Object.keys(rows)) counts[t] = Number(gen.psql(BENCH_DB, `SELECT count(*) FROM ${t}`).trim());
      gen.psql(BENCH_DB, 'CHECKPOINT');
      info = { generatorVersion: GENERATOR_VERSION, targetMb, bytes, rows: counts, generationSeconds: (Date.now() - t0) / 1000 };
    } finally {
      gen.stop('fast');
    }
    writeFileSync(path.join(root, 'ready.json'), JSON.stringify(info, null, 2));
    log(`generated ${(info.bytes / 2 ** 20).toFixed(0)} MiB in ${info.generationSeconds.toFixed(0)} s`);
  }
  stopLeftover(root);
  const cluster = startCluster(opts.port ?? 5432, { root, fsync: true });
  return { cluster, db: BENCH_DB, info, stop: () => cluster.stop('fast') };
}

// `node --import tsx bench/dataset.ts [MB]` generates (or checks) a cache without running the benchmark.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const mb = Number(process.argv[2] ?? process.env.BENCH_SIZE_MB ?? 1024);
  const b = openDataset(mb);
  process.stdout.write(`${JSON.stringify(b.info)}\n`);
  b.stop();
}
