/** Progress a job reports while it runs (cli/progress.ts draws it); every callback is optional. */
export interface JobEvents {
  /** A phase starts ("database", "commit", "decrypt database", "restore", …). */
  phase?(name: string): void;
  /** Plaintext bytes so far in a phase or part ("database", "redis", "decrypt database", …); bytes of another name start that phase. */
  bytes?(phase: string, n: number): void;
  /** The job's own work is over, before its alerts go out: a progress line can be closed. */
  end?(): void;
}
