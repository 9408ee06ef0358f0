/** The manifest written as `manifest.json` in each snapshot folder. */
export interface ManifestFile {
  /** File name inside the snapshot folder. */
  name: string;
  /** Which part of the server this file holds. */
  part: 'database' | 'redis' | 'secrets';
  bytes: number;
  sha256: string;
  /** Bytes before encryption (the pg_dump archive, the RDB file, …). */
  plainBytes: number;
  durationMs: number;
}

export interface MastodonFacts {
  /** Exact row counts taken in the same transaction snapshot that pg_dump dumped. */
  rowCounts: Record<string, number>;
  /** Newest `schema_migrations` version, or null when the table is missing or empty. */
  schemaMigration: string | null;
}

export interface Manifest {
  formatVersion: 1;
  id: string;
  startedAt: string;
  finishedAt: string;
  tool: { name: 'permafrost'; version: string };
  host: string;
  database: {
    name: string;
    serverVersion: string;
    pgDumpVersion: string;
    compression: string;
  };
  mastodon: MastodonFacts | null;
  files: ManifestFile[];
}

export const MANIFEST_NAME = 'manifest.json';
