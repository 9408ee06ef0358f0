import { stat } from 'node:fs/promises';

/**
 * Reports how far a file written by another process (gpg decrypting into it) has grown, every
 * `intervalMs`, until the returned stop function is called. Progress only: never throws.
 */
export function watchGrowth(file: string, onBytes: (n: number) => void, intervalMs = 200): () => void {
  let last = -1;
  const timer = setInterval(() => {
    stat(file).then(
      (s) => {
        if (s.size !== last) onBytes((last = s.size));
      },
      () => undefined,
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
