import { describe, expect, it } from 'vitest';
import { formatAge, formatBytes } from '../../src/format.js';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [5 * 1024 ** 3, '5.0 GiB'],
    [2048 * 1024 ** 4, '2048.0 TiB'],
  ])('%d → %s', (n, want) => expect(formatBytes(n)).toBe(want));
});

describe('formatAge', () => {
  it.each([
    [-5000, '0s'],
    [0, '0s'],
    [89_000, '89s'],
    [90_000, '2m'],
    [89 * 60_000, '89m'],
    [90 * 60_000, '2h'],
    [47 * 3_600_000, '47h'],
    [48 * 3_600_000, '2d'],
    [10 * 86_400_000, '10d'],
  ])('%d ms → %s', (ms, want) => expect(formatAge(ms)).toBe(want));

  it('spaced units for prose', () => {
    expect(formatAge(20 * 60_000, 'spaced')).toBe('20 min');
    expect(formatAge(30_000, 'spaced')).toBe('30 s');
    expect(formatAge(5 * 3_600_000, 'spaced')).toBe('5 h');
    expect(formatAge(3 * 86_400_000, 'spaced')).toBe('3 d');
  });
});
