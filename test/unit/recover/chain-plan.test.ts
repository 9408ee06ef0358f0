import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SQL_FILE_HEADER } from '../../../src/capture/delta-sql.js';
import { ChainPlan, DeltaFormError, PlanTooBig, copyField, parseCopyHeader } from '../../../src/recover/chain-plan.js';
import type { ChainTable } from '../../../src/vault/manifest.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const tables: ChainTable[] = [
  { schema: 'public', table: 's', rows: 0, hash: '0', key: ['id'] },
  { schema: 'public', table: 'kv', rows: 0, hash: '0', key: ['k'] },
  { schema: 'public', table: 'nokey', rows: 0, hash: '0', key: null },
];
const hex = (s: string): string => Buffer.from(s).toString('hex');
const del = (table: string, key: string, type: string, keys: string[]): string =>
  [
    `CREATE TEMP TABLE pf_keys (k0 ${type === 'bigint' ? 'bigint' : 'text'});`,
    'COPY pf_keys FROM stdin;',
    ...keys,
    '\\.',
    'ANALYZE pf_keys;',
    `DELETE FROM ONLY "public"."${table}" _pf_row USING pf_keys WHERE _pf_row."${key}" = ${type === 'bigint' ? 'pf_keys.k0' : `convert_from(decode(pf_keys.k0, 'hex'), 'UTF8')::${type}`};`,
    'DROP TABLE pf_keys;',
    '',
  ].join('\n');
const copy = (table: string, cols: string, rows: string[]): string =>
  `COPY "public"."${table}" (${cols}) FROM stdin;\n${rows.map((r) => `${r}\n`).join('')}\\.\n\n`;

/** Reads deltas (oldest first, as a chain lists them) into a plan, newest first. */
async function planOf(deltas: string[], budget?: number): Promise<ChainPlan> {
  const plan = new ChainPlan(tables, path.join(dir, `rows-${++n}.sql`), budget);
  for (const [i, d] of [...deltas].reverse().entries()) {
    // Chunks of 7 bytes: lines cut anywhere, as gpg's output comes.
    const all = Buffer.from(SQL_FILE_HEADER + d);
    const chunks = Array.from({ length: Math.ceil(all.length / 7) }, (_, j) => all.subarray(j * 7, j * 7 + 7));
    await plan.readDelta(chunks, i === 0);
  }
  await plan.file.close();
  plan.seal();
  return plan;
}

/** A base block through the plan's filter, as parallel-rows feeds it: small reads, a cut line read again with what follows. */
function filtered(plan: ChainPlan, block: string): string {
  const all = Buffer.from(block);
  const filter = plan.baseFilter();
  const out: Buffer[] = [];
  for (let pos = 0, size = 5; pos < all.length; ) {
    // A fresh buffer per read, so a range kept from an earlier one cannot be overwritten unseen.
    const buf = Buffer.from(all.subarray(pos, pos + size));
    const last = pos + buf.length === all.length;
    let used = filter.take(buf, 0, buf.length, (s, e) => out.push(buf.subarray(s, e)));
    if (last && used < buf.length) {
      out.push(buf.subarray(used));
      used = buf.length;
    }
    if (used === 0) size *= 2;
    else pos += used;
  }
  return Buffer.concat(out).toString();
}

const loaded = (plan: ChainPlan): string => plan.blocks.map((b) => readFileSync(b.file!).subarray(b.start, b.end).toString()).join('');

