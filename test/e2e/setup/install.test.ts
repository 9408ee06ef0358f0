import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

// scripts/install.sh (the README's install command, run first by .ci/run) links the CLI into
// /usr/local/bin: `permafrost` works by name, for root and for systemd, not only as `npx permafrost`.
describe('after scripts/install.sh', () => {
  it('permafrost is on PATH and runs', () => {
    const which = spawnSync('sh', ['-c', 'command -v permafrost'], { encoding: 'utf8' });
    expect(which.status, 'permafrost is not on PATH: run `bash scripts/install.sh` first, as the README says').toBe(0);
    const v = spawnSync('permafrost', ['--version'], { encoding: 'utf8' });
    expect(v.stderr).toBe('');
    expect(v.stdout.trim()).toBe(version);
    const h = spawnSync('permafrost', ['--help'], { encoding: 'utf8' });
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/^Usage: permafrost /);
  });

  it("systemd finds it there too: /usr/local/bin is on systemd's default PATH", () => {
    const v = spawnSync('/usr/local/bin/permafrost', ['--version'], {
      encoding: 'utf8',
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    expect(v.stdout.trim(), v.stderr).toBe(version);
  });
});
