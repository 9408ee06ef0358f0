import type { Io } from './run.js';
import { formatBytes } from '../format.js';
import type { JobEvents } from '../events.js';

export interface Progress {
  /** Handed to the job; `end` closes the line as `done` does. */
  events: Required<JobEvents>;
  /** Ends the current line; call on every path (also when the job throws). */
  done(): void;
}

const REDRAW_MS = 100;
const CLEAR = '\r\x1b[K';

function rate(bytes: number, ms: number): string {
  return ms > 0 ? `${formatBytes(Math.round((bytes * 1000) / ms))}/s` : '';
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/**
 * Progress for a command: on a TTY one line per phase, redrawn with bytes and rate; otherwise a
 * plain line when a phase starts and one when it ends; with --json nothing at all.
 */
export function progress(io: Io, command: string, opts: { json?: boolean; now?: () => number } = {}): Progress {
  const now = opts.now ?? Date.now;
  const tty = io.isTTY && io.raw !== undefined && !opts.json;
  let current: { name: string; started: number; bytes: number | null; drawn: number } | null = null;

  const summary = (c: NonNullable<typeof current>): string => {
    const ms = now() - c.started;
    return c.bytes === null
      ? `${command}: ${c.name} done in ${secs(ms)}`
      : `${command}: ${c.name} ${formatBytes(c.bytes)} in ${secs(ms)} (${rate(c.bytes, ms)})`;
  };
  const finish = (): void => {
    if (!current) return;
    if (tty) io.raw!(`${CLEAR}${summary(current)}\n`);
    else if (current.bytes !== null) io.err(summary(current));
    current = null;
  };
  const draw = (): void => {
    if (!current || !tty) return;
    const ms = now() - current.started;
    const detail = current.bytes === null ? secs(ms) : `${formatBytes(current.bytes)}  ${rate(current.bytes, ms)}`;
    io.raw!(`${CLEAR}${command}: ${current.name}…  ${detail}`);
    current.drawn = now();
  };

  if (opts.json) return { events: { phase: () => undefined, bytes: () => undefined, end: () => undefined }, done: () => undefined };
  const phase = (name: string): void => {
    finish();
    current = { name, started: now(), bytes: null, drawn: 0 };
    if (tty) draw();
    else io.err(`${command}: ${name}…`);
  };
  const bytes = (part: string, n: number): void => {
    // Bytes of a part that is not the current phase start a phase of their own.
    if (!current || current.name !== part) phase(part);
    current!.bytes = n;
    if (now() - current!.drawn >= REDRAW_MS) draw();
  };
  return { events: { phase, bytes, end: finish }, done: finish };
}
