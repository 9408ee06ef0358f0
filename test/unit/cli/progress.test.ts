import { describe, expect, it } from 'vitest';
import { progress } from '../../../src/cli/progress.js';
import type { Io } from '../../../src/cli/run.js';

function fakeIo(isTTY: boolean) {
  const lines: string[] = [];
  let raw = '';
  const io: Io = { out: (t) => lines.push(`out:${t}`), err: (t) => lines.push(t), raw: (t) => (raw += t), isTTY };
  return { io, lines, raw: () => raw };
}

describe('progress', () => {
  it('not a TTY: a line when a phase starts and one with bytes and rate when it ends', () => {
    let t = 0;
    const f = fakeIo(false);
    const p = progress(f.io, 'backup', { now: () => t });
    p.events.phase('database');
    t = 500;
    p.events.bytes('database', 1024 * 1024);
    t = 2000;
    p.events.bytes('database', 4 * 1024 * 1024);
    p.events.phase('commit');
    t = 2100;
    p.done();
    expect(f.lines).toEqual(['backup: database…', 'backup: database 4.0 MiB in 2.0s (2.0 MiB/s)', 'backup: commit…']);
    expect(f.raw()).toBe('');
  });

  it('a TTY: one line per phase, redrawn in place at most every 100 ms, ended with a summary', () => {
    let t = 0;
    const f = fakeIo(true);
    const p = progress(f.io, 'verify', { now: () => t });
    p.events.phase('decrypt database');
    t = 50;
    p.events.bytes('decrypt database', 512 * 1024); // within 100 ms of the first draw: not drawn
    t = 120;
    p.events.bytes('decrypt database', 1024 * 1024);
    t = 130;
    p.events.bytes('decrypt database', 1100 * 1024); // within 100 ms of the last draw: not drawn
    t = 1000;
    p.events.phase('restore');
    t = 3000;
    p.done();
    expect(f.raw().split('\r\x1b[K').filter(Boolean)).toEqual([
      'verify: decrypt database…  0.0s',
      'verify: decrypt database…  1.0 MiB  8.3 MiB/s',
      'verify: decrypt database 1.1 MiB in 1.0s (1.1 MiB/s)\n',
      'verify: restore…  0.0s',
      'verify: restore done in 2.0s\n',
    ]);
    expect(f.lines).toEqual([]);
  });

  it('--json: nothing at all', () => {
    const f = fakeIo(true);
    const p = progress(f.io, 'restore', { json: true });
    p.events.phase('decrypt');
    p.events.bytes('decrypt', 10);
    p.done();
    expect(f.lines).toEqual([]);
    expect(f.raw()).toBe('');
  });
});

describe('progress rates', () => {
  it('shows small rates as whole bytes per second', () => {
    let t = 0;
    const f = fakeIo(false);
    const p = progress(f.io, 'backup', { now: () => t });
    p.events.phase('secrets');
    t = 3000;
    p.events.bytes('secrets', 1000);
    p.done();
    expect(f.lines).toEqual(['backup: secrets…', 'backup: secrets 1000 B in 3.0s (333 B/s)']);
  });
});
