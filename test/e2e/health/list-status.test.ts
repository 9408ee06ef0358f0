/**
 * Issue 21 item 9: `list` aligned on a terminal (TSV with --tsv or when piped), a long CHECKED
 * text that cannot break the alignment, and one age for a snapshot in `list` and `status`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/vault/manifest.js';
import { CLI, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('listing');
let ws: Workspace;
const ids: string[] = [];

/** Runs the CLI with stdout on a pseudo-terminal (util-linux `script`), as a user at a shell sees it. */
function onTerminal(args: string[]): string {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const r = spawnSync('script', ['-qec', [process.execPath, CLI, ...args].map(quote).join(' '), '/dev/null'], {
    encoding: 'utf8',
    env: { ...process.env, COLUMNS: '200' },
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.replace(/\r/g, '');
}

beforeAll(async () => {
  ws = makeWorkspace(cluster.get(), 'listing');
  for (let i = 0; i < 2; i++) {
    const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
    expect(r.code, r.stderr).toBe(0);
    ids.unshift((JSON.parse(r.stdout) as Manifest).id);
  }
  // The older snapshot damaged twice over, so check's text for it is long.
  const m = JSON.parse(readFileSync(path.join(ws.vault, ids[1]!, 'manifest.json'), 'utf8')) as Manifest;
  for (const f of m.files) {
    const file = path.join(ws.vault, ids[1]!, f.name);
    const b = readFileSync(file);
    b[0]! ^= 0xff;
    writeFileSync(file, b);
  }
  writeFileSync(path.join(ws.vault, ids[1]!, 'stray-file-with-a-long-name.txt'), 'x');
  expect((await runCli(['--config', ws.configFile, 'check'])).code).toBe(3);
}, 120_000);
afterAll(() => ws?.cleanup());

describe('list on a terminal and in a pipe', () => {
  it('on a terminal: aligned columns, no TAB, the long CHECKED text cut with …', () => {
    const lines = onTerminal(['--config', ws.configFile, 'list']).trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.join('\n')).not.toContain('\t');
    const header = lines[0]!;
    expect(header).toMatch(/^SNAPSHOT +AGE +SIZE +KIND +VERIFIED +CHECKED +CONTENTS +KEY$/);
    for (const col of ['AGE', 'SIZE', 'KIND', 'VERIFIED', 'CHECKED', 'CONTENTS', 'KEY']) {
      const at = header.indexOf(col);
      for (const l of lines.slice(1)) {
        expect(l[at - 1], `${col} in "${l}"`).toBe(' ');
        expect(l[at], `${col} in "${l}"`).not.toBe(' ');
      }
    }
    expect(lines[2]).toMatch(/✗ .*…/);
    expect(lines[2]!.slice(header.indexOf('CONTENTS'))).toMatch(/^database/);
  });

  it('piped or with --tsv: tab-separated with the whole CHECKED text', async () => {
    const piped = await runCli(['--config', ws.configFile, 'list']);
    expect(piped.code).toBe(0);
    const rows = piped.stdout.trimEnd().split('\n');
    expect(rows[0]).toBe('SNAPSHOT\tAGE\tSIZE\tKIND\tVERIFIED\tCHECKED\tCONTENTS\tKEY');
    expect(rows[2]!.split('\t')).toHaveLength(8);
    expect(rows[2]).toContain('stray-file-with-a-long-name.txt');
    const tsv = onTerminal(['--config', ws.configFile, 'list', '--tsv']).trimEnd().split('\n');
    expect(tsv[0]).toBe('SNAPSHOT\tAGE\tSIZE\tKIND\tVERIFIED\tCHECKED\tCONTENTS\tKEY');
    const json = JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as Array<{ checkProblems: string[] }>;
    expect(json[1]!.checkProblems.join('; ')).toContain('stray-file-with-a-long-name.txt');
  });

  it('one age: list and status count a snapshot from its commit, with the same format', async () => {
    const m = JSON.parse(readFileSync(path.join(ws.vault, ids[0]!, 'manifest.json'), 'utf8')) as Manifest;
    const list = JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as Array<{ ageSeconds: number }>;
    const status = JSON.parse((await runCli(['--config', ws.configFile, 'status', '--json'])).stdout) as {
      snapshot: { id: string; ageSeconds: number };
    };
    expect(status.snapshot.id).toBe(ids[0]);
    const fromCommit = (Date.now() - Date.parse(m.finishedAt)) / 1000;
    expect(Math.abs(list[0]!.ageSeconds - fromCommit)).toBeLessThanOrEqual(3);
    expect(Math.abs(status.snapshot.ageSeconds - list[0]!.ageSeconds)).toBeLessThanOrEqual(3);
    const human = await runCli(['--config', ws.configFile, 'status']);
    const age = /^newest snapshot: \S+ \((\S+) old\)/m.exec(human.stdout)?.[1];
    const listed = (await runCli(['--config', ws.configFile, 'list'])).stdout.split('\n')[1]!.split('\t')[1];
    expect(age).toMatch(/^\d+(s|m)$/);
    expect(listed).toMatch(/^\d+(s|m)$/);
  });
});
