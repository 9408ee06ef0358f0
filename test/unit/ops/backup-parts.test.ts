import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { requireSource } from '../../../src/config/normalize.js';
import { Secret } from '../../../src/config/secret-values.js';
import { loadEncryptionKeys } from '../../../src/crypto/keys.js';
import { captureExtraParts } from '../../../src/ops/backup-parts.js';
import { readJobSecrets, withSourceSecrets } from '../../../src/ops/secrets.js';
import { runContext } from '../../../src/run-context.js';
import { deadPort } from '../../harness/http-sinks.js';
import { makeWorkspace } from '../../harness/env.js';

// The parts beside the database dump (roles, Redis, secrets), in process; the database itself is not reached here.
describe('captureExtraParts', () => {
  const ws = makeWorkspace(null, '');
  afterAll(() => ws.cleanup());
  const env = path.join(ws.dir, '.env.production');
  writeFileSync(env, 'SECRET_KEY_BASE=abc\n', { mode: 0o600 });

  const source = (extra: Record<string, unknown>) => {
    ws.writeConfig({ extra: { database: { name: 'mastodon_production', host: ws.dir }, ...extra } });
    const config = requireSource(loadConfig(ws.configFile), 'backup');
    return withSourceSecrets(config, readJobSecrets(config));
  };
  const capture = async (extra: Record<string, unknown>, rolesSql: Promise<string> = Promise.resolve('-- roles\n')) => {
    const dir = mkdtempSync(path.join(ws.dir, 'partial-'));
    const keys = await loadEncryptionKeys({}, Secret.of('pass'));
    const parts = await captureExtraParts(source(extra), { dir, keys, rolesSql }, runContext());
    return { dir, parts };
  };

  it('roles and the secrets file, each encrypted into its own file; nothing failed', async () => {
    const { dir, parts } = await capture({ secrets: { file: env } });
    expect(parts.files.map((f) => f.part).sort()).toEqual(['roles', 'secrets']);
    expect(parts.failed).toEqual([]);
    expect(parts.warnings).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['env.production.gpg', 'roles.sql.gpg']);
  });

  it('a failing part costs only itself: recorded as failed, its half-written file removed, a warning when optional', async () => {
    const port = await deadPort();
    const { dir, parts } = await capture({
      secrets: { file: path.join(ws.dir, 'missing.env'), optional: true },
      redis: { url: `redis://127.0.0.1:${port}` },
    });
    expect(parts.files.map((f) => f.part)).toEqual(['roles']);
    expect(parts.failed.map((f) => [f.part, f.optional]).sort()).toEqual([
      ['redis', false],
      ['secrets', true],
    ]);
    const secrets = parts.failed.find((f) => f.part === 'secrets')!;
    expect(secrets.error).toMatch(/^Secrets part failed: cannot read .*missing\.env \(ENOENT\)/);
    // Only the optional one is a warning; the required one is the run's failure (ops/runs.ts).
    expect(parts.warnings).toEqual([`secrets part skipped (marked optional): ${secrets.error}`]);
    expect(readdirSync(dir)).toEqual(['roles.sql.gpg']);
  });

  it('without the roles part the snapshot is not to be trusted: its failure is thrown, whatever else happened', async () => {
    const err = await capture({ secrets: { file: env } }, Promise.reject(new Error('capture session ended'))).then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as Error).message).toBe('capture session ended');
  });

  it('a run stopped meanwhile throws rather than recording a failed part', async () => {
    const dir = mkdtempSync(path.join(ws.dir, 'partial-'));
    const keys = await loadEncryptionKeys({}, Secret.of('pass'));
    const ac = new AbortController();
    ac.abort();
    const err = await captureExtraParts(
      source({ secrets: { file: path.join(ws.dir, 'missing.env'), optional: true } }),
      { dir, keys, rolesSql: Promise.resolve('') },
      runContext({ signal: ac.signal }),
    ).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(existsSync(path.join(dir, 'env.production.gpg'))).toBe(false);
  });
});
