import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// A prune racing `list`/`metrics`/the status page: the folder goes away after the vault was read.
// The hooks below remove it at exactly that moment, so the race happens every run.
const hooks: { afterReaddir?: () => void; afterLstat?: (p: string) => void } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof fsp>();
  return {
    ...real,
    readdir: async (...args: Parameters<typeof real.readdir>) => {
      const r = await real.readdir(...args);
      hooks.afterReaddir?.();
      return r;
    },
    lstat: async (p: string) => {
      const r = await real.lstat(p);
      hooks.afterLstat?.(p);
      return r;
    },
  };
});

const { listSnapshots } = await import('../../../src/vault/store.js');

let vault: string;
beforeEach(() => {
  vault = mkdtempSync(path.join(tmpdir(), 'permafrost-race-'));
});
afterEach(() => {
  hooks.afterReaddir = undefined;
  hooks.afterLstat = undefined;
  rmSync(vault, { recursive: true, force: true });
});

function snapshot(id: string): string {
  const dir = path.join(vault, id);
  mkdirSync(dir);
  const manifest = {
    formatVersion: 1,
    id,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    tool: { name: 'permafrost', version: '0.1.0' },
    host: 'test',
    database: { name: 'm', serverVersion: '16', pgDumpVersion: '16', compression: 'none' },
    mastodon: null,
    files: [],
  };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

describe('listSnapshots racing a prune', () => {
  it('skips a folder removed between listing the vault and examining it', async () => {
    snapshot('2026-01-01T00-00-00Z');
    const gone = snapshot('2026-01-02T00-00-00Z');
    hooks.afterReaddir = () => rmSync(gone, { recursive: true, force: true });
    const ids = (await listSnapshots(vault)).map((s) => [s.id, s.problem ?? null]);
    expect(ids).toEqual([['2026-01-01T00-00-00Z', null]]);
  });

  it('skips a folder removed between examining it and reading its manifest', async () => {
    snapshot('2026-01-01T00-00-00Z');
    const gone = snapshot('2026-01-02T00-00-00Z');
    hooks.afterLstat = (p) => {
      if (p === gone) rmSync(gone, { recursive: true, force: true });
    };
    const ids = (await listSnapshots(vault)).map((s) => [s.id, s.problem ?? null]);
    expect(ids).toEqual([['2026-01-01T00-00-00Z', null]]);
  });
});
