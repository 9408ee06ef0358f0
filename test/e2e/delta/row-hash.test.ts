/**
 * A base hashes rows in this process from their COPY lines (src/capture/row-hash.ts); a restore
 * checks those hashes with md5(row::text) in SQL (delta-sql.ts). The two must agree on every value
 * COPY and record_out frame differently: quotes, backslashes, whitespace, empty strings, NULLs,
 * arrays, composites, json, every escape COPY writes.
 */
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { afterAll, describe, expect, it } from 'vitest';
import { HASH_SESSION_SQL } from '../../../src/capture/delta-sql.js';
import { RecordHasher } from '../../../src/capture/row-hash.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('hashes');
const clients: pg.Client[] = [];
afterAll(async () => {
  for (const c of clients) await c.end();
});

const TRICKY = [
  `''`,
  `' '`,
  `'plain'`,
  `'two words'`,
  `'a"quote'`,
  `'"'`,
  `E'back\\\\slash'`,
  `E'\\\\N'`,
  `'N'`,
  `E'tab\\there'`,
  `E'new\\nline'`,
  `E'cr\\rhere'`,
  `E'bs\\bhere'`,
  `E'ff\\fhere'`,
  `E'vt\\x0bhere'`,
  `E'bell\\x07here'`,
  `'(paren)'`,
  `'a,b'`,
  `'✨ unicode ß'`,
  `'{"a": [1, null, "x\\"y"]}'`,
  `E'\\\\'`,
  `E'"\\\\"'`,
  `'trailing '`,
  `'\u00a0nbsp'`,
];

describe('row hashes from COPY lines', () => {
  it('equal md5(row::text) for every value COPY and the text form frame differently', async () => {
    const c = cluster.get();
    const client = new pg.Client({ host: c.socketDir, port: c.port, user: c.user, database: 'hashes' });
    await client.connect();
    clients.push(client);
    await client.query(HASH_SESSION_SQL);
    await client.query(`
      CREATE TYPE pair AS (a text, b int);
      CREATE TABLE t (id serial PRIMARY KEY, s text, n int, arr text[], j jsonb, p pair, ts timestamptz, b bytea, f float8, e text, x varchar(10), dropme int, iv interval);
      ALTER TABLE t DROP COLUMN dropme;
      INSERT INTO t (s) VALUES ${TRICKY.map((v) => `(${v})`).join(', ')};
      INSERT INTO t (arr, j, p, ts, b, f, e, x, iv) VALUES
        (ARRAY['x', NULL, '', 'a b', 'q"q', E'b\\\\s'], '{"k": "v w"}', ROW('x y', 1), '2026-01-02 03:04:05.678+00', '\\x00ff5c', 0.1, '', 'short', '1 day 02:03:04'),
        (ARRAY[]::text[], 'null', ROW(NULL, NULL), '-infinity', '', 'NaN', NULL, '', '-1 mon'),
        (NULL, '[]', ROW('', 2), 'infinity', '\\x5c5c', 1e300, E'\\t', ' ', '0');
      INSERT INTO t (s, n) SELECT NULL, NULL;`);
    const hasher = new RecordHasher();
    const stream = client.query(copyTo('COPY (SELECT md5(r::text), r.* FROM t r ORDER BY r.id) TO STDOUT'));
    const chunks: Buffer[] = [];
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    const all = Buffer.concat(chunks);
    let at = 0;
    let rows = 0;
    const mismatches: string[] = [];
    while (at < all.length) {
      const nl = all.indexOf(10, at);
      const want = all.toString('latin1', at, at + 32);
      const got = hasher.md5(all, at + 33, nl).toString('hex');
      if (got !== want) mismatches.push(all.toString('utf8', at + 33, nl));
      rows++;
      at = nl + 1;
    }
    expect(rows).toBe(TRICKY.length + 4);
    expect(mismatches).toEqual([]);
  });
});
