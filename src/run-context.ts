/**
 * What every operation and step of one run shares, created once where a job starts (the CLI's
 * command, the daemon's job) and passed down as one object: the stop signal, the progress events
 * and the log. Secrets are not in it: an operation reads the ones it needs at its start and hands
 * the values to the steps that use them.
 */
import type { JobEvents } from './events.js';

/** Where a run's side remarks go (alert deliveries, what was swept from dead runs); they never fail the run. */
export type RunLog = (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;

export interface RunContext {
  /** Stop requested (SIGINT/SIGTERM, the daemon shutting down): the run ends early and no alert is sent about it. */
  readonly signal: AbortSignal;
  /** Progress the CLI draws (cli/progress.ts); every callback is optional. */
  readonly events: JobEvents;
  readonly log: RunLog;
}

const quiet: RunLog = () => undefined;

/** A run's context; what is not given is a signal that never fires, no progress and a log that drops every line. */
export function runContext(parts: Partial<RunContext> = {}): RunContext {
  return { signal: parts.signal ?? new AbortController().signal, events: parts.events ?? {}, log: parts.log ?? quiet };
}

/** The same run with one more reason to stop (a backup's extra parts, stopped when its database part fails). */
export function alsoStoppedBy(ctx: RunContext, signal: AbortSignal): RunContext {
  return { ...ctx, signal: AbortSignal.any([ctx.signal, signal]) };
}