describe('ChainPlan: a chain merged newest first', () => {
  it('a key inserted, updated, deleted and re-inserted: the newest version wins, the base row goes; a keyless table: the newest copy', async () => {
    const plan = await planOf([
      copy('s', '"id", "t"', ['5\tborn']) + copy('nokey', '"a"', ['old']).replace('COPY', 'TRUNCATE ONLY "public"."nokey";\nCOPY'),
      del('s', 'id', 'bigint', ['5', '7']) + copy('s', '"id", "t"', ['5\tedited']),
      del('s', 'id', 'bigint', ['5']),
      copy('s', '"id", "t"', ['5\tagain']) + `TRUNCATE ONLY "public"."nokey";\n${copy('nokey', '"a"', ['new'])}`,
    ]);
    expect(loaded(plan)).toBe(
      `COPY "public"."s" ("id", "t") FROM stdin;\n5\tagain\n\\.\nCOPY "public"."nokey" ("a") FROM stdin;\nnew\n\\.\n`,
    );
    expect(filtered(plan, copy('s', '"id", "t"', ['1\tkeep', '5\tbase', '7\tgone', '70\tkeep']))).toBe(
      copy('s', '"id", "t"', ['1\tkeep', '70\tkeep']),
    );
    expect(filtered(plan, copy('nokey', '"a"', ['base row']))).toBe(copy('nokey', '"a"', []));
  });

  it('a text key with escapes: the base row is matched by its value, not its spelling', async () => {
    const key = 'tab\there \\ ü';
    const plan = await planOf([del('kv', 'k', 'character varying', [hex(key)])]);
    const escaped = 'tab\\there \\\\ ü';
    expect(filtered(plan, copy('kv', '"k", "v"', [`${escaped}\t1`, 'other\t2']))).toBe(copy('kv', '"k", "v"', ['other\t2']));
  });

  it('anything but data, keys and setval lines in a delta is a DeltaFormError; a data line starting with \\. too', async () => {
    await expect(planOf(['SELECT 1/0;\n'])).rejects.toBeInstanceOf(DeltaFormError);
    await expect(planOf([copy('s', '"id", "t"', ['\\.x'])])).rejects.toBeInstanceOf(DeltaFormError);
    await expect(planOf([copy('s', '"id", "t"', ['1\tx']).replace('FROM stdin;', 'FROM stdin; DROP TABLE s;')])).rejects.toBeInstanceOf(
      DeltaFormError,
    );
    await expect(planOf([copy('nokey', '"a"', ['x'])])).rejects.toBeInstanceOf(DeltaFormError);
    await expect(planOf([del('s', 'id', 'bigint', ['1; DROP TABLE s'])])).rejects.toBeInstanceOf(DeltaFormError);
  });

  it('keys over the budget: PlanTooBig (the chain is replayed instead)', async () => {
    await expect(
      planOf(
        [
          del(
            's',
            'id',
            'bigint',
            Array.from({ length: 100 }, (_, i) => String(i)),
          ),
        ],
        1000,
      ),
    ).rejects.toBeInstanceOf(PlanTooBig);
  });

  it('int64 keys count what their set holds (a few bytes each), not a string estimate: 20 000 new rows fit 512 KiB', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => `${110_867_438_713_245_696n + BigInt(i) * 65_537n}\tx`);
    // One delta in one chunk (planOf's 7-byte chunks are for the parser, not for this many rows).
    const read = async (table: string, cols: string, lines: string[]): Promise<ChainPlan> => {
      const plan = new ChainPlan(tables, path.join(dir, `rows-${++n}.sql`), 512 * 1024);
      await plan.readDelta([Buffer.from(SQL_FILE_HEADER + copy(table, cols, lines))], true);
      await plan.file.close();
      return plan;
    };
    expect((await read('s', '"id", "t"', rows)).tables.get('"public"."s"')!.decided.size).toBe(20_000);
    // Text keys are strings: the same count is over that budget.
    await expect(
      read(
        'kv',
        '"k", "v"',
        rows.map((r) => `k${r}`),
      ),
    ).rejects.toBeInstanceOf(PlanTooBig);
  });

  it('a key list is counted against the budget while it is read, before any key of it is decided', async () => {
    // The list alone, cut before the statements that decide its keys: over the budget already while held.
    const list = [
      'CREATE TEMP TABLE pf_keys (k0 bigint);',
      'COPY pf_keys FROM stdin;',
      ...Array.from({ length: 100 }, (_, i) => String(i)),
      '\\.',
      '',
    ].join('\n');
    await expect(planOf([list], 1000)).rejects.toBeInstanceOf(PlanTooBig);
  });

  it('parses a COPY line only when it is exactly what the capture writes; undoes COPY escapes', () => {
    expect(parseCopyHeader('COPY "a""b"."c" ("x", "y""z") FROM stdin;')).toEqual({ schema: 'a"b', table: 'c', columns: ['x', 'y"z'] });
    expect(parseCopyHeader('COPY "a"."c" ("x") FROM stdin; DROP TABLE x;')).toBeNull();
    expect(parseCopyHeader('COPY a.c (x) FROM stdin;')).toBeNull();
    const b = Buffer.from('a\\tb\\\\c\\101\\x41\\n');
    expect(copyField(b, 0, b.length)).toBe('a\tb\\cAA\n');
  });
});
