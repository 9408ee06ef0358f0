import { PermafrostError } from '../errors.js';
import type { JobEvents } from '../events.js';
import { runContext, type RunContext } from '../run-context.js';
import { cliNotifyLog } from './notify-log.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Writes to stderr as is (no newline): progress lines redrawn in place on a TTY. */
  raw?(text: string): void;
  isTTY: boolean;
  /** Whether stdout is a terminal (tables aligned for the eye); absent: it is not. */
  outIsTTY?: boolean;
  /**
   * For a command that runs until stopped (the daemon): once stdout's reader is gone, `out` lines
   * go to stderr instead of being dropped.
   */
  outToErrWhenClosed?(): void;
}

/** Standard streams whose reader went away (EPIPE): nothing more is written to them. */
const closed = { stdout: false, stderr: false };
let outFallsBackToErr = false;

function write(name: keyof typeof closed, text: string): void {
  if (!closed[name]) process[name].write(text);
}

export const processIo: Io = {
  out: (t) => {
    if (!closed.stdout) write('stdout', `${t}\n`);
    else if (outFallsBackToErr) write('stderr', `${t}\n`);
  },
  err: (t) => write('stderr', `${t}\n`),
  raw: (t) => write('stderr', t),
  isTTY: Boolean(process.stderr.isTTY),
  outIsTTY: Boolean(process.stdout.isTTY),
  outToErrWhenClosed: () => {
    outFallsBackToErr = true;
  },
};

/**
 * `permafrost list | head`, `permafrost backup 2>&1 | head -1`: a reader that goes away early is
 * not an error and must not end a run half-way (leaving a partial snapshot and the lock). The
 * stream is marked closed and the run goes on without writing to it; its exit code is unchanged.
 */
export function tolerateClosedStdStreams(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    process[name].on('error', (err: NodeJS.ErrnoException) => {
      // Writes queued before the first EPIPE was reported fail with ERR_STREAM_DESTROYED.
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
      closed[name] = true;
    });
  }
}

/**
 * Runs a job with its one run context: a signal that fires on SIGINT/SIGTERM (so the job stops
 * cleanly), the progress shown for it, and alert delivery problems as warning lines on stderr.
 */
export async function withRunContext<T>(io: Io, events: JobEvents, fn: (ctx: RunContext) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await fn(runContext({ signal: ac.signal, events, log: cliNotifyLog(io) }));
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Maps any error to one sentence (plus detail lines) on stderr and an exit code. */
export function reportError(err: unknown, io: Io): number {
  if (err instanceof PermafrostError) {
    io.err(`permafrost: ${err.message}`);
    for (const line of err.details) io.err(`  ${line}`);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  io.err(`permafrost: internal error: ${e.message}. This is a bug; please report it to the permafrost maintainers with the lines below.`);
  io.err(e.stack ?? '');
  return 70;
}
