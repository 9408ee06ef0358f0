import { describe, expect, it } from 'vitest';
import { nextWitness, WitnessPicker } from '../../../src/capture/delta.js';

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
