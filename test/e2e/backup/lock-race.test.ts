import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../../harness/env.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-lockrace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Real processes that all try to take the same stale lock at one instant (each spins until a common
 * start time) and say whether they got it. Each leaves a mark once it has tried; the one that got
 * the lock holds it until all have tried, so a contender that a loaded machine starts late still
 * meets the lock held instead of a finished run.
 */
function contender(vault: string, at: number, marks: string, n: number): Promise<string> {
  const lock = path.join(REPO, 'dist/vault/lock.js');
  const script = `import { acquireLock } from ${JSON.stringify(lock)};
    import { mkdirSync, readdirSync } from 'node:fs';
    while (Date.now() < ${at}) {}
    let l = null;
    try { l = acquireLock(${JSON.stringify(vault)}, 'backup'); } catch (e) { console.log(e.constructor.name); }
    mkdirSync(${JSON.stringify(marks)} + '/' + process.pid, { recursive: true });
    if (l) {
      const until = Date.now() + 30000;
      const wait = () => readdirSync(${JSON.stringify(marks)}).length >= ${n} || Date.now() > until
        ? (l.release(), console.log('ran')) : setTimeout(wait, 20);
      wait();
    }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((r) => child.once('close', () => r(out.trim())));
}

describe('taking over a stale lock is atomic', () => {
  it('of runs racing over one stale lock, exactly one gets it and the others are told busy', async () => {
    for (let round = 0; round < 12; round++) {
      const vault = path.join(dir, `v${round}`);
      const dead = spawnSync('true').pid;
      const lock = path.join(vault, '.permafrost.lock');
      rmSync(vault, { recursive: true, force: true });
      spawnSync('mkdir', ['-p', vault]);
      writeFileSync(lock, `${dead}\nbackup\n`);
      const marks = path.join(dir, `marks${round}`);
      const at = Date.now() + 700;
      const outcomes = await Promise.all([1, 2, 3].map(() => contender(vault, at, marks, 3)));
      expect(outcomes.sort(), `round ${round}`).toEqual(['BusyError', 'BusyError', 'ran']);
      expect(readdirSync(vault)).toEqual([]);
    }
  }, 60_000);
});
