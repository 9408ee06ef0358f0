import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';

// The real overview of a real (empty) vault: status is the judgement's exit code and its rendering.
const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));

describe('permafrost status', () => {
  it('an empty vault: the overview rendered, and exit 1 naming the problem with its fix', async () => {
    const r = await runInProcess(['--config', cfg.file, 'status']);
    expect(r.code).toBe(1);
    expect(r.out[0]).toBe('newest snapshot: none yet');
    expect(r.out).toContain('last backup: none recorded');
    expect(r.out.some((l) => l.startsWith('warning: no retention policy (vault.keep)'))).toBe(true);
    expect(r.err).toEqual(['permafrost: The snapshots need attention: there is no snapshot yet: run `permafrost backup`.']);
  });

  it('--json: the verdict and problems as JSON on stdout, the same exit code', async () => {
    const r = await runInProcess(['--config', cfg.file, 'status', '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out.join('\n')) as { healthy: boolean; problems: string[]; role: string };
    expect(j).toMatchObject({ healthy: false, role: 'source', problems: ['there is no snapshot yet: run `permafrost backup`'] });
  });

  it('a config that does not load: exit 2 naming the key; no status is printed', async () => {
    const bad = path.join(cfg.dir, 'bad');
    mkdirSync(bad);
    writeFileSync(path.join(bad, 'p.yaml'), 'vault: { dir: relative/path }\n');
    const r = await runInProcess(['--config', path.join(bad, 'p.yaml'), 'status']);
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(r.err.join('\n')).toContain('vault.dir');
  });
});
