/**
 * One error model for the whole tool. The CLI maps each kind to an exit code;
 * the core throws these and never prints or exits.
 */
export type ErrorKind =
  /** Bad config, flags or local setup: the user fixes it. */
  | 'user'
  /** A program (pg_dump, pg_restore, gpg, redis-cli, …) failed: ToolError. */
  | 'tool'
  /** A server we talk to (PostgreSQL, Redis) refused or failed a statement, or is in a state that stops the run. */
  | 'server'
  /** A server could not be reached at all. */
  | 'connection'
  /** A disk is full or read-only (the vault, the temp folder, a restore destination). */
  | 'space'
  /** A local file or folder could not be read, written or found as expected (not a space problem). */
  | 'io'
  /** The run was asked to stop (SIGINT/SIGTERM, the daemon shutting down) before it finished. */
  | 'stopped'
  /** A required part of a snapshot failed; the snapshot is kept with what was captured. */
  | 'part'
  /** doctor (or another check) found problems it listed. */
  | 'unhealthy'
  /** An HTTP service (Syncthing's REST API, a webhook) failed. */
  | 'remote'
  /** Tampered, truncated or mismatched data. */
  | 'integrity'
  /** Another run holds the lock. */
  | 'busy'
  /** A bug. */
  | 'internal';

/** The documented exit codes: every failure that is not the user's, the data's or a lock's is 1. */
const EXIT_CODES: Record<ErrorKind, number> = {
  user: 2,
  tool: 1,
  server: 1,
  connection: 1,
  space: 1,
  io: 1,
  stopped: 1,
  part: 1,
  unhealthy: 1,
  remote: 1,
  integrity: 3,
  busy: 4,
  internal: 70,
};

export class PermafrostError extends Error {
  readonly kind: ErrorKind;
  /** Extra lines shown under the one-sentence message (never secrets). */
  readonly details: string[];

  constructor(kind: ErrorKind, message: string, options: { cause?: unknown; details?: string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PermafrostError';
    this.kind = kind;
    this.details = options.details ?? [];
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }
}

/** Bad config, flags or local setup: the user fixes it; exit 2. */
export class UserError extends PermafrostError {
  constructor(message: string, options: { cause?: unknown; details?: string[] } = {}) {
    super('user', message, options);
  }
}

/** An external program (pg_dump, pg_restore, redis-cli, …) failed. */
export class ToolError extends PermafrostError {
  readonly argv: readonly string[];
  readonly exitStatus: number | null;
  /** The signal that ended it, when one did. */
  readonly signal: NodeJS.Signals | null;
  readonly stderrTail: string;

  constructor(
    message: string,
    info: { argv: readonly string[]; exitStatus: number | null; signal?: NodeJS.Signals | null; stderr: string; cause?: unknown },
  ) {
    const tail = lastLines(info.stderr, 5);
    const ended = info.signal ? `killed by ${info.signal}` : `exit ${info.exitStatus ?? 'signal'}`;
    super('tool', message, {
      cause: info.cause,
      details: [`command: ${info.argv.join(' ')} (${ended})`, ...tail.split('\n').filter(Boolean)],
    });
    this.argv = info.argv;
    this.exitStatus = info.exitStatus;
    this.signal = info.signal ?? null;
    this.stderrTail = tail;
  }
}

/** A remote API (Syncthing, webhook) answered badly or not at all. */
export class RemoteError extends PermafrostError {
  constructor(message: string, options: { cause?: unknown; details?: string[] } = {}) {
    super('remote', message, options);
  }
}

/** Tampered, truncated or mismatching snapshot data. */
export class IntegrityError extends PermafrostError {
  constructor(message: string, options: { cause?: unknown; details?: string[] } = {}) {
    super('integrity', message, options);
  }
}

/** Another run holds the lock. */
export class BusyError extends PermafrostError {
  constructor(message: string) {
    super('busy', message);
  }
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
