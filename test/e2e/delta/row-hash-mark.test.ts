/**
 * A hashRecord mark on a table whose columns have no such hash (a point, json, xml column: only a
 * hand-edited, unsigned manifest holds one) must end in a clear integrity refusal (exit 3), from
 * permafrost and from restore.sh, not a raw server error.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { libpqEnv, runSh } from '../../harness/restore-sh.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile();
let ws: Workspace;
afterEach(() => ws?.cleanup());

describe('a hashRecord mark on a table with no record hash', () => {
  it('is refused with exit 3 by restore and restore.sh', async () => {
    const db = 'mark1';
    cluster.createDb(db);
    cluster.get().psql(db, `CREATE TABLE pf_nokey (v text, p point, j json); INSERT INTO pf_nokey VALUES ('a', '(1,2)', '{}');`);
    ws = makeWorkspace(cluster.get(), db);
    ws.writeConfig({ database: { delta: {} } });
    const b = await runCli(['--config', ws.configFile, 'backup', '--json']);
    expect(b.code, b.stderr).toBe(0);
    const id = (JSON.parse(b.stdout) as Manifest).id;
    const file = path.join(ws.vault, id, 'manifest.json');
    const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    expect(m.chain!.rowHash).toBe('hashrecord');
    const t = m.chain!.tables.find((x) => x.table === 'pf_nokey')!;
    expect(t.hashRecord).toBeUndefined();
    t.hashRecord = true;
    writeFileSync(file, `${JSON.stringify(m, null, 2)}\n`);

    const r = await runCli(['--config', ws.configFile, 'restore', id, '--database', `${db}_r`]);
    const tmp = mkdtempSync(path.join(ws.dir, 'sh-'));
    let sh;
    try {
      sh = await runSh(
        path.join(ws.vault, 'restore.sh'),
        ['--passphrase-file', ws.passFile, '--database', `${db}_sh`, id],
        libpqEnv(cluster.get(), tmp),
      );
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    // Before: permafrost exit 70 ("internal error: could not identify an extended hash function for
    // type point. This is a bug"), restore.sh exit 3 blaming the table's name.
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toContain('table "public"."pf_nokey" is marked hashRecord in the manifest');
    expect(sh.code, sh.stderr).toBe(3);
    expect(sh.stderr).toContain('marks the table public.pf_nokey as hashed by hash_record_extended');
  }, 300_000);
});
