/**
 * The table hash must tell a row apart from the rows beside it, not only each column's values.
 * hash_record_extended combines the column hashes linearly (result = 31 * result + column hash), so a
 * sum of raw record hashes over the rows is a fixed sum of per-column sums: two rows that swap a
 * column's values (two accounts trade names, two flags flip oppositely, a key gets another row's
 * content) would hash alike, where `hashtext` (a hash of the whole row's text) tells them apart.
 */
import { describe, expect, it } from 'vitest';
import { HASH_SESSION_SQL, tableHashSql, type TableHash } from '../../../src/capture/delta-sql.js';
import { clusterPerFile } from '../../harness/suite.js';

const DB = 'rows';
const cluster = clusterPerFile();

const KINDS: TableHash[] = [{ kind: 'md5' }, { kind: 'hashtext' }, { kind: 'hashrecord', record: true }];

/** Each pair: the source's rows, and a copy with the same values in every column, in other rows. */
const PAIRS: Array<[string, string, string]> = [
  ['id integer PRIMARY KEY, name text', `(1, 'alice'), (2, 'bob')`, `(1, 'bob'), (2, 'alice')`],
  ['id bigint PRIMARY KEY, flag boolean, n bigint', '(1, true, 5), (2, false, 6)', '(1, false, 5), (2, true, 6)'],
  [
    'id uuid PRIMARY KEY, at timestamptz, body bytea',
    `(gen_random_uuid(), '2026-01-01', '\\x01'), (gen_random_uuid(), '2026-01-02', '\\x02')`,
    '',
  ],
];

function hashOn(table: string, h: TableHash): string {
  return cluster
    .get()
    .psql(DB, `${HASH_SESSION_SQL}\n${tableHashSql('public', table, h)}`)
    .trim()
    .split('\n')
    .pop()!;
}

describe('a table hash tells rows apart', () => {
  it('values swapped between rows change the hash, under every kind', () => {
    cluster.createDb(DB, false);
    const pg = cluster.get();
    for (const [i, [columns, source, swapped]] of PAIRS.entries()) {
      pg.psql(DB, `CREATE TABLE src${i} (${columns}); INSERT INTO src${i} VALUES ${source};`);
      // The third: the same ids (keys) with each other's content.
      if (swapped) pg.psql(DB, `CREATE TABLE cp${i} (${columns}); INSERT INTO cp${i} VALUES ${swapped};`);
      else {
        pg.psql(
          DB,
          `CREATE TABLE cp${i} (${columns}); INSERT INTO cp${i} SELECT s.id, o.at, o.body FROM (SELECT *, row_number() OVER (ORDER BY at) AS k FROM src${i}) s JOIN (SELECT *, row_number() OVER (ORDER BY at DESC) AS k FROM src${i}) o USING (k);`,
        );
      }
      for (const h of KINDS) {
        const a = hashOn(`src${i}`, h);
        const b = hashOn(`cp${i}`, h);
        expect(a.split('|')[0], `${h.kind}: ${columns}`).toBe(b.split('|')[0]);
        expect(b, `${h.kind}: ${columns}`).not.toBe(a);
      }
    }
  });

  // Not fixed (it would take bigint and the timestamps out of hashrecord): hashint8extended, which
  // bigint, timestamp, timestamptz and time use, folds the 64-bit value to 32 bits (low XOR high half)
  // before hashing, so values that differ by the same bits in both halves hash alike; and an
  // array's hash has neither its bounds nor its dimensions ('{1,2,3,4}' and '{{1,2},{3,4}}').
  it.fails('KNOWN GAP (hashrecord): bigint/timestamp values differing in the same bits of both halves, and array dimensions, hash alike', () => {
    const pg = cluster.get();
    pg.psql(
      DB,
      `CREATE TABLE g1 (n bigint, t timestamp, a integer[]); INSERT INTO g1 VALUES (0, '2026-12-06 12:00', '{1,2,3,4}');
       CREATE TABLE g2 (LIKE g1); INSERT INTO g2 VALUES (4294967297, '2026-12-06 12:00', '{1,2,3,4}');
       CREATE TABLE g3 (LIKE g1); INSERT INTO g3 SELECT 0, '2000-01-01'::timestamp + ((extract(epoch FROM t - '2000-01-01')::bigint * 1000000) # 4294967297) * interval '1 microsecond', a FROM g1;
       CREATE TABLE g4 (LIKE g1); INSERT INTO g4 VALUES (0, '2026-12-06 12:00', '{{1,2},{3,4}}');`,
    );
    const h: TableHash = { kind: 'hashrecord', record: true };
    for (const other of ['g2', 'g3', 'g4']) expect(hashOn(other, h), other).not.toBe(hashOn('g1', h));
  });
});
