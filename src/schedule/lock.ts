import { mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import path from 'node:path';
import { BusyError } from '../errors.js';

export const LOCK_NAME = '.permafrost.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function holderOf(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n', 1)[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export interface RunLock {
  release(): void;
  /** Whether a stale lock from a dead process was taken over. */
  tookOver: boolean;
}

/**
 * Takes the vault's run lock: a file holding the owner's PID. A lock whose owner is dead is
 * taken over; a live owner makes this throw BusyError at once.
 */
export function acquireLock(vaultDir: string, what: string): RunLock {
  mkdirSync(vaultDir, { recursive: true, mode: 0o750 });
  const file = path.join(vaultDir, LOCK_NAME);
  const body = `${process.pid}\n${what}\n${new Date().toISOString()}\n`;
  let tookOver = false;
  try {
    const fd = openSync(file, 'wx', 0o644);
    try {
      writeFileSync(fd, body);
    } catch (err) {
      // A full disk takes the name but not the PID: an empty lock must not be left behind.
      rmSync(file, { force: true });
      throw err;
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const holder = holderOf(file);
    if (holder !== null && holder !== process.pid && alive(holder)) {
      throw new BusyError(
        `Another permafrost run (pid ${holder}) holds the lock on ${vaultDir}; wait for it to finish, or stop it.`,
      );
    }
    // The holder is dead: replace its lock atomically, then check that we won any race.
    const tmp = `${file}.${process.pid}`;
    try {
      writeFileSync(tmp, body, { mode: 0o644 });
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    renameSync(tmp, file);
    if (holderOf(file) !== process.pid) {
      throw new BusyError(`Another permafrost run just took the lock on ${vaultDir}; wait for it to finish.`);
    }
    tookOver = true;
  }
  return {
    tookOver,
    release() {
      if (holderOf(file) === process.pid) rmSync(file, { force: true });
    },
  };
}
