/**
 * The vault's run lock: one file naming its holder by PID, boot id and process start time, so a
 * PID reused after a reboot (or by an unrelated program) is not mistaken for a live permafrost run.
 * A lock of an older permafrost (its PID alone) is judged by when it was written (identityAlive).
 *
 * Creating the lock is atomic (the full body is written to a private file, then hard-linked to the
 * lock's name). Taking over a stale lock is atomic too: a run first claims that stale generation by
 * hard-linking its body to `<lock>.takeover-<hash of the stale body>`, which only one run can do;
 * the winner re-checks the lock still holds that body and renames its own over it. A claim whose
 * claimant died before finishing is itself taken over the same way.
 */
import { createHash } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { BusyError } from '../errors.js';
import { openVault, VAULT_NAMES } from './layout.js';

export const LOCK_NAME = VAULT_NAMES.lock;

/** A process, as the kernel tells it apart from any other that had or will have its PID. */
export interface ProcessIdentity {
  pid: number;
  /** /proc/sys/kernel/random/boot_id; null when unreadable (not Linux). */
  boot: string | null;
  /** Field 22 of /proc/PID/stat: start time in clock ticks since boot; null when unreadable. */
  start: string | null;
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start with field 3, the state.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** When this boot started, in ms since the epoch (btime of /proc/stat); null when unreadable. */
function bootTime(): number | null {
  try {
    const line = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return line ? Number(line[1]) * 1000 : null;
  } catch {
    return null;
  }
}

/** Clock ticks per second of /proc/PID/stat's start time: USER_HZ, 100 on every Linux permafrost runs on. */
const CLOCK_TICKS = 100;
/** btime is whole seconds and the clock may have been stepped since boot: times closer than this are not told apart. */
const CLOCK_SLACK_MS = 5000;

/** When process `pid` started, in ms since the epoch; null when unknown. */
function startedAt(pid: number): number | null {
  const ticks = startTime(pid);
  const boot = bootTime();
  return ticks === null || boot === null ? null : boot + (Number(ticks) * 1000) / CLOCK_TICKS;
}

/** This process's identity. */
export function selfIdentity(): ProcessIdentity {
  return { pid: process.pid, boot: bootId(), start: startTime(process.pid) };
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process `id` names still runs: same boot, same PID, same start time. An identity
 * without boot id or start time (a lock written by an older permafrost) has only its PID and
 * `writtenAt` (ms since the epoch, when the lock was written): a lock written before this boot, or
 * a PID whose process started after the lock was written (a reused PID: PID 1, a later program),
 * names no live holder.
 */
export function identityAlive(id: ProcessIdentity, writtenAt: number | null = null): boolean {
  if (!pidExists(id.pid)) return false;
  if (id.boot !== null && id.boot !== bootId()) return false;
  if (id.start !== null && id.start !== startTime(id.pid)) return false;
  if ((id.boot === null || id.start === null) && writtenAt !== null) {
    const boot = bootTime();
    if (boot !== null && writtenAt < boot - CLOCK_SLACK_MS) return false;
    const started = startedAt(id.pid);
    if (started !== null && started > writtenAt + CLOCK_SLACK_MS) return false;
  }
  return true;
}

/** When the lock body in `file` was written: the earlier of the time it states and the file's mtime; null when neither is known. */
function writtenAt(file: string, body: string): number | null {
  const stated = Date.parse(body.split('\n')[2] ?? '');
  let mtime = Number.NaN;
  try {
    mtime = statSync(file).mtimeMs;
  } catch {
    // Gone meanwhile: the stated time alone.
  }
  const known = [stated, mtime].filter((t) => Number.isFinite(t));
  return known.length === 0 ? null : Math.min(...known);
}

function lockBody(id: ProcessIdentity, what: string): string {
  return `${id.pid}\n${what}\n${new Date().toISOString()}\nboot ${id.boot ?? '-'}\nstart ${id.start ?? '-'}\n`;
}

/** The holder named by a lock body; null when the body names none (empty, garbled). */
export function parseLockBody(body: string): ProcessIdentity | null {
  const lines = body.split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const field = (key: string): string | null => {
    const v = lines.find((l) => l.startsWith(`${key} `))?.slice(key.length + 1);
    return v === undefined || v === '-' ? null : v;
  };
  return { pid, boot: field('boot'), start: field('start') };
}

function readBody(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function linked(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

const claimOf = (file: string, body: string): string => `${file}.takeover-${createHash('sha256').update(body).digest('hex').slice(0, 16)}`;

export interface RunLock {
  release(): void;
  /** The PID the stale lock that was taken over named (0: it named none), or null when there was none. */
  tookOverFrom: number | null;
}

/**
 * Takes the vault's run lock (see the file comment). A live holder, or another run taking over
 * the same stale lock at the same moment, makes this throw BusyError at once.
 */
export function acquireLock(vaultDir: string, what: string): RunLock {
  mkdirSync(vaultDir, { recursive: true, mode: 0o750 });
  const file = openVault(vaultDir).lockFile;
  const me = selfIdentity();
  const body = lockBody(me, what);
  const mine = `${file}.${process.pid}`;
  try {
    writeFileSync(mine, body, { mode: 0o644 });
  } catch (err) {
    // A full disk takes the name but not the body: no half-written lock file may stay behind.
    rmSync(mine, { force: true });
    throw err;
  }
  // The claims this run passed (of dead claimants) and its own: removed only once it has won, as
  // until then another run may still be judging that generation.
  const claims: string[] = [];
  const busy = (message: string): BusyError => new BusyError(message);
  let tookOverFrom: number | null = null;
  try {
    while (!linked(mine, file)) {
      const stale = readBody(file);
      if (stale === null) continue; // released meanwhile: try to create it again
      const holder = parseLockBody(stale);
      if (holder && identityAlive(holder, writtenAt(file, stale))) {
        throw busy(`Another permafrost run (pid ${holder.pid}) holds the lock on ${vaultDir}; wait for it to finish, or stop it.`);
      }
      let claim = claimOf(file, stale);
      while (!linked(mine, claim)) {
        const claimed = readBody(claim) ?? '';
        const claimant = parseLockBody(claimed);
        if (claimant && identityAlive(claimant)) {
          throw busy(`Another permafrost run (pid ${claimant.pid}) is taking over the stale lock on ${vaultDir}; wait for it to finish.`);
        }
        claims.push(claim);
        claim = claimOf(file, claimed);
      }
      claims.push(claim);
      if (readBody(file) !== stale) {
        // Taken over by another run first: this generation is gone, so the own claim can go.
        rmSync(claim, { force: true });
        throw busy(`Another permafrost run just took the lock on ${vaultDir}; wait for it to finish.`);
      }
      writeFileSync(`${mine}.new`, body, { mode: 0o644 });
      renameSync(`${mine}.new`, file);
      for (const c of claims) rmSync(c, { force: true });
      tookOverFrom = holder?.pid ?? 0;
      break;
    }
  } finally {
    rmSync(mine, { force: true });
    rmSync(`${mine}.new`, { force: true });
  }
  return {
    tookOverFrom,
    release() {
      if (readBody(file) === body) rmSync(file, { force: true });
    },
  };
}
