import { spawn } from 'node:child_process';
import path from 'node:path';
import type { PgCluster } from './postgres.js';
import { waitFor } from './wait.js';

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
  // Listen before anything can make psql exit, so release() never waits for a 'close' already past.
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  child.stdin.write(`BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n`);
  await waitFor(`a lock on ${table}`, () => out.includes('locked') || child.exitCode !== null, 10_000);
  if (!out.includes('locked')) throw new Error(`could not lock ${table}: ${out}`);
  return {
    async release() {
      if (child.exitCode === null && !child.stdin.destroyed) {
        child.stdin.end('COMMIT;\n');
      }
      await exited;
    },
  };
}
