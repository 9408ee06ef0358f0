import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';

// The real overview of a real (empty) vault, rendered as Prometheus text.
const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));

describe('permafrost metrics', () => {
  it('prints the metrics on stdout with the health gauge of the same judgement as status (0: no snapshot yet), exit 0', async () => {
    const r = await runInProcess(['--config', cfg.file, 'metrics']);
    expect(r.code).toBe(0);
    const text = r.out.join('\n');
    expect(text).toMatch(/^permafrost_healthy 0$/m);
    expect(text).toMatch(/^permafrost_snapshots 0$/m);
    expect(text.endsWith('\n')).toBe(false);
    expect(r.err).toEqual([]);
  });

  it('--textfile: the same text written to the file, nothing on stdout, where it went on stderr', async () => {
    const file = path.join(cfg.dir, 'permafrost.prom');
    const r = await runInProcess(['--config', cfg.file, 'metrics', '--textfile', file]);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([]);
    expect(r.err).toEqual([`metrics written to ${file}`]);
    expect(readFileSync(file, 'utf8')).toMatch(/^permafrost_healthy 0$/m);
  });
});
