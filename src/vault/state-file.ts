import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { describeIssues } from '../schema-issues.js';
import { writeFileAtomic } from './fs-durable.js';

/**
 * Small JSON state files kept in the vault folder beside the snapshots (verify results, alert
 * state, replication lag). They start with ".permafrost-" so replication can ignore them: they
 * describe this host, and snapshot folders stay exactly what the backup wrote.
 *
 * A state file is a cache of past outcomes, never the only copy of anything that matters: one that
 * is not JSON or not of the expected shape is reported as a process warning naming the file and
 * read as `fallback` (empty); the next write replaces it. A file that exists but cannot be read
 * (permissions) is an error, since writing over it would fail too.
 */
export async function readJsonState<T>(file: string, schema: z.ZodType<T>, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    warnIgnored(file, 'it is not valid JSON');
    return fallback;
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  warnIgnored(file, `it is not of the expected shape (${describeIssues(parsed.error.issues).slice(0, 3).join('; ')})`);
  return fallback;
}

function warnIgnored(file: string, why: string): void {
  // Core code never prints: a process warning reaches stderr (CLI) or the journal (daemon).
  process.emitWarning(
    `permafrost state file ${file} is ignored because ${why}; it only caches past outcomes and is rewritten by the next run.`,
  );
}

/** Replaces a state file atomically (temp name, fsync, rename). */
export async function writeJsonState(file: string, data: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`, 0o640);
}
