import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { requireSource } from '../../../src/config/normalize.js';
import { runBackup } from '../../../src/ops/backup.js';
import { runVaultCheck } from '../../../src/ops/check.js';
import { readJobSecrets } from '../../../src/ops/secrets.js';
import { runContext } from '../../../src/run-context.js';
import { makeWorkspace, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

// captureChainParts through runBackup (its only caller), in process against the harness PostgreSQL.
// The stable, user-visible decisions only: base or delta, the chain's links, what each part is.
const cluster = clusterPerFile('deltasrc');
let ws: Workspace | undefined;
afterAll(() => ws?.cleanup());

describe('delta-mode backups (database.delta)', () => {
  it('the first is a base (schema + rows), the next a delta on it, then one on that: a chain check accepts', async () => {
    ws = makeWorkspace(cluster.get(), 'deltasrc');
    ws.writeConfig({ database: { delta: { fullEvery: '1d' } } });
    const config = requireSource(loadConfig(ws.configFile), 'backup');
    const secrets = readJobSecrets(config);
    const base = await runBackup(config, runContext(), secrets);
    expect(base.manifest.chain).toMatchObject({ kind: 'base', base: base.manifest.id, reference: null, depth: 0 });
    expect(base.manifest.files.map((f) => f.part).sort()).toEqual(['roles', 'rows', 'schema']);

    cluster.get().psql('deltasrc', "INSERT INTO accounts (username) VALUES ('after-base')");
    await new Promise((r) => setTimeout(r, 1100));
    const d1 = await runBackup(config, runContext(), secrets);
    expect(d1.manifest.chain).toMatchObject({ kind: 'delta', base: base.manifest.id, reference: base.manifest.id, depth: 1 });
    expect(d1.manifest.files.map((f) => f.part).sort()).toEqual(['delta', 'roles']);

    await new Promise((r) => setTimeout(r, 1100));
    const d2 = await runBackup(config, runContext(), secrets);
    expect(d2.manifest.chain).toMatchObject({ kind: 'delta', base: base.manifest.id, reference: d1.manifest.id, depth: 2 });
    // The row counts are the source's at each snapshot.
    expect(d1.manifest.mastodon!.rowCounts.accounts).toBe(base.manifest.mastodon!.rowCounts.accounts! + 1);
    expect((await runVaultCheck(config, undefined)).ok).toBe(true);
  });
});
