import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { qualified, quoteIdent, quoteLiteral, rowHashOf, RowHashSum, tableHashSql } from '../../../src/capture/delta-sql.js';
import { ROW_HASH_KINDS } from '../../../src/vault/manifest.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

describe('quoting hostile names', () => {
  it('quoteIdent always quotes and doubles every double quote', () => {
    expect(quoteIdent('statuses')).toBe('"statuses"');
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(quoteIdent('x"; DROP TABLE users; --')).toBe('"x""; DROP TABLE users; --"');
    expect(quoteIdent('"')).toBe('""""');
    expect(quoteIdent('with.dot and space\ttab ünï')).toBe('"with.dot and space\ttab ünï"');
  });

  it('qualified keeps schema and table apart, a dot inside a name stays inside its quotes', () => {
    expect(qualified('public', 'accounts')).toBe('"public"."accounts"');
    expect(qualified('a.b', 'c')).toBe('"a.b"."c"');
    expect(qualified('a"."b', 'c')).toBe('"a"".""b"."c"');
  });

  it('quoteLiteral doubles single quotes', () => {
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(quoteLiteral("'; DROP DATABASE m; --")).toBe("'''; DROP DATABASE m; --'");
    expect(quoteLiteral('')).toBe("''");
  });

  it('tableHashSql reads only the quoted table (ONLY: no child tables)', () => {
    for (const kind of ROW_HASH_KINDS) {
      for (const record of [false, true]) {
        const sql = tableHashSql('pub"lic', 'st"at', { kind, record });
        expect(sql).toMatch(/^SELECT count\(\*\) AS rows, .* AS hash FROM ONLY "pub""lic"\."st""at" _pf_row$/);
      }
    }
  });

  it("md5's SQL is, byte for byte, the one every manifest without chain.rowHash was checked with", () => {
    expect(tableHashSql('public', 't', { kind: 'md5', record: true })).toBe(
      `SELECT count(*) AS rows, mod(mod(coalesce(sum(('x' || left(md5(_pf_row::text), 16))::bit(64)::bigint::numeric), 0), 18446744073709551616) + 18446744073709551616, 18446744073709551616)::text AS hash FROM ONLY "public"."t" _pf_row`,
    );
    expect(rowHashOf({})).toBe('md5');
    expect(rowHashOf({ rowHash: 'hashtext' })).toBe('hashtext');
  });
});

describe('RowHashSum', () => {
  it('is the sum of each row md5 first 64 bits mod 2^64, independent of order', () => {
    const rows = ['(1,a)', '(2,b)', '(3,c)'].map(md5);
    const expected = rows.reduce((t, h) => BigInt.asUintN(64, t + BigInt(`0x${h.slice(0, 16)}`)), 0n).toString();
    const a = new RowHashSum();
    for (const h of rows) a.add(h);
    const b = new RowHashSum();
    for (const h of [...rows].reverse()) b.add(h);
    expect(a.value()).toBe(expected);
    expect(b.value()).toBe(expected);
    expect(a.rows).toBe(3);
    expect(new RowHashSum().value()).toBe('0');
  });

  it('wraps at 2^64', () => {
    const s = new RowHashSum();
    s.add('f'.repeat(32));
    s.add('f'.repeat(32));
    expect(s.value()).toBe((2n ** 64n - 2n).toString());
  });

  it('a delta continues from the recorded count and hash: removing a row undoes adding it', () => {
    const start = new RowHashSum();
    start.add(md5('(1,a)'));
    start.add(md5('(2,b)'));
    const recorded = { rows: start.rows, hash: start.value() };
    const delta = new RowHashSum(recorded);
    delta.remove(md5('(2,b)'));
    delta.add(md5('(2,B)'));
    const fresh = new RowHashSum();
    fresh.add(md5('(1,a)'));
    fresh.add(md5('(2,B)'));
    expect(delta.value()).toBe(fresh.value());
    expect(delta.rows).toBe(2);
    const undo = new RowHashSum(recorded);
    undo.remove(md5('(1,a)'));
    undo.add(md5('(1,a)'));
    expect(undo.value()).toBe(recorded.hash);
  });
});
