import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../harness/env.js';

// The README's quick start is this script: keep it working end to end.
describe('quick start demo', () => {
  it('scripts/demo.sh backs up, lists, restores (with permafrost and with stock tools) and refuses a damaged snapshot', () => {
    const r = spawnSync('bash', [path.join(REPO, 'scripts/demo.sh')], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/snapshot \S+ written to/);
    expect(r.stdout).toContain('200 statuses restored\n');
    expect(r.stdout).toContain('200 statuses restored with gpg + pg_restore');
    expect(r.stderr).toMatch(/failed its integrity check/);
    expect(r.stdout).toContain('(exit 3 — as it should)');
  });
});
