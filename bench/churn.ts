/**
 * A simulated busy hour of a Mastodon server on the bench database, for the delta benchmark
 * (bench/delta.ts), modelled on /work/shared/reference/incremental.md:
 *
 * - inserts: +0.5 % statuses (70 % originals, 15 % replies, 15 % reblogs) with media (every 4th
 *   original), mentions (every 6th), tags (every 5th original), status_stats of their parents;
 *   +1 % favourites (70 % on the newest 5 % of statuses); +0.2 % follows; notifications for local
 *   targets (favourites, follows, mentions);
 * - updates: status_stats of every touched status, account_stats of every author/follower/followee
 *   plus 1 % refreshed (~10 % of rows in all), 1.5 % of remote accounts (`updated_at`, `last_webfingered_at`), 2 % users,
 *   3 % oauth_access_tokens, 2 % session_activations, 0.05 % status edits (of recent statuses);
 * - deletes: 0.1 % statuses (cascading to status_stats, favourites, mentions, statuses_tags and
 *   reblogs; media_attachments.status_id set NULL), 0.1 % favourites, 0.05 % follows, the oldest
 *   0.1 % notifications;
 * - then `VACUUM ANALYZE` and `REFRESH MATERIALIZED VIEW CONCURRENTLY` for every matview.
 *
 * The bench dataset (bench/dataset.ts) has only accounts, users, statuses, media_attachments and
 * follows; `prepareChurn` adds the Mastodon tables and columns an hour touches (status_stats,
 * account_stats, favourites, notifications, mentions, tags, statuses_tags, oauth_access_tokens,
 * session_activations; accounts/users/statuses timestamps, statuses.reblog_of_id) with real
 * primary keys, indexes and cascading foreign keys, populated in proportion to the dataset.
 *
 * Deterministic: every choice is a keyed hash of a row key, the seed and the hour (no random(),
 * whose order would follow the query plan), so the same database, seed and hour give the same changes.
 *
 * Standalone (a private copy of the cached dataset; prints what each hour changed per table):
 *   node --import tsx bench/churn.ts [--mb 256] [--hours 2] [--seed 1]
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, type PgCluster } from '../test/harness/postgres.js';
import { BENCH_DB, CACHE, GENERATOR_VERSION, LANGS, openDataset, sqlArray, WORDS, type DatasetInfo } from './dataset.js';

/** Bump when prepareChurn changes so stale prepared copies are rebuilt. */
const CHURN_VERSION = 1;
/** Distinct hashtags in `tags`. */
const TAGS = 2000;
/** Hour 0 of the simulation: just after the dataset's newest status. */
const T0 = `timestamp '2024-02-14 00:00:00'`;

/** The rates of one hour, as fractions of each table's row count. */
export const RATES = {
  statuses: 0.005,
  favourites: 0.01,
  favouritesOnRecent: 0.7,
  recentStatuses: 0.05,
  follows: 0.002,
  accountStatsRefreshed: 0.01,
  remoteAccounts: 0.015,
  users: 0.02,
  tokens: 0.03,
  sessions: 0.02,
  edits: 0.0005,
  deletedStatuses: 0.001,
  deletedFavourites: 0.001,
  deletedFollows: 0.0005,
  deletedNotifications: 0.001,
} as const;

/** A non-negative keyed hash of an SQL expression (bigint), salted by seed, hour and a per-use tag. */
function hasher(seed: number, hour: number): (expr: string, tag: number) => string {
  const salt = seed * 1_000_000 + hour * 1000;
  return (expr, tag) => `(hashint8extended((${expr})::bigint, ${salt + tag}) & 9223372036854775807)`;
}

/** A toot of `len` words chosen by hash from `seedExpr` (an SQL bigint expression). */
function sentence(h: (expr: string, tag: number) => string, seedExpr: string, len: string, tag: number): string {
  return `(SELECT string_agg((${sqlArray(WORDS)})[1 + (${h(`(${seedExpr}) * 64 + k`, tag)} % ${WORDS.length})::int], ' ' ORDER BY k) FROM generate_series(1, ${len}) k)`;
}

