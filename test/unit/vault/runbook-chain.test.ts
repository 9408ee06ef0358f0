/**
 * restore.sh and delta-mode snapshots, without a server: the hash SQL it checks a restored chain
 * with is delta-sql.ts's, and the chain it follows back to the base is refused (exit 3, the
 * snapshot named, nothing left) when a link is missing or does not continue it. The restore itself
 * is test/e2e/runbook/restore-sh-delta.test.ts.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HASH_SESSION_SQL, HASHRECORD_PROBE_SQL, HASHTEXT_PROBE_SQL, qualified, tableHashSql } from '../../../src/capture/delta-sql.js';
import { manifestSchema, ROW_HASH_KINDS, type Chain, type Manifest } from '../../../src/vault/manifest.js';
import { REPO } from '../../harness/env.js';
import { runSh } from '../../harness/restore-sh.js';

const SCRIPT = path.join(REPO, 'scripts/restore.sh');

describe("restore.sh's hash SQL", () => {
  /** The lines of restore.sh's function `name`, a quoted heredoc (verbatim). */
  function scriptSql(name: string): string[] {
    const body = new RegExp(`\\n${name}\\(\\) \\{\\n {2}cat <<'EOF'\\n([\\s\\S]*?)\\nEOF\\n\\}\\n`).exec(readFileSync(SCRIPT, 'utf8'))?.[1];
    expect(body, `restore.sh has no ${name}() heredoc`).toBeDefined();
    return body!.split('\n');
  }

  it('is HASH_SESSION_SQL, then tableHashSql of each row hash byte for byte once psql quotes :"s".:"t" (always quoted, quotes doubled)', () => {
    expect(scriptSql('hash_session_sql')).toEqual([HASH_SESSION_SQL]);
    // psql's :"name" is PQescapeIdentifier: always double-quoted, a " doubled — what qualified() writes.
    const psqlQuoted = (name: string): string => `"${name.replaceAll('"', '""')}"`;
    for (const kind of ROW_HASH_KINDS) {
      const [query, ...rest] = scriptSql(`hash_sql_${kind}`);
      expect(rest).toEqual([]);
      for (const [schema, table] of [
        ['public', 'status_stats'],
        ['Ünï cødé', 'a"b'],
      ] as const) {
        expect(psqlQuoted(schema) + '.' + psqlQuoted(table)).toBe(qualified(schema, table));
        expect(query!.split(':"s".:"t"')).toHaveLength(2);
        // hash_sql_hashrecord is a `hashrecord` table marked hashRecord; an unmarked one is hashed as under `hashtext`.
        expect(query!.replace(':"s".:"t"', `${psqlQuoted(schema)}.${psqlQuoted(table)}`)).toBe(
          `${tableHashSql(schema, table, { kind, record: true })};`,
        );
      }
    }
    expect(tableHashSql('s', 't', { kind: 'hashrecord', record: false })).toBe(tableHashSql('s', 't', { kind: 'hashtext' }));
    expect(scriptSql('hashtext_probe_sql').join('\n')).toBe(`${HASHTEXT_PROBE_SQL};`);
    expect(scriptSql('hashrecord_probe_sql').join('\n')).toBe(`${HASHRECORD_PROBE_SQL};`);
  });
});

