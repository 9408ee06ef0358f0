import { describe, expect, it } from 'vitest';
import { CHECKED_WIDTH, renderListTable } from '../../../../src/cli/commands/list.js';
import type { SnapshotRow } from '../../../../src/ops/overview.js';

function row(id: string, over: Partial<SnapshotRow> = {}): SnapshotRow {
  return {
    id,
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:00:02.000Z',
    ageSeconds: 7200,
    durationMs: 2000,
    bytes: 3 * 2 ** 20,
    plainBytes: 2 ** 22,
    parts: [
      { part: 'database', bytes: 1, plainBytes: 1, durationMs: 1 },
      { part: 'redis', bytes: 1, plainBytes: 1, durationMs: 1 },
    ],
    kind: 'full',
    depth: null,
    base: null,
    reference: null,
    neededBy: [],
    database: 'mastodon',
    keys: {},
    signedBy: null,
    verified: 'verified',
    verifiedAt: null,
    verifyReason: null,
    checked: 'ok',
    checkedAt: null,
    checkProblems: [],
    problem: null,
    failed: [],
    future: false,
    versionsOnly: false,
    ...over,
  };
}

const rows = [
  row('2026-12-01T10-00-00Z'),
  row('2026-12-01T09-00-00Z', {
    ageSeconds: 10_800,
    checked: 'failed',
    checkProblems: ['database.pgdump.gpg: 4096 bytes, the manifest says 4097; redis.rdb.gpg: SHA-256 differs from the manifest'],
  }),
];

describe('list table', () => {
  it('on a terminal: every column starts at the same place in every line, a long CHECKED text cut', () => {
    const lines = renderListTable(rows, { aligned: true });
    expect(lines).toHaveLength(3);
    expect(lines.every((l) => !l.includes('\t'))).toBe(true);
    for (const header of ['AGE', 'SIZE', 'KIND', 'VERIFIED', 'CHECKED', 'CONTENTS', 'KEY']) {
      const col = lines[0]!.indexOf(header);
      expect(col).toBeGreaterThan(0);
      // The cell under each header starts right there: the character before it is a space, the cell itself is not.
      for (const l of lines.slice(1)) expect([l[col - 1], l[col] === ' ']).toEqual([' ', false]);
    }
    expect(lines[1]).toMatch(/^2026-12-01T10-00-00Z {2}2h {2,}3\.0 MiB/);
    expect(lines[2]).toContain(`✗ database.pgdump.gpg: 4096 bytes, the manifest`);
    expect(lines[2]).toContain('…');
    expect(lines[2]).not.toContain('SHA-256 differs');
    const cell = lines[2]!.slice(lines[0]!.indexOf('CHECKED'), lines[0]!.indexOf('CONTENTS')).trimEnd();
    expect([...cell].length).toBe(CHECKED_WIDTH);
  });

  it('for scripts (--tsv, or not a terminal): tab-separated, every text whole', () => {
    const lines = renderListTable(rows, { aligned: false });
    expect(lines[0]).toBe('SNAPSHOT\tAGE\tSIZE\tKIND\tVERIFIED\tCHECKED\tCONTENTS\tKEY');
    expect(lines[2]!.split('\t')).toHaveLength(8);
    expect(lines[2]).toContain('redis.rdb.gpg: SHA-256 differs from the manifest');
  });
});
