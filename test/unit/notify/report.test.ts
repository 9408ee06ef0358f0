import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { type JobSecrets, Secret } from '../../../src/config/secret-values.js';
import { BusyError, PermafrostError } from '../../../src/errors.js';
import { readAlertState } from '../../../src/notify/alerts.js';
import { openVault } from '../../../src/vault/layout.js';
import { backupWithAlerts, requiredPartsFailed } from '../../../src/notify/report.js';
import { runContext } from '../../../src/run-context.js';

const root = mkdtempSync(path.join(tmpdir(), 'pf-report-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
writeFileSync(path.join(root, 'pass'), 'secret\n', { mode: 0o600 });
let n = 0;
/** A server config with alerting on (no channels: the alert state is still recorded) and its own vault. */
function config() {
  const vault = path.join(root, `vault${n++}`);
  mkdirSync(vault);
  return parseConfig(
    JSON.stringify({ database: { name: 'm' }, vault: { dir: vault, passphraseFile: path.join(root, 'pass') }, notify: {} }),
    'test.yaml',
  );
}
const secrets: JobSecrets = {
  database: Secret.of('db-hunter2'),
  verifyDatabase: undefined,
  redis: undefined,
  syncthing: undefined,
  mastodon: undefined,
  web: undefined,
  vaultPassphrase: undefined,
};
const ID = '2026-12-01T10-00-00Z';

describe('requiredPartsFailed', () => {
  it('one sentence naming the required parts that failed; optional failures and none are not a failure', () => {
    expect(requiredPartsFailed({ id: ID })).toBeNull();
    expect(requiredPartsFailed({ id: ID, failed: [{ part: 'redis', error: 'Redis refused.', optional: true }] })).toBeNull();
    expect(
      requiredPartsFailed({
        id: ID,
        failed: [
          { part: 'redis', error: 'Redis refused.', optional: false },
          { part: 'secrets', error: 'cannot read .env.production', optional: false },
        ],
      }),
    ).toBe(
      `Snapshot ${ID} was written with the database but without its redis and secrets part: Redis refused; cannot read .env.production.`,
    );
  });
});

describe('backupWithAlerts', () => {
  it('passes the result through; a success after a failure clears the backup condition', async () => {
    const c = config();
    await expect(backupWithAlerts(c, () => Promise.reject(new Error('pg_dump failed.')), runContext(), secrets)).rejects.toThrow();
    expect((await readAlertState(openVault(c.vault.dir))).conditions.backup?.failing).toBe(true);
    const result = { manifest: { id: ID }, extra: 1 };
    expect(await backupWithAlerts(c, () => Promise.resolve(result), runContext(), secrets)).toBe(result);
    expect((await readAlertState(openVault(c.vault.dir))).conditions.backup?.failing).toBe(false);
  });

  it('a snapshot without a required part is a failing backup', async () => {
    const c = config();
    await backupWithAlerts(
      c,
      () => Promise.resolve({ manifest: { id: ID, failed: [{ part: 'redis' as const, error: 'Redis refused.', optional: false }] } }),
      runContext(),
      secrets,
    );
    const cond = (await readAlertState(openVault(c.vault.dir))).conditions.backup;
    expect(cond?.failing).toBe(true);
    expect(cond?.error).toContain('without its redis part: Redis refused.');
  });

  it('rethrows the error unchanged, recording it redacted; a busy vault or a stopped run is not a failure', async () => {
    const c = config();
    const boom = new PermafrostError('connection', 'cannot connect with password db-hunter2.');
    await expect(backupWithAlerts(c, () => Promise.reject(boom), runContext(), secrets)).rejects.toBe(boom);
    const cond = (await readAlertState(openVault(c.vault.dir))).conditions.backup;
    expect(cond?.failing).toBe(true);
    expect(cond?.error).not.toContain('db-hunter2');

    const quiet = config();
    const busy = new BusyError('Another permafrost run holds the lock.');
    await expect(backupWithAlerts(quiet, () => Promise.reject(busy), runContext(), secrets)).rejects.toBe(busy);
    const stop = new AbortController();
    stop.abort();
    await expect(
      backupWithAlerts(
        quiet,
        () => Promise.reject(new PermafrostError('stopped', 'stopped')),
        runContext({ signal: stop.signal }),
        secrets,
      ),
    ).rejects.toThrow('stopped');
    expect((await readAlertState(openVault(quiet.vault.dir))).conditions.backup).toBeUndefined();
  });
});