/** SQL that adds the Mastodon tables and columns an hour of churn touches (once, before the base snapshot). */
export function prepareSql(counts: { accounts: number; users: number }): string {
  const h = hasher(0, 0);
  const na = counts.accounts;
  const third = Math.max(1, Math.floor(na / 3));
  return `
SET synchronous_commit = off; SET maintenance_work_mem = '256MB'; SET max_parallel_workers_per_gather = 0;
ALTER TABLE accounts ADD COLUMN updated_at timestamp NOT NULL DEFAULT '2024-02-01', ADD COLUMN last_webfingered_at timestamp;
ALTER TABLE users ADD COLUMN updated_at timestamp NOT NULL DEFAULT '2024-02-01', ADD COLUMN current_sign_in_at timestamp,
  ADD COLUMN sign_in_count integer NOT NULL DEFAULT 0;
ALTER TABLE statuses ADD COLUMN reblog_of_id bigint, ADD COLUMN edited_at timestamp, ADD COLUMN updated_at timestamp;
CREATE INDEX index_statuses_on_reblog_of_id_and_account_id ON statuses (reblog_of_id, account_id);
ALTER TABLE statuses ADD FOREIGN KEY (reblog_of_id) REFERENCES statuses(id) ON DELETE CASCADE;

CREATE TABLE favourites (id bigserial PRIMARY KEY, created_at timestamp NOT NULL, updated_at timestamp NOT NULL,
  account_id bigint NOT NULL, status_id bigint NOT NULL);
INSERT INTO favourites (created_at, updated_at, account_id, status_id)
SELECT s.created_at + g * interval '7 minutes', s.created_at + g * interval '7 minutes',
  1 + (${h('s.id', 1)} + g * ${third}) % ${na}, s.id
FROM statuses s CROSS JOIN LATERAL generate_series(1, (${h('s.id', 2)} % 5)::int - 2) g
ORDER BY 1;
CREATE UNIQUE INDEX index_favourites_on_account_id_and_status_id ON favourites (account_id, status_id);
CREATE INDEX index_favourites_on_status_id ON favourites (status_id);

CREATE TABLE status_stats (id bigserial PRIMARY KEY, status_id bigint NOT NULL, replies_count bigint NOT NULL DEFAULT 0,
  reblogs_count bigint NOT NULL DEFAULT 0, favourites_count bigint NOT NULL DEFAULT 0,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL);
INSERT INTO status_stats (status_id, replies_count, favourites_count, created_at, updated_at)
SELECT s.id, coalesce(r.n, 0), coalesce(f.n, 0), s.created_at, s.created_at
FROM statuses s
LEFT JOIN (SELECT in_reply_to_id AS id, count(*) AS n FROM statuses WHERE in_reply_to_id IS NOT NULL GROUP BY 1) r USING (id)
LEFT JOIN (SELECT status_id AS id, count(*) AS n FROM favourites GROUP BY 1) f USING (id)
WHERE r.n IS NOT NULL OR f.n IS NOT NULL
ORDER BY s.id;
CREATE UNIQUE INDEX index_status_stats_on_status_id ON status_stats (status_id);

CREATE TABLE account_stats (id bigserial PRIMARY KEY, account_id bigint NOT NULL, statuses_count bigint NOT NULL DEFAULT 0,
  following_count bigint NOT NULL DEFAULT 0, followers_count bigint NOT NULL DEFAULT 0,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL, last_status_at timestamp);
INSERT INTO account_stats (account_id, statuses_count, following_count, followers_count, created_at, updated_at, last_status_at)
SELECT a.id, coalesce(s.n, 0), coalesce(fo.n, 0), coalesce(fe.n, 0), a.created_at, a.created_at, s.last
FROM accounts a
LEFT JOIN (SELECT account_id AS id, count(*) AS n, max(created_at) AS last FROM statuses GROUP BY 1) s USING (id)
LEFT JOIN (SELECT account_id AS id, count(*) AS n FROM follows GROUP BY 1) fo USING (id)
LEFT JOIN (SELECT target_account_id AS id, count(*) AS n FROM follows GROUP BY 1) fe USING (id)
ORDER BY a.id;
CREATE UNIQUE INDEX index_account_stats_on_account_id ON account_stats (account_id);

CREATE TABLE mentions (id bigserial PRIMARY KEY, status_id bigint NOT NULL, account_id bigint NOT NULL, silent boolean NOT NULL DEFAULT false,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL);
INSERT INTO mentions (status_id, account_id, created_at, updated_at)
SELECT id, 1 + ${h('id', 3)} % ${na}, created_at, created_at FROM statuses WHERE ${h('id', 4)} % 6 = 0 ORDER BY id;
CREATE UNIQUE INDEX index_mentions_on_account_id_and_status_id ON mentions (account_id, status_id);
CREATE INDEX index_mentions_on_status_id ON mentions (status_id);

CREATE TABLE tags (id bigserial PRIMARY KEY, name varchar NOT NULL DEFAULT '', usable boolean, trendable boolean,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL, last_status_at timestamp);
INSERT INTO tags (name, usable, trendable, created_at, updated_at, last_status_at)
SELECT (${sqlArray(WORDS)})[1 + g % ${WORDS.length}] || g, g % 3 <> 0, CASE WHEN g % 7 = 0 THEN true END,
  timestamp '2017-01-01' + g * interval '1 day', timestamp '2017-01-01' + g * interval '1 day', timestamp '2023-01-01' + g * interval '1 hour'
FROM generate_series(1, ${TAGS}) g;
CREATE UNIQUE INDEX index_tags_on_name_lower_btree ON tags (lower(name) text_pattern_ops);
CREATE TABLE statuses_tags (status_id bigint NOT NULL, tag_id bigint NOT NULL, PRIMARY KEY (tag_id, status_id));
INSERT INTO statuses_tags SELECT id, 1 + ${h('id', 5)} % ${TAGS} FROM statuses WHERE ${h('id', 6)} % 5 = 0 ORDER BY 2, 1;
CREATE INDEX index_statuses_tags_on_status_id ON statuses_tags (status_id);

CREATE TABLE notifications (id bigserial PRIMARY KEY, activity_id bigint NOT NULL, activity_type varchar NOT NULL,
  created_at timestamp NOT NULL, updated_at timestamp NOT NULL, account_id bigint NOT NULL, from_account_id bigint NOT NULL,
  type varchar, filtered boolean NOT NULL DEFAULT false);
INSERT INTO notifications (activity_id, activity_type, created_at, updated_at, account_id, from_account_id, type)
SELECT * FROM (
  SELECT f.id, 'Favourite', f.created_at, f.created_at, s.account_id, f.account_id, 'favourite'
  FROM favourites f JOIN statuses s ON s.id = f.status_id JOIN accounts a ON a.id = s.account_id AND a.domain IS NULL
  UNION ALL
  SELECT fo.id, 'Follow', fo.created_at, fo.created_at, fo.target_account_id, fo.account_id, 'follow'
  FROM follows fo JOIN accounts a ON a.id = fo.target_account_id AND a.domain IS NULL
  UNION ALL
  SELECT m.id, 'Mention', m.created_at, m.created_at, m.account_id, s.account_id, 'mention'
  FROM mentions m JOIN statuses s ON s.id = m.status_id JOIN accounts a ON a.id = m.account_id AND a.domain IS NULL
) n ORDER BY 3, 1;
CREATE INDEX index_notifications_on_account_id_and_id_and_type ON notifications (account_id, id DESC, type);
CREATE INDEX index_notifications_on_from_account_id ON notifications (from_account_id);

CREATE TABLE oauth_access_tokens (id bigserial PRIMARY KEY, token varchar NOT NULL, refresh_token varchar, expires_in integer,
  revoked_at timestamp, created_at timestamp NOT NULL, scopes varchar, application_id bigint, resource_owner_id bigint,
  last_used_at timestamp, last_used_ip inet);
INSERT INTO oauth_access_tokens (token, created_at, scopes, application_id, resource_owner_id, last_used_at, last_used_ip)
SELECT md5('token' || u.id || '/' || g) || md5('t' || u.id || g), u.created_at + g * interval '30 days',
  (ARRAY['read', 'read write follow push', 'read write follow'])[1 + (u.id + g) % 3], 1 + g, u.id,
  CASE WHEN (u.id + g) % 4 <> 0 THEN timestamp '2024-02-01' + (u.id % 1000) * interval '1 minute' END,
  ('10.' || (u.id % 250) || '.' || g || '.' || (u.id % 200 + 1))::inet
FROM users u CROSS JOIN generate_series(1, 2) g ORDER BY u.id, g;
CREATE UNIQUE INDEX index_oauth_access_tokens_on_token ON oauth_access_tokens (token);
CREATE INDEX index_oauth_access_tokens_on_resource_owner_id ON oauth_access_tokens (resource_owner_id);

CREATE TABLE session_activations (id bigserial PRIMARY KEY, session_id varchar NOT NULL, created_at timestamp NOT NULL,
  updated_at timestamp NOT NULL, user_agent varchar NOT NULL DEFAULT '', ip inet, user_id bigint NOT NULL);
INSERT INTO session_activations (session_id, created_at, updated_at, user_agent, ip, user_id)
SELECT md5('session' || id), created_at, created_at,
  (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X)', 'Tusky/24.1 Android/14'])[1 + id % 3],
  ('192.0.2.' || (id % 250 + 1))::inet, id
FROM users ORDER BY id;
CREATE UNIQUE INDEX index_session_activations_on_session_id ON session_activations (session_id);
CREATE INDEX index_session_activations_on_user_id ON session_activations (user_id);

ALTER TABLE favourites ADD FOREIGN KEY (status_id) REFERENCES statuses(id) ON DELETE CASCADE;
ALTER TABLE favourites ADD FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE status_stats ADD FOREIGN KEY (status_id) REFERENCES statuses(id) ON DELETE CASCADE;
ALTER TABLE account_stats ADD FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE mentions ADD FOREIGN KEY (status_id) REFERENCES statuses(id) ON DELETE CASCADE;
ALTER TABLE mentions ADD FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE statuses_tags ADD FOREIGN KEY (status_id) REFERENCES statuses(id) ON DELETE CASCADE;
ALTER TABLE statuses_tags ADD FOREIGN KEY (tag_id) REFERENCES tags(id) ON DELETE CASCADE;
ALTER TABLE notifications ADD FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE notifications ADD FOREIGN KEY (from_account_id) REFERENCES accounts(id) ON DELETE CASCADE;
ALTER TABLE oauth_access_tokens ADD FOREIGN KEY (resource_owner_id) REFERENCES users(id) ON DELETE CASCADE;
ALTER TABLE session_activations ADD FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE;`;
}

