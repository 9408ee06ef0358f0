import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { baseRowsScript, type Catalog, KeyedLines, nextWitness, type TableInfo, WitnessPicker } from '../../../src/capture/delta.js';
import { RowHashSum } from '../../../src/capture/delta-sql.js';
import { RowKeyer } from '../../../src/capture/delta-state.js';

describe('nextWitness', () => {
  it('keeps the newest writes of a delta (by xmin after the horizon, across the 2^32 wrap), then older witnesses it did not touch', () => {
    const written: Array<[string, string]> = Array.from({ length: 300 }, (_, i) => [String(i), String(1000 + i)]);
    const w = nextWitness(written, [], [], '900');
    expect(w).toHaveLength(200);
    expect(w[0]).toEqual(['299', '1299']);
    expect(w.map(([k]) => Number(k)).every((k) => k >= 100)).toBe(true);
    // Past the wrap: 5 is newer than 4294967290 when the horizon is 4294967000.
    expect(
      nextWitness(
        [
          ['a', '4294967290'],
          ['b', '5'],
        ],
        [],
        [],
        '4294967000',
      )[0],
    ).toEqual(['b', '5']);
    // Older witnesses follow, except the ones this delta copied or deleted.
    expect(
      nextWitness(
        [['x', '50']],
        [
          ['x', '10'],
          ['y', '11'],
          ['z', '12'],
        ],
        ['z'],
        '40',
      ),
    ).toEqual([
      ['x', '50'],
      ['y', '11'],
    ]);
  });

  it("a base's witnesses come from its scan: the rows of smallest non-negative age(xmin), as the query it replaced ordered them", () => {
    const picker = new WitnessPicker();
    // `key\tage\txmin\t` as a base's COPY line carries them (after the md5).
    const line = (key: string, age: number, xmin: string): void => {
      const buf = Buffer.from(`${key}\t${age}\t${xmin}\trow\n`, 'latin1');
      const ageAt = key.length + 1;
      const xminAt = buf.indexOf(9, ageAt) + 1;
      picker.offer(buf, ageAt, xminAt - 1, 0, key.length, buf.indexOf(9, xminAt));
    };
    for (let i = 0; i < 1000; i++) line(`k${i}`, 2147483647, '2'); // frozen rows
    for (let i = 0; i < 150; i++) line(`new${i}`, 10 + i, String(5000 - i));
    line('future', -3, '9999');
    const picked = picker.picked();
    expect(picked).toHaveLength(200);
    expect(picked[0]).toEqual(['new0', '5000']);
    expect(picked.slice(0, 150).every(([k]) => k.startsWith('new'))).toBe(true);
    expect(picked.some(([k]) => k === 'future')).toBe(false);
  });
});

describe('KeyedLines', () => {
  it("a base's hash lines become the keys file's bytes, count, hash and witnesses the per-row path makes (RowKeyer.keyed, RowHashSum.add)", () => {
    const key = randomBytes(32);
    // Two-column keys (an int and the hex of a text), every byte value in the md5s, ages with frozen and future rows.
    const rows = Array.from({ length: 5000 }, (_, i) => ({
      key: `${i - 2500}\t${Buffer.from(`k${i}`).toString('hex')}`,
      md5: createHash('md5').update(`row ${i}`).digest('hex'),
      age: i % 7 === 0 ? -1 : i % 3 === 0 ? 2147483647 : 5000 - i,
      xmin: String(1000 + i),
    }));
    const text = rows.map((r) => `${r.key}\t${r.md5}\t${r.age}\t${r.xmin}\n`).join('');
    const lines = new KeyedLines(2, key);
    // Cut into chunks of whole lines, as completeLines hands them over.
    const out: Buffer[] = [];
    for (let at = 0; at < rows.length; at += 1700) {
      const chunk = Buffer.from(
        rows
          .slice(at, at + 1700)
          .map((r) => `${r.key}\t${r.md5}\t${r.age}\t${r.xmin}\n`)
          .join(''),
        'latin1',
      );
      out.push(lines.keysFile(chunk));
    }
    const keyer = new RowKeyer(key);
    const sum = new RowHashSum();
    const hashes = keyer.keyed(Buffer.from(rows.map((r) => r.md5).join(''), 'hex'), rows.length);
    rows.forEach((r) => sum.add(r.md5));
    expect(Buffer.concat(out).toString('latin1')).toBe(rows.map((r, i) => `${r.key}\t${hashes[i]}\n`).join(''));
    expect([lines.sum.rows, lines.sum.value()]).toEqual([sum.rows, sum.value()]);
    const picker = new WitnessPicker();
    const all = Buffer.from(text, 'latin1');
    let at = 0;
    for (const r of rows) {
      const ageAt = at + r.key.length + 34;
      const ageEnd = all.indexOf(9, ageAt);
      const nl = all.indexOf(10, ageEnd);
      picker.offer(all, ageAt, ageEnd, at, at + r.key.length, nl);
      at = nl + 1;
    }
    expect(lines.witnesses()).toEqual(picker.picked());
    expect(lines.witnesses()[0]).toEqual([rows[4999]!.key, rows[4999]!.xmin]);
  });

  it('a line without its md5 is an error, never a wrong hash', () => {
    const lines = new KeyedLines(1, randomBytes(32));
    expect(() => lines.keysFile(Buffer.from(`1\t${'x'.repeat(32)}\t5\t9\n`))).toThrow(/no md5/);
    expect(() => lines.keysFile(Buffer.from('1\n'))).toThrow(/fewer fields/);
  });
});

describe('baseRowsScript', () => {
  it('writes the largest table first (as pg_restore -j schedules loads), then the others by size; the catalog order stays', () => {
    const table = (name: string, bytes: number): TableInfo => ({ schema: 'public', table: name, columns: ['id'], key: null, bytes });
    const catalog: Catalog = {
      tables: [table('accounts', 8192), table('follows', 40960), table('statuses', 409600), table('tags', 0)],
      sequences: [],
      rowHash: 'hashtext',
    };
    const script = baseRowsScript(catalog, '00000003-00000002-1', '');
    const order = [...script.matchAll(/^COPY \(SELECT .*? FROM ONLY "public"\."(\w+)"/gm)].map((m) => m[1]);
    expect(order).toEqual(['statuses', 'follows', 'accounts', 'tags']);
    expect(catalog.tables.map((t) => t.table)).toEqual(['accounts', 'follows', 'statuses', 'tags']);
  });
});
