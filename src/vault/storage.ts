import type { Readable } from 'node:stream';

/**
 * What a place that holds snapshots must do, so that the same operations (push, list, check,
 * verify, restore, retention) work on a vault folder and on an object-storage bucket alike
 * (restic's `Backend`, pgBackRest's `storage/`). A snapshot is a set of immutable files written
 * once; it counts only once its manifest is there (written last). Everything a storage returns is
 * hostile input: names are checked against the vault's own names, sizes bounded, manifests parsed
 * by the schema (vault/manifest.ts) by whoever reads them.
 */
export interface StoredFile {
  readonly name: string;
  readonly bytes: number;
}

export interface StoredSnapshot {
  readonly id: string;
  readonly files: readonly StoredFile[];
  /** manifest.json is there: the snapshot is whole as far as the listing can tell. */
  readonly complete: boolean;
  /**
   * What else the snapshot holds that is no file permafrost writes there (a folder, a link, a FIFO,
   * Syncthing's temp file of a file still arriving, an odd name): never read or copied, named by
   * check. Absent when there is none; a bucket lists such keys in `foreign` instead.
   */
  readonly others?: readonly OtherEntry[];
  /** Why the snapshot's entries could not be listed (a folder without read permission), one phrase; `files` is then empty. */
  readonly unreadable?: string;
}

/** An entry of a snapshot that is not one of its files: `regular` false for anything but a plain file. */
export interface OtherEntry {
  readonly name: string;
  readonly regular: boolean;
  readonly bytes: number;
}

/** What a listing held that is not permafrost's: never read, never deleted, reported. */
export interface ForeignEntry {
  readonly key: string;
  readonly why: string;
}

export interface StorageListing {
  readonly snapshots: readonly StoredSnapshot[];
  /** Runbook files (RESTORE.md, restore.sh, signer.pub.asc) at the root. */
  readonly rootFiles: readonly StoredFile[];
  readonly foreign: readonly ForeignEntry[];
}

export interface SnapshotReader {
  /** How messages name this storage (a folder path, `offsite target b2 (s3://bucket/prefix/)`). */
  readonly describe: string;
  list(signal?: AbortSignal): Promise<StorageListing>;
  /** A file's bytes as a stream (`id` undefined: a root file). */
  read(id: string | undefined, name: string, signal?: AbortSignal): Promise<Readable>;
  /** A small file (manifest, signature) whole, refused above `maxBytes`. */
  readSmall(id: string | undefined, name: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer>;
}

export interface PutOptions {
  readonly bytes: number;
  /** Hex SHA-256 from the manifest: the storage has the server verify it (S3 x-amz-checksum-sha256). */
  readonly sha256?: string;
  readonly signal?: AbortSignal;
}

/** The outcome of deleting one snapshot: what went, and what the storage refused (an Object Lock still in force). */
export interface RemoveResult {
  readonly removed: readonly string[];
  readonly refused: readonly { name: string; why: string }[];
}

export interface SnapshotWriter extends SnapshotReader {
  /** Writes one file of a snapshot (or a root file when `id` is undefined) from a stream, atomically: it is there whole or not at all. */
  write(id: string | undefined, name: string, body: Readable, opts: PutOptions): Promise<void>;
  /** Deletes a snapshot's files, its manifest first (so it stops counting before anything else goes). */
  remove(id: string, names: readonly string[], signal?: AbortSignal): Promise<RemoveResult>;
}
