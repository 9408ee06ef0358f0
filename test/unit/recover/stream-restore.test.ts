import { describe, expect, it } from 'vitest';
import type { ArchiveHead, TocSlot } from '../../../src/recover/archive-toc.js';
import { isDumpCopyStatement, NotStreamable, restoreList, streamPlan } from '../../../src/recover/stream-restore.js';

const slot = (over: Partial<TocSlot> & Pick<TocSlot, 'dumpId' | 'desc'>): TocSlot => ({
  tag: 't',
  offsetAt: 0,
  flag: 3,
  position: 0,
  section: 2,
  copyStmt: null,
  defn: null,
  deps: [],
  ...over,
});

const head = (entries: TocSlot[], compressed = false): ArchiveHead => ({ intSize: 4, compressed, entries, tocEnd: 100 });
const encoding = slot({ dumpId: 1, desc: 'ENCODING', defn: "SET client_encoding = 'UTF8';\n" });

describe('the COPY statements a streamed restore runs', () => {
  it.each([
    'COPY public.accounts (id, username, "Note") FROM stdin;\n',
    'COPY public.nocols  FROM stdin;\n',
    'COPY "it\'s ""here"""."a ""quoted"" \'name\'" (id, "new\nline") FROM stdin;\n',
    'COPY "été 🐘"."naïve\ttab" (id) FROM stdin;\n',
  ])('accepts pg_dump’s shape: %j', (stmt) => {
    expect(isDumpCopyStatement(stmt)).toBe(true);
  });

  it.each([
    'COPY public.t (a) FROM stdin; DROP TABLE x;\n',
    "COPY public.t (a) FROM PROGRAM 'rm -rf /';\n",
    "COPY public.t (a) FROM '/etc/passwd';\n",
    'COPY t (a) FROM stdin;\n',
    'COPY public.t (a) FROM stdin;\nSELECT 1;\n',
    'COPY public.t (a) TO stdout;\n',
    'COPY public.t (a) FROM stdin WITH (FORMAT binary);\n',
    'COPY public.t ("a) FROM stdin;\n',
    'copy public.t (a) from stdin;\n',
  ])('refuses anything else: %j', (stmt) => {
    expect(isDumpCopyStatement(stmt)).toBe(false);
  });
});

describe('which archives are streamed', () => {
  const table = slot({ dumpId: 10, desc: 'TABLE', deps: [] });
  const data = slot({ dumpId: 20, desc: 'TABLE DATA', flag: 1, section: 3, copyStmt: 'COPY public.t (a) FROM stdin;\n', deps: [10] });
  const seq = slot({ dumpId: 21, desc: 'SEQUENCE SET', section: 3 });
  const pk = slot({ dumpId: 30, desc: 'CONSTRAINT', section: 4, deps: [10] });
  const acl = slot({ dumpId: 31, desc: 'ACL', section: 1, deps: [10] });
  const refresh = slot({ dumpId: 32, desc: 'MATERIALIZED VIEW DATA', section: 4, deps: [10] });

  it('a plain archive: its table streamed, the sequence after the rows, the key built once its table is loaded, ACLs and refreshes at the end', () => {
    const plan = streamPlan(head([encoding, table, data, seq, pk, acl, refresh]));
    expect(plan.encoding).toBe('UTF8');
    expect([...plan.tables.keys()]).toEqual([20]);
    expect(plan.blockless).toEqual([21]);
    expect([...plan.early]).toEqual([[30, [20]]]);
  });

  it.each([
    ['large objects', [encoding, slot({ dumpId: 40, desc: 'BLOBS', flag: 1, section: 3 })], false],
    ['pg_dump’s own compression', [encoding, table, data], true],
    ['a COPY statement of another shape', [encoding, { ...data, copyStmt: "COPY public.t (a) FROM PROGRAM 'x';\n" }], false],
    ['no ENCODING entry', [table, data], false],
  ] as const)('%s: NotStreamable (the file path)', (_name, entries, compressed) => {
    expect(() => streamPlan(head([...entries], compressed))).toThrow(NotStreamable);
  });

  it('-L lists name entries by their number', () => {
    expect(restoreList([21, 30])).toBe('21;\n30;\n');
  });
});
