import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../harness/env.js';

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

  it('KEEP=1 leaves a running server and a good snapshot: the commands it prints work, and the stop line it prints cleans up', () => {
    const r = spawnSync('bash', [path.join(REPO, 'scripts/demo.sh')], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, KEEP: '1' },
    });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('byte put back: permafrost check passes again');
    const exported = /export (PERMAFROST_CONFIG=\S+) (PGHOST=\S+) (PGUSER=\S+)/.exec(r.stdout);
    expect(exported, r.stdout).not.toBeNull();
    const env = { ...process.env, ...Object.fromEntries(exported!.slice(1).map((kv) => kv.split('=') as [string, string])) };
    const demoDir = path.dirname(env.PERMAFROST_CONFIG!);
    try {
      const cli = path.join(REPO, 'dist/bin/permafrost.js');
      const check = spawnSync('node', [cli, 'check'], { encoding: 'utf8', env });
      expect(check.status, check.stderr).toBe(0);
      const verify = spawnSync('node', [cli, 'verify', 'latest'], { encoding: 'utf8', env, timeout: 60_000 });
      expect(verify.status, verify.stderr).toBe(0);
      const backup = spawnSync('node', [cli, 'backup'], { encoding: 'utf8', env, timeout: 60_000 });
      expect(backup.status, backup.stderr).toBe(0);
    } finally {
      const stop = /when done: (.+)$/m.exec(r.stdout);
      expect(stop).not.toBeNull();
      spawnSync('sh', ['-c', stop![1]!], { encoding: 'utf8' });
    }
    expect(existsSync(demoDir)).toBe(false);
    rmSync(demoDir, { recursive: true, force: true });
  });
});
