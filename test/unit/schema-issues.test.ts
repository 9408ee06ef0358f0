import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { describeIssues } from '../../src/schema-issues.js';

describe('describeIssues', () => {
  it('one line per problem, paths with dots and [index], unknown keys one line each', () => {
    const schema = z.strictObject({
      vault: z.strictObject({ dir: z.string() }),
      offsite: z.array(z.strictObject({ name: z.string() })),
    });
    const r = schema.safeParse({ vault: { dir: 5, extra: 1, other: 2 }, offsite: [{ name: 'a' }, { name: 7 }] });
    expect(r.success).toBe(false);
    expect(describeIssues(r.error!.issues).sort()).toEqual([
      'offsite[1].name: Invalid input: expected string, received number',
      'vault.dir: Invalid input: expected string, received number',
      'vault.extra: unknown key (remove it or check its spelling)',
      'vault.other: unknown key (remove it or check its spelling)',
    ]);
  });

  it('names the top level when the problem is the whole value', () => {
    const r = z.object({}).safeParse('not an object');
    expect(describeIssues(r.error!.issues)).toEqual(['(top level): Invalid input: expected object, received string']);
  });
});