/** Row counts the rates of one hour are taken of. */
const COUNTED = ['statuses', 'favourites', 'follows', 'notifications', 'accounts'] as const;

/** SQL of hour `hour` (≥ 1) of the simulation; `counts` are the tables' row counts at its start. */
export function churnSql(hour: number, seed: number, counts: Record<(typeof COUNTED)[number], number>): string {
  const h = hasher(seed, hour);
  const r = RATES;
  const na = counts.accounts;
  const ns = Math.max(1, Math.round(counts.statuses * r.statuses));
  const recent = Math.max(1, Math.ceil(counts.statuses * r.recentStatuses));
  const nfav = Math.max(1, Math.round(counts.favourites * r.favourites));
  const nfol = Math.max(1, Math.round(counts.follows * r.follows));
  const ppm = (x: number): number => Math.round(x * 1_000_000);
  const T = `(${T0} + ${hour} * interval '1 hour')`;
  // The i-th of n events spread over the hour that ends at T.
  const at = (i: string, n: number): string => `(${T} - interval '1 hour' + (${i})::float8 / ${n} * interval '1 hour')`;
  return `
SET synchronous_commit = off; SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE recent ON COMMIT DROP AS
  SELECT id, account_id, row_number() OVER (ORDER BY id DESC) AS rn FROM (SELECT id, account_id FROM statuses ORDER BY id DESC LIMIT ${recent}) s;
CREATE TEMP TABLE pool ON COMMIT DROP AS
  SELECT id, account_id, row_number() OVER (ORDER BY id) AS rn FROM statuses WHERE ${h('id', 1)} % 1000000 < ${ppm(Math.min(1, (2 * nfav) / Math.max(1, counts.statuses)))};
CREATE INDEX ON recent (rn); CREATE INDEX ON pool (rn); ANALYZE recent; ANALYZE pool;

-- New statuses: 70 % originals, 15 % replies, 15 % reblogs of recent statuses.
CREATE TEMP TABLE new_statuses ON COMMIT DROP AS
SELECT n.i, ((extract(epoch FROM n.ts) * 1000)::bigint << 16) + (n.i % 65536) AS id, n.ts, n.account_id, n.kind,
  CASE WHEN n.kind <> 'original' THEN t.id END AS target, t.account_id AS target_account_id
FROM (SELECT i, ${at('i', ns)} AS ts, 1 + ${h('i', 2)} % ${na} AS account_id,
        CASE WHEN i % 20 < 14 THEN 'original' WHEN i % 20 < 17 THEN 'reply' ELSE 'reblog' END AS kind
      FROM generate_series(1, ${ns}) i) n
JOIN recent t ON t.rn = 1 + ${h('n.i', 3)} % ${recent};
INSERT INTO statuses (id, uri, text, language, account_id, in_reply_to_id, reblog_of_id, visibility, created_at, updated_at)
SELECT id, 'https://bench.example/users/u' || account_id || '/statuses/' || id,
  CASE WHEN kind = 'reblog' THEN '' ELSE '<p>' || ${sentence(h, 'i', `(4 + ${h('i', 4)} % 40)::int`, 5)} || '</p>' END,
  CASE WHEN kind = 'reblog' OR i % 11 = 0 THEN NULL ELSE (${sqlArray(LANGS)})[1 + i % ${LANGS.length}] END,
  account_id, CASE WHEN kind = 'reply' THEN target END, CASE WHEN kind = 'reblog' THEN target END,
  CASE WHEN kind = 'reblog' THEN 0 ELSE i % 4 END, ts, ts
FROM new_statuses ORDER BY id;
INSERT INTO media_attachments (status_id, file_file_name, file_content_type, file_file_size, file_meta, remote_url, description, blurhash, account_id)
SELECT id, md5(id::text) || '.jpeg', 'image/jpeg', 20000 + ${h('id', 6)} % 4000000,
  json_build_object('original', json_build_object('width', 1280, 'height', 960, 'size', '1280x960', 'aspect', 1.333333),
                    'small', json_build_object('width', 400, 'height', 300, 'size', '400x300', 'aspect', 1.333333)),
  '', CASE WHEN i % 3 = 0 THEN ${sentence(h, 'i', '6', 7)} END,
  substr(translate(md5(id::text) || md5((id * 3)::text), '0123456789abcdef', 'LEHV6nWB2yk8pyoJ'), 1, 28), account_id
FROM new_statuses WHERE kind = 'original' AND i % 4 = 0 ORDER BY id;
UPDATE statuses s SET ordered_media_attachment_ids = ARRAY[m.id]
FROM media_attachments m WHERE m.status_id = s.id AND s.id IN (SELECT id FROM new_statuses WHERE kind = 'original' AND i % 4 = 0);
CREATE TEMP TABLE new_mentions (status_id bigint, account_id bigint, author bigint) ON COMMIT DROP;
WITH ins AS (
  INSERT INTO mentions (status_id, account_id, created_at, updated_at)
  SELECT id, 1 + ${h('i', 8)} % ${na}, ts, ts FROM new_statuses WHERE kind <> 'reblog' AND i % 6 = 0
  ON CONFLICT DO NOTHING RETURNING status_id, account_id)
INSERT INTO new_mentions SELECT ins.status_id, ins.account_id, n.account_id FROM ins JOIN new_statuses n ON n.id = ins.status_id;
INSERT INTO statuses_tags (status_id, tag_id)
SELECT id, 1 + ${h('i', 9)} % ${TAGS} FROM new_statuses WHERE kind = 'original' AND i % 5 = 0 ON CONFLICT DO NOTHING;
UPDATE tags SET last_status_at = ${T}, updated_at = ${T}
WHERE id IN (SELECT 1 + ${h('i', 9)} % ${TAGS} FROM new_statuses WHERE kind = 'original' AND i % 5 = 0);
INSERT INTO status_stats (status_id, replies_count, reblogs_count, created_at, updated_at)
SELECT target, count(*) FILTER (WHERE kind = 'reply'), count(*) FILTER (WHERE kind = 'reblog'), ${T}, ${T}
FROM new_statuses WHERE target IS NOT NULL GROUP BY target
ON CONFLICT (status_id) DO UPDATE SET replies_count = status_stats.replies_count + EXCLUDED.replies_count,
  reblogs_count = status_stats.reblogs_count + EXCLUDED.reblogs_count, updated_at = EXCLUDED.updated_at;
UPDATE account_stats a SET statuses_count = a.statuses_count + c.n, last_status_at = c.last, updated_at = ${T}
FROM (SELECT account_id, count(*) AS n, max(ts) AS last FROM new_statuses GROUP BY 1) c WHERE a.account_id = c.account_id;

-- Favourites: 70 % on the newest 5 % of statuses, the rest anywhere.
CREATE TEMP TABLE new_favourites (id bigint, account_id bigint, status_id bigint, author bigint) ON COMMIT DROP;
WITH pick AS (
  SELECT i, ${at('i', nfav)} AS ts, 1 + ${h('i', 10)} % ${na} AS account_id,
    CASE WHEN ${h('i', 11)} % 1000 < ${Math.round(r.favouritesOnRecent * 1000)}
      THEN (SELECT id FROM recent WHERE rn = 1 + ${h('i', 12)} % ${recent})
      ELSE (SELECT id FROM pool WHERE rn = 1 + ${h('i', 13)} % greatest(1, (SELECT count(*) FROM pool))) END AS status_id
  FROM generate_series(1, ${nfav}) i),
ins AS (
  INSERT INTO favourites (created_at, updated_at, account_id, status_id)
  SELECT ts, ts, account_id, status_id FROM pick WHERE status_id IS NOT NULL ORDER BY i
  ON CONFLICT DO NOTHING RETURNING id, account_id, status_id)
INSERT INTO new_favourites SELECT ins.id, ins.account_id, ins.status_id, s.account_id FROM ins JOIN statuses s ON s.id = ins.status_id;
INSERT INTO status_stats (status_id, favourites_count, created_at, updated_at)
SELECT status_id, count(*), ${T}, ${T} FROM new_favourites GROUP BY status_id
ON CONFLICT (status_id) DO UPDATE SET favourites_count = status_stats.favourites_count + EXCLUDED.favourites_count, updated_at = EXCLUDED.updated_at;

-- Follows.
CREATE TEMP TABLE new_follows (id bigint, account_id bigint, target_account_id bigint) ON COMMIT DROP;
WITH ins AS (
  INSERT INTO follows (account_id, target_account_id, show_reblogs, created_at)
  SELECT a, t, i % 9 <> 0, ${at('i', nfol)}
  FROM (SELECT i, 1 + ${h('i', 14)} % ${na} AS a, 1 + ${h('i', 15)} % ${na} AS t FROM generate_series(1, ${nfol}) i) p
  WHERE a <> t ORDER BY i
  ON CONFLICT DO NOTHING RETURNING id, account_id, target_account_id)
INSERT INTO new_follows SELECT * FROM ins;
UPDATE account_stats a SET following_count = a.following_count + c.n, updated_at = ${T}
FROM (SELECT account_id, count(*) AS n FROM new_follows GROUP BY 1) c WHERE a.account_id = c.account_id;
UPDATE account_stats a SET followers_count = a.followers_count + c.n, updated_at = ${T}
FROM (SELECT target_account_id, count(*) AS n FROM new_follows GROUP BY 1) c WHERE a.account_id = c.target_account_id;

-- Notifications for local targets.
INSERT INTO notifications (activity_id, activity_type, created_at, updated_at, account_id, from_account_id, type)
SELECT n.* FROM (
  SELECT id, 'Favourite', ${T}, ${T}, author, account_id, 'favourite' FROM new_favourites
  UNION ALL SELECT id, 'Follow', ${T}, ${T}, target_account_id, account_id, 'follow' FROM new_follows
  UNION ALL SELECT status_id, 'Mention', ${T}, ${T}, account_id, author, 'mention' FROM new_mentions
) n (activity_id, activity_type, created_at, updated_at, account_id, from_account_id, type)
JOIN accounts a ON a.id = n.account_id AND a.domain IS NULL AND a.id <> n.from_account_id
ORDER BY n.activity_type, n.activity_id;

-- Updates.
UPDATE account_stats SET followers_count = followers_count + ${h('account_id', 16)} % 3, updated_at = ${T}
WHERE ${h('account_id', 17)} % 1000000 < ${ppm(r.accountStatsRefreshed)};
UPDATE accounts SET updated_at = ${T}, last_webfingered_at = ${T}
WHERE domain IS NOT NULL AND ${h('id', 18)} % 1000000 < ${ppm(r.remoteAccounts)};
UPDATE users SET updated_at = ${T}, current_sign_in_at = ${T}, sign_in_count = sign_in_count + 1
WHERE ${h('id', 19)} % 1000000 < ${ppm(r.users)};
UPDATE oauth_access_tokens SET last_used_at = ${T}, last_used_ip = ('10.' || (${h('id', 20)} % 250) || '.0.' || (${h('id', 21)} % 250 + 1))::inet
WHERE ${h('id', 22)} % 1000000 < ${ppm(r.tokens)};
UPDATE session_activations SET updated_at = ${T}, ip = ('198.51.100.' || (${h('id', 23)} % 250 + 1))::inet
WHERE ${h('id', 24)} % 1000000 < ${ppm(r.sessions)};
UPDATE statuses SET text = text || ' <p>(edited)</p>', edited_at = ${T}, updated_at = ${T}
WHERE id IN (SELECT id FROM recent WHERE ${h('id', 25)} % 1000000 < ${ppm(Math.min(1, (counts.statuses * r.edits) / recent))});

-- Deletes (statuses cascade through their foreign keys).
CREATE TEMP TABLE gone_statuses (account_id bigint) ON COMMIT DROP;
WITH d AS (DELETE FROM statuses WHERE ${h('id', 26)} % 1000000 < ${ppm(r.deletedStatuses)} RETURNING account_id)
INSERT INTO gone_statuses SELECT * FROM d;
UPDATE account_stats a SET statuses_count = greatest(0, a.statuses_count - c.n), updated_at = ${T}
FROM (SELECT account_id, count(*) AS n FROM gone_statuses GROUP BY 1) c WHERE a.account_id = c.account_id;
CREATE TEMP TABLE gone_favourites (status_id bigint) ON COMMIT DROP;
WITH d AS (DELETE FROM favourites WHERE ${h('id', 27)} % 1000000 < ${ppm(r.deletedFavourites)} RETURNING status_id)
INSERT INTO gone_favourites SELECT * FROM d;
UPDATE status_stats s SET favourites_count = greatest(0, s.favourites_count - c.n), updated_at = ${T}
FROM (SELECT status_id, count(*) AS n FROM gone_favourites GROUP BY 1) c WHERE s.status_id = c.status_id;
CREATE TEMP TABLE gone_follows (account_id bigint, target_account_id bigint) ON COMMIT DROP;
WITH d AS (DELETE FROM follows WHERE ${h('id', 28)} % 1000000 < ${ppm(r.deletedFollows)} RETURNING account_id, target_account_id)
INSERT INTO gone_follows SELECT * FROM d;
UPDATE account_stats a SET following_count = greatest(0, a.following_count - c.n), updated_at = ${T}
FROM (SELECT account_id, count(*) AS n FROM gone_follows GROUP BY 1) c WHERE a.account_id = c.account_id;
UPDATE account_stats a SET followers_count = greatest(0, a.followers_count - c.n), updated_at = ${T}
FROM (SELECT target_account_id, count(*) AS n FROM gone_follows GROUP BY 1) c WHERE a.account_id = c.target_account_id;
DELETE FROM notifications WHERE id IN (SELECT id FROM notifications ORDER BY id LIMIT ${Math.round(counts.notifications * r.deletedNotifications)});
`;
}

