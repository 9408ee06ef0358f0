import { PermafrostError } from '../errors.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Writes to stderr as is (no newline): progress lines redrawn in place on a TTY. */
  raw?(text: string): void;
  isTTY: boolean;
}

export const processIo: Io = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  raw: (t) => process.stderr.write(t),
  isTTY: Boolean(process.stderr.isTTY),
};

const REPORT_URL = 'https://github.com/permafrost-backup/permafrost/issues';

/** Maps any error to one sentence (plus detail lines) on stderr and an exit code. */
export function reportError(err: unknown, io: Io): number {
  if (err instanceof PermafrostError) {
    io.err(`permafrost: ${err.message}`);
    for (const line of err.details) io.err(`  ${line}`);
    return err.exitCode;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  io.err(`permafrost: internal error: ${e.message}. This is a bug; please report it with the lines below at ${REPORT_URL}.`);
  io.err(e.stack ?? '');
  return 70;
}
