import { describe, expect, it } from 'vitest';
import { RowsSplitter, settingsOnly, type RowsSegment } from '../../../src/recover/parallel-rows.js';
import { SQL_FILE_HEADER } from '../../../src/capture/delta-sql.js';

/** Splits `text` fed in chunks of `size` bytes; returns each segment's kind and text. */
function split(text: string, size: number): Array<{ kind: RowsSegment['kind']; text: string }> {
  const buf = Buffer.from(text);
  const out: RowsSegment[] = [];
  const s = new RowsSplitter((seg) => out.push(seg));
  for (let i = 0; i < buf.length; i += size) s.push(buf.subarray(i, i + size));
  s.end();
  return out.map((seg) => ({ kind: seg.kind, text: buf.subarray(seg.start, seg.end).toString() }));
}

const block = (table: string, rows: string[]): string => `COPY "public"."${table}" ("id", "text") FROM stdin;\n${rows.join('\n')}\n\\.\n`;

describe('RowsSplitter: a rows file cut into its COPY blocks as psql reads it', () => {
  // Data lines that look like statements or the end marker, a long line, and a setval whose literal spans lines.
  const accounts = block('accounts', ['1\tCOPY "public"."x" FROM stdin;', '2\t\\\\.', `3\t${'long '.repeat(5000)}`]);
  const statuses = block('statuses', ['10\thello', '11\t\\.x']);
  const trailer = `SELECT pg_catalog.setval('"public"."odd\nCOPY name_seq"', 5, true);\n`;
  const file = `${SQL_FILE_HEADER}${accounts}\n${statuses}\n${trailer}`;

  for (const size of [1, 2, 3, 7, 64, 4096, 1 << 20]) {
    it(`gives the header, each block whole and the trailer, whatever the chunk size (${size})`, () => {
      expect(split(file, size)).toEqual([
        { kind: 'sql', text: SQL_FILE_HEADER },
        { kind: 'copy', text: accounts },
        { kind: 'copy', text: statuses },
        // The blank line before it goes with it: only white space alone is no segment.
        { kind: 'sql', text: `\n${trailer}` },
      ]);
    });
  }

  it('a COPY statement spanning lines (a line break in a quoted name) starts its data after its semicolon', () => {
    const odd = `COPY "public"."a\nb; c" ("id") FROM stdin;\n1\n\\.\n`;
    expect(split(`SET x = 1;\n${odd}`, 5)).toEqual([
      { kind: 'sql', text: 'SET x = 1;\n' },
      { kind: 'copy', text: odd },
    ]);
  });

  it('white space between blocks is no segment; a file without a block is one SQL segment; an unfinished block is a block', () => {
    expect(split(`${block('a', ['1'])}\n\n  \n${block('b', ['2'])}`, 3).map((s) => s.kind)).toEqual(['copy', 'copy']);
    expect(split('SET a = 1;\nSELECT 1;\n', 4)).toEqual([{ kind: 'sql', text: 'SET a = 1;\nSELECT 1;\n' }]);
    expect(split('COPY "public"."a" ("id") FROM stdin;\n1\n2', 4).map((s) => s.kind)).toEqual(['copy']);
  });
});

describe('settingsOnly: what may run on every session', () => {
  it('accepts the header every rows file starts with', () => {
    expect(settingsOnly(SQL_FILE_HEADER)).toBe(true);
  });
  it('refuses anything that changes data or is not a plain setting', () => {
    expect(settingsOnly(`${SQL_FILE_HEADER}DELETE FROM t;`)).toBe(false);
    expect(settingsOnly("SET x = 'a'; SELECT pg_catalog.setval('s', 1);")).toBe(false);
    expect(settingsOnly('SET role = postgres; DROP TABLE t')).toBe(false);
  });
});
