-- A small Mastodon-shaped database: the tables, types and objects a restore must bring back.
CREATE TABLE schema_migrations (version character varying PRIMARY KEY);
CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar, created_at timestamp NOT NULL, updated_at timestamp NOT NULL);

CREATE SEQUENCE accounts_id_seq;
CREATE TABLE accounts (
  id bigint PRIMARY KEY DEFAULT nextval('accounts_id_seq'),
  username varchar NOT NULL DEFAULT '',
  domain varchar,
  display_name varchar NOT NULL DEFAULT '',
  note text NOT NULL DEFAULT '',
  fields jsonb,
  also_known_as varchar[],
  created_at timestamp NOT NULL DEFAULT now(),
  suspended_at timestamp
);
ALTER SEQUENCE accounts_id_seq OWNED BY accounts.id;
CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower ON accounts (lower(username), COALESCE(lower(domain), ''));

CREATE TABLE users (
  id bigserial PRIMARY KEY,
  email varchar NOT NULL DEFAULT '',
  account_id bigint NOT NULL REFERENCES accounts(id),
  encrypted_password varchar NOT NULL DEFAULT '',
  otp_secret varchar,
  settings jsonb,
  chosen_languages varchar[],
  created_at timestamp NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX index_users_on_email ON users (email);

CREATE TABLE statuses (
  id bigint PRIMARY KEY,
  uri varchar,
  text text NOT NULL DEFAULT '',
  language varchar,
  account_id bigint NOT NULL REFERENCES accounts(id),
  in_reply_to_id bigint,
  visibility integer NOT NULL DEFAULT 0,
  ordered_media_attachment_ids bigint[],
  created_at timestamp NOT NULL DEFAULT now(),
  deleted_at timestamp
);
CREATE INDEX index_statuses_20190820 ON statuses (account_id, id DESC, visibility) WHERE deleted_at IS NULL;

CREATE TABLE media_attachments (
  id bigserial PRIMARY KEY,
  status_id bigint REFERENCES statuses(id) ON DELETE SET NULL,
  file_file_name varchar,
  file_content_type varchar,
  file_file_size integer,
  file_meta json,
  remote_url varchar NOT NULL DEFAULT '',
  description text,
  blurhash varchar,
  account_id bigint REFERENCES accounts(id)
);

CREATE TABLE follows (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts(id),
  target_account_id bigint NOT NULL REFERENCES accounts(id),
  show_reblogs boolean NOT NULL DEFAULT true,
  languages varchar[],
  created_at timestamp NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX index_follows_on_account_id_and_target_account_id ON follows (account_id, target_account_id);

-- Mastodon defines timestamp_id() in SQL; a stand-in with the same shape.
CREATE FUNCTION timestamp_id(table_name text) RETURNS bigint LANGUAGE sql AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint << 16 $$;

INSERT INTO schema_migrations VALUES ('20240320000000'), ('20240911000000'), ('20241014010506');
INSERT INTO ar_internal_metadata VALUES ('environment', 'production', now(), now());

INSERT INTO accounts (username, domain, display_name, note, fields, also_known_as) VALUES
  ('alice', NULL, 'Alice 🐘', 'Hello fediverse ✨', '[{"name":"Site","value":"https://example.org"}]', NULL),
  ('bob', 'remote.example', 'بوب', 'مرحبا بالعالم', NULL, ARRAY['https://old.example/users/bob']),
  ('carol', NULL, 'קרול', 'שלום עולם 🌍', '[]', ARRAY[]::varchar[]),
  ('dave', NULL, '', '', NULL, NULL);
UPDATE accounts SET suspended_at = '2024-01-02 03:04:05' WHERE username = 'dave';

INSERT INTO users (email, account_id, encrypted_password, otp_secret, settings, chosen_languages) VALUES
  ('alice@example.org', 1, '$2a$10$abcdefghijklmnopqrstuv', NULL, '{"theme":"dark"}', ARRAY['en','de']),
  ('carol@example.org', 3, '$2a$10$zyxwvutsrqponmlkjihgfe', 'otp-secret', NULL, NULL);

INSERT INTO statuses (id, uri, text, language, account_id, in_reply_to_id, visibility, ordered_media_attachment_ids)
SELECT 110000000000000000 + g, 'https://example.org/statuses/' || g,
       CASE g % 4 WHEN 0 THEN 'Toot number ' || g || ' 🎉' WHEN 1 THEN 'منشور رقم ' || g WHEN 2 THEN 'פוסט מספר ' || g ELSE repeat('long text ', 20) END,
       CASE g % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'ar' ELSE NULL END,
       1 + g % 4, CASE WHEN g > 1 THEN 110000000000000000 + g - 1 END, g % 4,
       CASE WHEN g % 5 = 0 THEN ARRAY[g, g + 1] END
FROM generate_series(1, 200) AS g;

INSERT INTO media_attachments (status_id, file_file_name, file_content_type, file_file_size, file_meta, description, account_id)
SELECT 110000000000000000 + g, 'img' || g || '.png', 'image/png', 1000 + g, '{"original":{"width":640,"height":480}}',
       CASE WHEN g % 2 = 0 THEN 'A picture 📷' END, 1 + g % 4
FROM generate_series(1, 40) AS g;

INSERT INTO follows (account_id, target_account_id, languages) VALUES (1, 2, NULL), (1, 3, ARRAY['en']), (3, 1, NULL), (2, 1, NULL);

CREATE MATERIALIZED VIEW account_summaries AS
  SELECT a.id AS account_id, a.username, count(s.id) AS statuses_count
  FROM accounts a LEFT JOIN statuses s ON s.account_id = a.id GROUP BY a.id, a.username WITH DATA;
CREATE UNIQUE INDEX index_account_summaries_on_account_id ON account_summaries (account_id);