/** What one hour did to one table (from pg_stat_user_tables; cascades included). */
export interface TableChange {
  /** Rows at the start of the hour. */
  rows: number;
  inserted: number;
  /** Row updates (a row updated twice counts twice). */
  updated: number;
  deleted: number;
}

export interface HourResult {
  hour: number;
  /** Wall seconds of the churn transaction, then of VACUUM ANALYZE + matview refresh. */
  churnS: number;
  maintenanceS: number;
  tables: Record<string, TableChange>;
}

type Counters = Record<string, { ins: number; upd: number; del: number; rows: number }>;

function counters(c: PgCluster, db: string, exact: boolean): Counters {
  const rows = exact
    ? `(xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM public.' || quote_ident(relname), false, true, '')))[1]::text::bigint`
    : 'n_live_tup';
  const out = c.psql(
    db,
    `SELECT json_object_agg(relname, json_build_object('ins', n_tup_ins, 'upd', n_tup_upd, 'del', n_tup_del, 'rows', ${rows}))
     FROM pg_stat_user_tables WHERE schemaname = 'public'`,
  );
  return JSON.parse(out) as Counters;
}

/** Exact row counts of the tables the rates are taken of. */
function rateCounts(c: PgCluster, db: string): Record<(typeof COUNTED)[number], number> {
  const out = c.psql(db, `SELECT json_build_object(${COUNTED.map((t) => `'${t}', (SELECT count(*) FROM ${t})`).join(', ')})`);
  return JSON.parse(out) as Record<(typeof COUNTED)[number], number>;
}

