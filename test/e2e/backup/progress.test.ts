import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('source');
let ws: Workspace;
afterEach(() => ws?.cleanup());

const SUMMARY = (cmd: string, phase: string) =>
  new RegExp(`^${cmd}: ${phase} \\d+(\\.\\d)? (B|KiB|MiB) in \\d+\\.\\ds \\(\\d+(\\.\\d)? (B|KiB|MiB|GiB)/s\\)$`, 'm');

describe('progress output', () => {
  it('not a TTY: plain phase lines with bytes and rate; --json: nothing extra', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const b = await runCli(['--config', ws.configFile, 'backup']);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/^backup: database…$/m);
    expect(b.stderr).toMatch(SUMMARY('backup', 'database'));
    expect(b.stderr).not.toContain('\x1b[');
    expect(b.stdout).toMatch(/^snapshot \S+ written to/);

    const j = await runCli(['--config', ws.configFile, 'backup', '--json']);
    expect(j.code).toBe(0);
    expect(j.stderr).toBe('');

    const r = await runCli(['--config', ws.configFile, 'restore', 'latest', '--database', 'progress_restored']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^restore: decrypt…$/m);
    expect(r.stderr).toMatch(SUMMARY('restore', 'decrypt'));
    expect(r.stderr).toMatch(/^restore: restore…$/m);

    const v = await runCli(['--config', ws.configFile, 'verify', '--json']);
    expect(v.code).toBe(0);
    expect(v.stderr).toBe('');
  });

  it('a TTY: one line per phase, redrawn in place', () => {
    ws = makeWorkspace(cluster.get(), 'source');
    // `script` gives the CLI a pseudo-terminal, as an admin's shell would.
    const run = (args: string) =>
      spawnSync('script', ['-qfec', `${process.execPath} ${CLI} --config ${ws.configFile} ${args}`, '/dev/null'], { encoding: 'utf8' });
    const b = run('backup');
    expect(b.status, b.stdout).toBe(0);
    const v = run('verify');
    expect(v.status, v.stdout).toBe(0);
    const redraws = v.stdout.split('\r\x1b[K').filter(Boolean);
    expect(redraws.some((l) => l.startsWith('verify: decrypt database…'))).toBe(true);
    expect(redraws.some((l) => SUMMARY('verify', 'decrypt database').test(l.replace(/\r?\n$/, '')))).toBe(true);
    expect(redraws.some((l) => /^verify: restore done in \d+\.\ds\r?\n/.test(l))).toBe(true);
    expect(v.stdout).toMatch(/snapshot \S+ verified in/);
  });
});
