import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packageFile, packageFileFrom } from '../../src/package-file.js';
import { REPO } from '../harness/env.js';

describe('packageFile', () => {
  let dir: string | undefined;
  afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));

  it("from src/ it is the repository's file", () => {
    expect(packageFile('scripts/restore.sh')).toBe(path.join(REPO, 'scripts/restore.sh'));
  });

  it('finds the package root from any depth below it (dist/vault, dist/bin/chunks), the nearest package.json winning', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'permafrost-pkgfile-'));
    writeFileSync(path.join(dir, 'package.json'), '{}');
    for (const sub of ['dist', 'dist/vault', 'dist/bin/chunks']) {
      mkdirSync(path.join(dir, sub), { recursive: true });
      expect(packageFileFrom(path.join(dir, sub), 'package.json'), sub).toBe(path.join(dir, 'package.json'));
    }
    writeFileSync(path.join(dir, 'dist/bin/package.json'), '{}');
    expect(packageFileFrom(path.join(dir, 'dist/bin/chunks'), 'x')).toBe(path.join(dir, 'dist/bin/x'));
  });

  it('with no package.json above, one sentence naming where it looked', () => {
    expect(() => packageFileFrom('/proc/self', 'package.json')).toThrow(
      'no package.json above /proc/self: the permafrost package is incomplete',
    );
  });
});
