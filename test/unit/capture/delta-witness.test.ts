import { describe, expect, it } from 'vitest';
import { nextWitness } from '../../../src/capture/delta.js';

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
});