/** Runs hour `hour` (≥ 1) of the simulation in one transaction, then VACUUM ANALYZE and the matview refreshes. */
export function churnHour(c: PgCluster, db: string, hour: number, seed = 1): HourResult {
  const before = counters(c, db, true);
  const sql = churnSql(hour, seed, rateCounts(c, db));
  const t0 = performance.now();
  c.psql(db, `BEGIN;\n${sql}\nCOMMIT;`);
  const t1 = performance.now();
  const after = counters(c, db, false);
  c.psql(db, 'VACUUM ANALYZE');
  const matviews = c.psql(db, `SELECT string_agg(format('%I.%I', schemaname, matviewname), ' ') FROM pg_matviews`).trim();
  for (const m of matviews ? matviews.split(' ') : []) c.psql(db, `REFRESH MATERIALIZED VIEW CONCURRENTLY ${m}`);
  const tables: Record<string, TableChange> = {};
  for (const [t, b] of Object.entries(before)) {
    const a = after[t] ?? b;
    tables[t] = { rows: b.rows, inserted: a.ins - b.ins, updated: a.upd - b.upd, deleted: a.del - b.del };
  }
  return { hour, churnS: (t1 - t0) / 1000, maintenanceS: (performance.now() - t1) / 1000, tables };
}

/** A private, running copy of the bench dataset with the churn tables added. */
export interface ChurnCopy {
  cluster: PgCluster;
  db: string;
  /** The dataset it was copied from (row counts before prepareChurn). */
  dataset: DatasetInfo;
  /** pg_database_size of the copy when it started, bytes. */
  bytes: number;
  /** Stops the server and removes the copy. */
  destroy(): void;
}

