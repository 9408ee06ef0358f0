import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createExclusive, diskSpace, writeFileAtomic } from '../../../src/vault/fs-durable.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pf-durable-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole, with the mode asked for, leaving no temporary file', async () => {
    const file = path.join(dir, 'RESTORE.md');
    writeFileSync(file, 'old');
    await writeFileAtomic(file, 'new text', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('new text');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['RESTORE.md']);
  });

  it('a failed rename leaves the old content and no temporary file behind', async () => {
    const target = path.join(dir, 'busy');
    mkdirSync(target);
    writeFileSync(path.join(target, 'inside'), 'x');
    await expect(writeFileAtomic(target, 'data')).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) });
    expect(readdirSync(dir)).toEqual(['busy']);
    expect(readFileSync(path.join(target, 'inside'), 'utf8')).toBe('x');
  });

  it('a missing folder fails with ENOENT', async () => {
    await expect(writeFileAtomic(path.join(dir, 'no', 'such'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('createExclusive', () => {
  it('creates a new file with its mode, and never replaces an existing one', async () => {
    const file = path.join(dir, 'passphrase');
    await createExclusive(file, 'first\n', 0o600);
    expect(readFileSync(file, 'utf8')).toBe('first\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await expect(createExclusive(file, 'second\n', 0o600)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(file, 'utf8')).toBe('first\n');
  });
});

describe('diskSpace', () => {
  it('reports free ≤ total, both positive', async () => {
    const { free, total } = await diskSpace(dir);
    expect(total).toBeGreaterThan(0);
    expect(free).toBeGreaterThanOrEqual(0);
    expect(free).toBeLessThanOrEqual(total);
  });
});
