/**
 * The Redis part in-process against a real Redis (test/harness/redis.ts): the run's log says once
 * which path read it and why, and never shows the password.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Secret } from '../../../src/config/secret-values.js';
import { loadEncryptionKeys } from '../../../src/crypto/keys.js';
import { captureExtraParts } from '../../../src/ops/backup-parts.js';
import { readVaultPassphrase, type SourceJob } from '../../../src/ops/secrets.js';
import { runContext } from '../../../src/run-context.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-parts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const passFile = path.join(dir, 'passphrase');
writeFileSync(passFile, 'vault passphrase\n', { mode: 0o600 });
const servers: RedisServer[] = [];
afterEach(() => {
  for (const r of servers.splice(0)) destroyRedis(r);
});

async function capture(r: RedisServer, password?: string): Promise<{ lines: string[]; failed: unknown[] }> {
  const vault: { passphraseFile: string; recipients?: string[] } = { passphraseFile: passFile };
  const keys = await loadEncryptionKeys(vault, readVaultPassphrase(vault));
  const lines: string[] = [];
  const job = {
    redis: { url: r.url, optional: false, password: password === undefined ? undefined : Secret.of(password) },
    secrets: false,
  } as unknown as SourceJob;
  const snap = mkdtempSync(path.join(dir, 'snap-'));
  const ctx = runContext({ log: (level, msg, fields) => lines.push(`${level} ${msg} ${JSON.stringify(fields)}`) });
  const parts = await captureExtraParts(job, { dir: snap, keys, rolesSql: Promise.resolve('') }, ctx);
  expect(parts.files.map((f) => f.part)).toContain('redis');
  return { lines, failed: parts.failed };
}

describe('the Redis part says which path read it', () => {
  it('a Redis with a save schedule: one line naming SYNC and the schedule, without the password', async () => {
    const r = startRedis({ password: 'pw-SECRETWORD', args: ['--save', '3600 1', '--repl-diskless-sync-delay', '5'] });
    servers.push(r);
    r.cli('SET', 'k', 'v');
    const { lines, failed } = await capture(r, 'pw-SECRETWORD');
    expect(failed).toEqual([]);
    expect(lines).toEqual([
      expect.stringMatching(/^info redis part: SYNC \(Redis saves RDB files itself: save "3600 1"\) .*"path":"sync"/),
    ]);
    expect(lines.join('\n')).not.toContain('SECRETWORD');
  });

  it('a Redis with save "": one line naming redis-cli and why', async () => {
    const r = startRedis();
    servers.push(r);
    r.cli('SET', 'k', 'v');
    const { lines, failed } = await capture(r);
    expect(failed).toEqual([]);
    expect(lines).toEqual([
      expect.stringMatching(/^info redis part: redis-cli --rdb \(Redis saves no RDB files itself \(save ""\)\) .*"path":"redis-cli"/),
    ]);
  });
});
