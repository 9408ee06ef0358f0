import type pg from 'pg';
import type { DatabaseConfig } from '../config/schema.js';
import { PermafrostError, UserError } from '../errors.js';
import { connect } from '../tools/postgres.js';
import type { MastodonFacts } from '../vault/manifest.js';

/** The Mastodon tables whose exact row counts go into the manifest and are checked by verify. */
const MASTODON_TABLES = ['accounts', 'statuses', 'media_attachments', 'users'] as const;

/** Reads the Mastodon facts for the manifest; null when this is not a Mastodon-shaped database. */
export async function mastodonFacts(client: pg.Client): Promise<MastodonFacts | null> {
  const present = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r','p') AND c.relname = ANY($1)`,
    [[...MASTODON_TABLES, 'schema_migrations']],
  );
  const names = new Set(present.rows.map((r) => r.name));
  if (!MASTODON_TABLES.some((t) => names.has(t))) return null;
  const rowCounts: Record<string, number> = {};
  for (const table of MASTODON_TABLES) {
    if (!names.has(table)) continue;
    const r = await client.query<{ n: string }>(`SELECT count(*) AS n FROM public.${table}`);
    rowCounts[table] = Number(r.rows[0]?.n ?? 0);
  }
  let schemaMigration: string | null = null;
  if (names.has('schema_migrations')) {
    const r = await client.query<{ v: string }>(
      `SELECT version::text AS v FROM public.schema_migrations ORDER BY length(version::text) DESC, version::text DESC LIMIT 1`,
    );
    schemaMigration = r.rows[0]?.v ?? null;
  }
  return { rowCounts, schemaMigration };
}

export interface CaptureSession {
  serverVersion: string;
  /** Exported snapshot that pg_dump dumps, so counts and dump agree exactly. */
  snapshot: string;
  facts: MastodonFacts | null;
  close(): Promise<void>;
}

const stopped = (cause?: unknown): PermafrostError =>
  new PermafrostError('tool', 'Backup was stopped before it finished; no snapshot was written.', { cause });

/** Cancels the running query of backend `pid` from a second connection; best effort. */
async function cancelBackend(db: DatabaseConfig, pid: number): Promise<void> {
  const other = await connect(db).catch(() => null);
  if (!other) return;
  await other.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
  await other.end().catch(() => undefined);
}

/**
 * Opens a read-only repeatable-read transaction, exports its snapshot and reads the facts in it.
 * `signal` cancels a query that waits (e.g. counting rows of a table a migration holds locked).
 */
export async function openCaptureSession(db: DatabaseConfig, signal?: AbortSignal): Promise<CaptureSession> {
  const client = await connect(db);
  let onAbort: (() => void) | undefined;
  try {
    const pid = (await client.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p;
    if (signal && pid !== undefined) {
      onAbort = () => void cancelBackend(db, pid);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    if (signal?.aborted) throw stopped();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snap = await client.query<{ s: string }>('SELECT pg_export_snapshot() AS s');
    const ver = await client.query<{ v: string }>('SHOW server_version');
    const facts = await mastodonFacts(client);
    return {
      serverVersion: ver.rows[0]?.v ?? 'unknown',
      snapshot: snap.rows[0]?.s ?? '',
      facts,
      async close() {
        await client.query('ROLLBACK').catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw signal?.aborted ? stopped(err) : err;
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

/** User tables in a database (outside system schemas); restore refuses a non-empty target. */
export async function userTableCount(client: pg.Client): Promise<number> {
  const r = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p','v','m','S','f')
        AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`,
  );
  return Number(r.rows[0]?.n ?? 0);
}

export function assertDbName(name: string, key: string): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new UserError(`${key}: "${name}" is not a plain database name (letters, digits, _ . -).`);
  }
}
