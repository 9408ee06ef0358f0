import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BusyError } from '../../../src/errors.js';
import { acquireLock, identityAlive, LOCK_NAME, parseLockBody, selfIdentity } from '../../../src/vault/lock.js';

/** A PID that named a process which has ended (a child that exited and was reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

let vault: string;
beforeEach(() => {
  vault = mkdtempSync(path.join(tmpdir(), 'pf-lock-'));
});
afterEach(() => {
  rmSync(vault, { recursive: true, force: true });
});

describe('what a sweep may remove', () => {
  it('a holder is alive only when PID, boot id and start time all match', () => {
    const me = selfIdentity();
    expect(identityAlive(me)).toBe(true);
    expect(identityAlive({ ...me, boot: 'another boot' })).toBe(false);
    expect(identityAlive({ ...me, start: `${Number(me.start) + 1}` })).toBe(false);
    // A lock from an older permafrost names its PID alone.
    expect(parseLockBody(`${process.pid}\nbackup\n`)).toEqual({ pid: process.pid, boot: null, start: null });
    expect(parseLockBody('')).toBeNull();
  });
});

describe('parseLockBody: a garbled body names no holder', () => {
  it('refuses a PID that is not a positive integer', () => {
    expect(parseLockBody('0\nbackup\n')).toBeNull();
    expect(parseLockBody('-5\nbackup\n')).toBeNull();
    expect(parseLockBody('garbage\n')).toBeNull();
    expect(parseLockBody('12\nverify\n2026-12-01T00:00:00Z\nboot b-7\nstart -\n')).toEqual({ pid: 12, boot: 'b-7', start: null });
  });
});

describe('acquireLock', () => {
  it('writes a body naming this process, and release removes it', () => {
    const lock = acquireLock(vault, 'backup');
    const file = path.join(vault, LOCK_NAME);
    const body = readFileSync(file, 'utf8');
    expect(parseLockBody(body)).toEqual(selfIdentity());
    expect(body.split('\n')[1]).toBe('backup');
    expect(lock.tookOverFrom).toBeNull();
    lock.release();
    expect(existsSync(file)).toBe(false);
  });

  it('refuses with BusyError (exit 4) while a live run holds it, and leaves that lock alone', () => {
    const held = acquireLock(vault, 'backup');
    const before = readFileSync(path.join(vault, LOCK_NAME), 'utf8');
    let err: unknown;
    try {
      acquireLock(vault, 'prune');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BusyError);
    expect((err as BusyError).exitCode).toBe(4);
    expect((err as BusyError).message).toContain(`(pid ${process.pid}) holds the lock on ${vault}`);
    expect(readFileSync(path.join(vault, LOCK_NAME), 'utf8')).toBe(before);
    held.release();
  });

  it("takes over a dead run's lock and says whose it was, leaving no claim files", () => {
    const dead = deadPid();
    writeFileSync(path.join(vault, LOCK_NAME), `${dead}\nbackup\n${new Date().toISOString()}\nboot -\nstart 1\n`);
    const lock = acquireLock(vault, 'verify');
    expect(lock.tookOverFrom).toBe(dead);
    expect(parseLockBody(readFileSync(path.join(vault, LOCK_NAME), 'utf8'))?.pid).toBe(process.pid);
    expect(readdirSync(vault)).toEqual([LOCK_NAME]);
    lock.release();
    expect(readdirSync(vault)).toEqual([]);
  });

  it('takes over a garbled lock (tookOverFrom 0) and a lock of this PID from another boot', () => {
    writeFileSync(path.join(vault, LOCK_NAME), 'not a lock\n');
    const a = acquireLock(vault, 'check');
    expect(a.tookOverFrom).toBe(0);
    a.release();
    const me = selfIdentity();
    writeFileSync(path.join(vault, LOCK_NAME), `${me.pid}\nbackup\n${new Date().toISOString()}\nboot old-boot\nstart ${me.start}\n`);
    const b = acquireLock(vault, 'check');
    expect(b.tookOverFrom).toBe(me.pid);
    b.release();
  });

  it('release leaves a lock that another run has taken over since', () => {
    const lock = acquireLock(vault, 'backup');
    const other = `${deadPid()}\nrestore\n`;
    writeFileSync(path.join(vault, LOCK_NAME), other);
    lock.release();
    expect(readFileSync(path.join(vault, LOCK_NAME), 'utf8')).toBe(other);
  });
});
