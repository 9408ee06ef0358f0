import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { SQL_FILE_HEADER } from '../../../src/capture/delta-sql.js';
import { ChainPlan } from '../../../src/recover/chain-plan.js';
import { KeySet } from '../../../src/recover/key-set.js';

const bytes = (s: string): [Buffer, number, number] => {
  const b = Buffer.from(`x\t${s}\ty`, 'latin1');
  return [b, 2, 2 + Buffer.byteLength(s, 'latin1')];
};

describe('KeySet: a table’s decided keys', () => {
  it('int64 texts are held as values; equality stays that of the text (no leading zero, no -0, the range ends)', () => {
    const k = new KeySet();
    const ints = ['0', '1', '-1', '42', '9223372036854775807', '-9223372036854775807', '110867438713245696', '4294967296', '4294967295'];
    for (const i of ints) expect(k.add(i)).toBe(true);
    for (const i of ints) expect(k.add(i)).toBe(false);
    expect(k.size).toBe(ints.length);
    expect(k.asStrings).toBeNull();
    for (const i of ints) expect(k.hasBytes(...bytes(i), () => i)).toBe(true);
    for (const other of ['01', '-0', '00', '+1', '2', '-42', '9223372036854775808', '4294967297', '', '1 ', '１'])
      expect([other, k.has(other), k.hasBytes(...bytes(other), () => other)]).toEqual([other, false, false]);
    // A COPY field with an escape is looked up by its decoded text.
    expect(k.hasBytes(...bytes('\\061'), () => '1')).toBe(true);
  });

  it('the first key of another form turns the set into strings, keeping every key', () => {
    const k = new KeySet();
    for (let i = -500; i < 5000; i++) k.add(String(i * 7919));
    k.add('-9223372036854775808');
    expect(k.asStrings).not.toBeNull();
    expect(k.size).toBe(5501);
    for (let i = -500; i < 5000; i++) expect(k.has(String(i * 7919))).toBe(true);
    expect(k.has('-9223372036854775808')).toBe(true);
    expect(k.addBytes(...bytes('abc'), () => 'abc')).toBe(true);
    expect(k.hasBytes(...bytes('abc'), () => 'abc')).toBe(true);
    expect(k.has('07919')).toBe(false);
  });

  it('300 000 bigint keys of a chain plan take under 10 MiB (heap and array buffers after a GC), not ~70 bytes of heap each', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const used = (): number => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const plan = new ChainPlan([{ schema: 'public', table: 's', rows: 0, hash: '0', key: ['id'] }], '/nonexistent/rows.sql');
    // Deleted keys of snowflake size, as Mastodon's ids are (built in a function: only the delta's bytes outlive it).
    const deltaOf = (n: number): Buffer => {
      const keys = Array.from({ length: n }, (_, i) => String(110_867_438_713_245_696n + BigInt(i) * 65_537n)).join('\n');
      return Buffer.from(
        `${SQL_FILE_HEADER}CREATE TEMP TABLE pf_keys (k0 bigint);\nCOPY pf_keys FROM stdin;\n${keys}\n\\.\nANALYZE pf_keys;\n` +
          'DELETE FROM ONLY "public"."s" _pf_row USING pf_keys WHERE _pf_row."id" = pf_keys.k0;\nDROP TABLE pf_keys;\n',
      );
    };
    const delta = deltaOf(300_000);
    const before = used();
    await plan.readDelta([delta], true);
    plan.seal();
    const held = (used() - before) / 2 ** 20;
    const m = process.memoryUsage();
    console.log(
      `300 000 keys hold ${held.toFixed(1)} MiB (heap used ${(m.heapUsed / 2 ** 20).toFixed(1)}, array buffers ${(m.arrayBuffers / 2 ** 20).toFixed(1)})`,
    );
    expect(plan.tables.get('"public"."s"')!.decided.size).toBe(300_000);
    expect(held).toBeLessThan(10);
    expect(delta.length).toBeGreaterThan(0);
  });
});
