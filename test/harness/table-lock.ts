import { spawn } from 'node:child_process';
import path from 'node:path';
import type { PgCluster } from './postgres.js';

/**
 * Holds ACCESS EXCLUSIVE on a table in an open transaction, so that a pg_dump started meanwhile
 * waits inside its run: a real way to catch a backup "mid-dump" deterministically.
 */
export async function holdTableLock(pg: PgCluster, db: string, table: string): Promise<{ release(): Promise<void> }> {
  const child = spawn(
    path.join(pg.binDir, 'psql'),
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', pg.socketDir, '-p', String(pg.port), '-U', pg.user, '-d', db],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.write(`BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n`);
  const deadline = Date.now() + 10_000;
  while (!out.includes('locked')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`could not lock ${table}: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  return {
    async release() {
      if (child.exitCode === null && !child.stdin.destroyed) {
        child.stdin.end('COMMIT;\n');
      }
      await exited;
    },
  };
}

/** Polls until `cond` holds, failing after `ms`. */
export async function waitFor(cond: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