/** `cp -a` (keeps the postgres owner and modes of the cluster files). */
function copyTree(from: string, to: string): void {
  const r = spawnSync('cp', ['-a', from, to], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp -a ${from} ${to} failed: ${r.stderr}`);
}

/**
 * Starts a private copy of the `mb` dataset with the churn tables (the prepared cluster is cached
 * as .bench-cache/pg-<mb>mb-churn, made from a copy of pg-<mb>mb; neither is ever modified after).
 */
export function openChurnCopy(mb: number, opts: { port: number; workDir: string; log: (s: string) => void }): ChurnCopy {
  const prepared = path.join(CACHE, `pg-${mb}mb-churn`);
  const readyFile = path.join(prepared, 'churn-ready.json');
  const ready = existsSync(readyFile)
    ? (JSON.parse(readFileSync(readyFile, 'utf8')) as { churnVersion: number; dataset: DatasetInfo })
    : null;
  let dataset: DatasetInfo;
  if (ready?.churnVersion === CHURN_VERSION && ready.dataset.generatorVersion === GENERATOR_VERSION) {
    dataset = ready.dataset;
  } else {
    rmSync(prepared, { recursive: true, force: true });
    const ds = openDataset(mb, { port: opts.port, log: opts.log });
    dataset = ds.info;
    const root = ds.cluster.root;
    ds.stop();
    const tmp = mkdtempSync(path.join(CACHE, `.pg-${mb}mb-churn-`));
    chmodSync(tmp, 0o755); // the server runs as postgres and must reach its folder
    copyTree(root, path.join(tmp, 'pg'));
    const c = startCluster(opts.port, { root: path.join(tmp, 'pg'), fsync: false });
    try {
      const t0 = performance.now();
      const counts = JSON.parse(
        c.psql(BENCH_DB, `SELECT json_build_object('accounts', (SELECT count(*) FROM accounts), 'users', (SELECT count(*) FROM users))`),
      ) as {
        accounts: number;
        users: number;
      };
      c.psql(BENCH_DB, prepareSql(counts));
      c.psql(BENCH_DB, 'VACUUM (FREEZE, ANALYZE)');
      c.psql(BENCH_DB, 'CHECKPOINT');
      opts.log(`churn tables added to a copy of the ${mb} MB dataset in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    } finally {
      c.stop('fast');
    }
    writeFileSync(path.join(tmp, 'pg', 'churn-ready.json'), JSON.stringify({ churnVersion: CHURN_VERSION, dataset }, null, 2));
    renameSync(path.join(tmp, 'pg'), prepared);
    rmSync(tmp, { recursive: true, force: true });
  }
  chmodSync(opts.workDir, 0o755);
  const root = path.join(opts.workDir, `pg-${mb}mb`);
  copyTree(prepared, root);
  const cluster = startCluster(opts.port, { root, fsync: true });
  const bytes = Number(cluster.psql(BENCH_DB, 'SELECT pg_database_size(current_database())').trim());
  return {
    cluster,
    db: BENCH_DB,
    dataset,
    bytes,
    destroy() {
      cluster.stop('fast');
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** One line per table: rows, and what the hour inserted/updated/deleted as a percentage of them. */
export function describeHour(r: HourResult): string[] {
  const pct = (n: number, of: number): string => (of > 0 ? `${((100 * n) / of).toFixed(2)} %` : `${n}`);
  return Object.entries(r.tables)
    .filter(([, t]) => t.inserted + t.updated + t.deleted > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([name, t]) =>
        `${name.padEnd(22)} ${String(t.rows).padStart(9)} rows: +${t.inserted} (${pct(t.inserted, t.rows)}), ~${t.updated} (${pct(t.updated, t.rows)}), -${t.deleted} (${pct(t.deleted, t.rows)})`,
    );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name: string, dflt: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const log = (s: string): void => void process.stderr.write(`[churn] ${s}\n`);
  const work = mkdtempSync(path.join(CACHE, 'churn-'));
  const copy = openChurnCopy(arg('mb', 256), { port: 5436, workDir: work, log });
  try {
    for (let hour = 1; hour <= arg('hours', 2); hour++) {
      const r = churnHour(copy.cluster, copy.db, hour, arg('seed', 1));
      log(`hour ${hour}: churn ${r.churnS.toFixed(1)} s, vacuum + refresh ${r.maintenanceS.toFixed(1)} s`);
      for (const line of describeHour(r)) log(`  ${line}`);
    }
  } finally {
    copy.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}