describe('restore.sh follows a delta snapshot back to its base', () => {
  let dir: string;
  let vault: string;
  let tmp: string;
  const ids = ['2026-11-26T00-00-00Z', '2026-11-26T01-00-00Z', '2026-11-26T02-00-00Z', '2026-11-26T03-00-00Z'] as const;
  const [base, d1, d2, d3] = ids;
  const ddl = 'd'.repeat(64);

  /** A manifest as permafrost writes it (valid against manifestSchema), at `depth` of the chain above. */
  function write(id: string, depth: number, edit: (c: Chain) => Partial<Chain> = () => ({})): void {
    const file = (part: 'schema' | 'rows' | 'delta' | 'roles', name: string) => ({
      name,
      part,
      bytes: 10,
      sha256: '0'.repeat(64),
      plainBytes: 10,
      durationMs: 1,
    });
    const chain: Chain = {
      kind: depth === 0 ? 'base' : 'delta',
      base,
      reference: depth === 0 ? null : ids[depth - 1]!,
      depth,
      ddl,
      tables: [{ schema: 'public', table: 'accounts', rows: 1, hash: '1', key: ['id'] }],
    };
    const manifest: Manifest = manifestSchema.parse({
      formatVersion: 1,
      id,
      startedAt: '2026-11-26T00:00:00.000Z',
      finishedAt: '2026-11-26T00:00:01.000Z',
      tool: { name: 'permafrost', version: '0.1.0' },
      host: 'social.example',
      database: { name: 'mastodon_production', serverVersion: '15', pgDumpVersion: '15', compression: 'none', owner: 'mastodon' },
      mastodon: null,
      files: [
        ...(depth === 0 ? [file('schema', 'schema.pgdump.gpg'), file('rows', 'rows.sql.gpg')] : [file('delta', 'delta.sql.gpg')]),
        file('roles', 'roles.sql.gpg'),
      ],
      chain: { ...chain, ...edit(chain) },
    });
    mkdirSync(path.join(vault, id), { recursive: true });
    writeFileSync(path.join(vault, id, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  }

  /** restore.sh of `id` with no server behind PGHOST: a refused chain exits before it would connect. */
  async function restore(id: string) {
    const pass = path.join(dir, 'passphrase');
    writeFileSync(pass, 'p\n', { mode: 0o600 });
    const r = await runSh(path.join(vault, 'restore.sh'), ['--passphrase-file', pass, id], {
      PATH: process.env.PATH,
      TMPDIR: tmp,
      PGHOST: path.join(dir, 'no-server'),
    });
    expect(readdirSync(tmp)).toEqual([]);
    return { ...r, last: r.stderr.trim().split('\n').at(-1) };
  }

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'permafrost-test-chain-'));
    vault = path.join(dir, 'vault');
    tmp = path.join(dir, 'tmp');
    mkdirSync(tmp);
    mkdirSync(vault);
    writeFileSync(path.join(vault, 'restore.sh'), readFileSync(SCRIPT));
    ids.forEach((id, depth) => write(id, depth));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a whole chain passes the walk: the script goes on to the server (here: none, exit 1)', async () => {
    const r = await restore(d3);
    expect(r.code, r.stderr).toBe(1);
    expect(r.last).toMatch(/^restore\.sh: cannot reach the PostgreSQL server/);
  });

  it('a missing middle delta: exit 3 naming it', async () => {
    rmSync(path.join(vault, d2), { recursive: true });
    const r = await restore(d3);
    expect(r.code).toBe(3);
    expect(r.last).toBe(
      `restore.sh: snapshot ${d3} needs ${d2} (its chain goes back to base ${base}), which is missing from ${vault}; restore another snapshot (ls ${vault}), or copy ${d2} back from another copy of the vault.`,
    );
  });

  it('a missing base: exit 3 naming it', async () => {
    rmSync(path.join(vault, base, 'manifest.json'));
    const r = await restore(d1);
    expect(r.code).toBe(3);
    expect(r.last).toContain(`snapshot ${d1} needs ${base} (its chain goes back to base ${base}), which is missing`);
  });

  it('a link whose manifest is damaged: exit 3 naming it', async () => {
    writeFileSync(path.join(vault, d1, 'manifest.json'), '{"id": ');
    const r = await restore(d3);
    expect(r.code).toBe(3);
    expect(r.last).toBe(
      `restore.sh: snapshot ${d3} needs ${d1}, whose manifest.json is damaged or not in the layout this script reads; restore another snapshot.`,
    );
  });

  it('a link of another base, another schema, the wrong depth or kind: exit 3 naming it', async () => {
    const other = '2026-11-25T00-00-00Z';
    for (const edit of [() => ({ base: other }), () => ({ ddl: 'e'.repeat(64) }), (c: Chain) => ({ depth: c.depth + 1 })]) {
      write(d2, 2, edit);
      const r = await restore(d3);
      expect(r.code).toBe(3);
      expect(r.last).toBe(
        `restore.sh: snapshot ${d3} needs ${d2}, whose manifest.json does not continue its chain (it should be a delta at depth 2 of base ${base}, with the same schema); restore another snapshot.`,
      );
    }
    write(d2, 2);
    // The reference is a base of its own (depth 0 where depth 1 is due).
    write(d1, 0, () => ({ base: d1 }));
    const r = await restore(d2);
    expect(r.code).toBe(3);
    expect(r.last).toContain(
      `snapshot ${d2} needs ${d1}, whose manifest.json does not continue its chain (it should be a delta at depth 1`,
    );
  });

  it('a hashRecord mark permafrost never writes (not true, or outside a hashrecord chain): exit 3 before the server', async () => {
    const file = path.join(vault, d3, 'manifest.json');
    const good = readFileSync(file, 'utf8');
    const cases: Array<[string | undefined, unknown]> = [
      ['hashrecord', false],
      ['hashrecord', 'true'],
      ['hashrecord', null],
      ['hashrecord', 1],
      ['hashrecord', { x: true }],
      ['hashtext', true],
      ['md5', true],
      [undefined, true],
    ];
    for (const [rowHash, mark] of cases) {
      const m = JSON.parse(good) as { chain: { rowHash?: string; tables: Array<Record<string, unknown>> } };
      if (rowHash) m.chain.rowHash = rowHash;
      else delete m.chain.rowHash;
      m.chain.tables[0]!.hashRecord = mark;
      writeFileSync(file, `${JSON.stringify(m, null, 2)}\n`);
      const r = await restore(d3);
      expect(r.code, `${rowHash} ${JSON.stringify(mark)}: ${r.stderr}`).toBe(3);
      expect(r.last).toBe(
        `restore.sh: ${vault}/${d3}/manifest.json marks how a table is hashed in a way permafrost never writes; it cannot be trusted.`,
      );
    }
    // The mark as permafrost writes it passes on to the server.
    const m = JSON.parse(good) as Manifest;
    m.chain!.rowHash = 'hashrecord';
    m.chain!.tables[0]!.hashRecord = true;
    writeFileSync(file, `${JSON.stringify(manifestSchema.parse(m), null, 2)}\n`);
    const r = await restore(d3);
    expect(r.code, r.stderr).toBe(1);
    expect(r.last).toMatch(/^restore\.sh: cannot reach the PostgreSQL server/);
  });

  it("a reference that names another snapshot's folder, or one that is no snapshot id: exit 3", async () => {
    writeFileSync(
      path.join(vault, d1, 'manifest.json'),
      readFileSync(path.join(vault, d2, 'manifest.json'), 'utf8').replace(`"id": "${d2}"`, `"id": "${d1}"`),
    );
    let r = await restore(d2);
    expect(r.code).toBe(3);
    // d1's manifest now says it is at depth 2 of the chain, not 1.
    expect(r.last).toContain(`snapshot ${d2} needs ${d1}, whose manifest.json does not continue its chain`);
    const text = readFileSync(path.join(vault, d3, 'manifest.json'), 'utf8');
    writeFileSync(path.join(vault, d3, 'manifest.json'), text.replace(`"reference": "${d2}"`, '"reference": "../etc"'));
    r = await restore(d3);
    expect(r.code).toBe(3);
    expect(r.last).toBe(`restore.sh: ${vault}/${d3}/manifest.json names an unusual reference "../etc"; it cannot be trusted.`);
  });
});
