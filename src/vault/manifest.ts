import { z } from 'zod';

/**
 * The file each part is stored in, inside the snapshot folder. A manifest can name no other file:
 * its names are joined into paths by verify and restore, so an arbitrary name (`../../etc/x`)
 * would let whoever wrote the manifest make them open, write or delete files anywhere.
 */
export const PART_FILE = {
  database: 'database.pgdump.gpg',
  redis: 'redis.rdb.gpg',
  secrets: 'env.production.gpg',
  /** SQL that creates the roles the database needs, only when missing (src/capture/roles.ts). */
  roles: 'roles.sql.gpg',
  /**
   * Delta mode (database.delta; src/capture/delta.ts). A base holds `schema` (pg_dump -Fc of the
   * pre-data and post-data sections: no table data) and `rows` (SQL for psql: every table's rows
   * as COPY in the order the server stores them, then the sequences); a delta holds only `delta` (SQL for psql: per
   * table the keys of rows deleted or changed since its reference, then the new row versions as
   * COPY, then the sequences). Neither holds a `database` part.
   */
  schema: 'schema.pgdump.gpg',
  rows: 'rows.sql.gpg',
  delta: 'delta.sql.gpg',
} as const;

export type PartName = keyof typeof PART_FILE;
export type PartFileName = (typeof PART_FILE)[PartName];

const partSchema = z.enum(['database', 'redis', 'secrets', 'roles', 'schema', 'rows', 'delta']);
const partFileNameSchema = z.enum([
  PART_FILE.database,
  PART_FILE.redis,
  PART_FILE.secrets,
  PART_FILE.roles,
  PART_FILE.schema,
  PART_FILE.rows,
  PART_FILE.delta,
]);
const count = z.number().int().nonnegative();

const manifestFileSchema = z.object({
  /** File name inside the snapshot folder. */
  name: partFileNameSchema,
  /** Which part of the server this file holds. */
  part: partSchema,
  bytes: count,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits'),
  /** Bytes before encryption (the pg_dump archive, the RDB file, …). */
  plainBytes: count,
  durationMs: z.number().nonnegative(),
  /**
   * The keys the part is encrypted to (PKESK key ids with their primary fingerprints; whether an
   * SKESK for the passphrase is there). Absent in manifests written before recipients existed:
   * those parts are passphrase-only.
   */
  keys: z
    .object({
      recipients: z.array(z.object({ fingerprint: z.string().regex(/^[0-9A-F]{40}$/), keyId: z.string().regex(/^[0-9A-F]{16}$/) })),
      passphrase: z.boolean(),
    })
    .optional(),
});
export type ManifestFile = z.infer<typeof manifestFileSchema>;

const mastodonFactsSchema = z.object({
  /** Exact row counts taken in the same transaction snapshot that pg_dump dumped. */
  rowCounts: z.record(z.string(), count),
  /** Newest `schema_migrations` version, or null when the table is missing or empty. */
  schemaMigration: z.string().nullable(),
});
export type MastodonFacts = z.infer<typeof mastodonFactsSchema>;

/**
 * What a restore needs to create the database as it was: owner, encoding and locale
 * (`CREATE DATABASE … OWNER … TEMPLATE template0 ENCODING … LC_COLLATE … LC_CTYPE …`).
 */
export const databaseFactsSchema = z.object({
  owner: z.string().min(1),
  /** e.g. "UTF8", as pg_encoding_to_char names it. */
  encoding: z.string().regex(/^[A-Za-z0-9_]+$/, 'expected an encoding name such as UTF8'),
  collate: z.string(),
  ctype: z.string(),
  localeProvider: z.enum(['libc', 'icu']),
  iculocale: z.string().nullable(),
});
export type DatabaseFacts = z.infer<typeof databaseFactsSchema>;

const failedPartSchema = z.object({
  part: z.enum(['redis', 'secrets']),
  /** The part's error, in one sentence. */
  error: z.string(),
  /** Whether the config marked the part optional (then its failure did not fail the run). */
  optional: z.boolean(),
});
export type FailedPart = z.infer<typeof failedPartSchema>;

/**
 * A table by its two names, unquoted, exactly as the catalog spells them (any character but NUL:
 * a space, a quote, a dot, a tab, unicode). Never joined into one string: SQL quotes each one
 * (format('%I.%I'), psql's :"s".:"t"), and a comparison keeps the two apart.
 */
export const tableNameSchema = z.object({
  schema: z.string().min(1),
  table: z.string().min(1),
});
export type TableName = z.infer<typeof tableNameSchema>;

const snapshotIdRef = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/, 'expected a snapshot id');

/** The ways a chain's rows are hashed (src/capture/delta-sql.ts rowHashExpr defines them). */
export const ROW_HASH_KINDS = ['md5', 'hashtext', 'hashrecord'] as const;

/** One table of a delta-mode snapshot: the full state the snapshot represents, not what changed. */
export const chainTableSchema = z.object({
  /** Schema and table name, unquoted (SQL quotes them: format('%I.%I')). */
  schema: z.string().min(1),
  table: z.string().min(1),
  /** Exact row count in the snapshot. */
  rows: count,
  /** tableHashSql's value (src/capture/delta-sql.ts) under the chain's rowHash: order-free sum of the rows' 64-bit hashes, mod 2^64, decimal. */
  hash: z.string().regex(/^\d{1,20}$/),
  /** Primary-key columns; null: the table has none and every delta copies it whole. */
  key: z.array(z.string().min(1)).nullable(),
  /** Under chain.rowHash `hashrecord`: this table's rows are hashed by hash_record_extended (else by their text). */
  hashRecord: z.literal(true).optional(),
  /** Rows this snapshot's delta file deletes by key (changed or gone) and copies (changed or new); absent in a base. */
  deleted: count.optional(),
  copied: count.optional(),
});
export type ChainTable = z.infer<typeof chainTableSchema>;

/**
 * Where a delta-mode snapshot sits in its chain. A base (depth 0) restores alone; a delta applies on
 * top of `reference` (depth − 1), back to `base`: restore = base's schema pre-data, base's rows,
 * the deltas in order, base's schema post-data.
 */
export const chainSchema = z
  .object({
    kind: z.enum(['base', 'delta']),
    /** The base snapshot of this chain (the snapshot's own id for a base). */
    base: snapshotIdRef,
    /** The snapshot this delta applies on top of; null for a base. */
    reference: snapshotIdRef.nullable(),
    /** Deltas between the base and this snapshot (0 for a base; at most MAX_CHAIN_DEPTH). */
    depth: z.number().int().min(0).max(24),
    /** SHA-256 of pg_dump's plain pre-data + post-data SQL: a schema change makes a new base. */
    ddl: z.string().regex(/^[0-9a-f]{64}$/),
    /** Why this snapshot is a base (first, fullEvery, schema change, state lost, …); absent for a delta. */
    reason: z.string().optional(),
    /** How rows are hashed in tables[].hash (src/capture/delta-sql.ts RowHashKind); absent: md5 (made before this field). */
    rowHash: z.enum(ROW_HASH_KINDS).optional(),
    tables: z.array(chainTableSchema),
  })
  .superRefine((c, ctx) => {
    if (c.rowHash !== 'hashrecord' && c.tables.some((t) => t.hashRecord))
      ctx.addIssue({ code: 'custom', path: ['tables'], message: 'hashRecord is only for chain.rowHash hashrecord' });
    const base = c.kind === 'base';
    if (base !== (c.reference === null))
      ctx.addIssue({ code: 'custom', path: ['reference'], message: 'a base has no reference; a delta has one' });
    if (base !== (c.depth === 0)) ctx.addIssue({ code: 'custom', path: ['depth'], message: 'a base has depth 0; a delta at least 1' });
  });
export type Chain = z.infer<typeof chainSchema>;

/** The most deltas a restore applies after its base (a deeper one is made a base instead). */
export const MAX_CHAIN_DEPTH = 24;

/** The manifest written as `manifest.json` in each snapshot folder. */
export const manifestSchema = z
  .object({
    formatVersion: z.literal(1),
    id: z.string(),
    startedAt: z.string(),
    finishedAt: z.string(),
    tool: z.object({ name: z.literal('permafrost'), version: z.string() }),
    host: z.string(),
    database: z.object({
      name: z.string(),
      serverVersion: z.string(),
      pgDumpVersion: z.string(),
      compression: z.string(),
      /** The facts below are absent in manifests written before restore created databases itself. */
      ...databaseFactsSchema.partial().shape,
    }),
    mastodon: mastodonFactsSchema.nullable(),
    /**
     * Every ordinary and partitioned table of the database (partitions and inheritance children
     * included; not the system schemas, not an extension's own tables), read in the transaction
     * snapshot the dump was taken in: a restore finds each one in the restored copy's catalog.
     * Absent in manifests written before it existed: then the archive's table of contents is the list.
     */
    tables: z.array(tableNameSchema).optional(),
    files: z.array(manifestFileSchema).superRefine((files, ctx) => {
      const seen = new Set<string>();
      files.forEach((f, i) => {
        if (f.name !== PART_FILE[f.part]) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'name'],
            message: `the ${f.part} part must be stored in ${PART_FILE[f.part]}, not ${f.name}`,
          });
        }
        if (seen.has(f.part)) ctx.addIssue({ code: 'custom', path: [i, 'part'], message: `the ${f.part} part is listed twice` });
        seen.add(f.part);
      });
    }),
    /**
     * Parts that were configured but failed, so the snapshot holds only the database (and whatever
     * else worked). Absent in manifests written before it existed and when every part worked.
     */
    failed: z.array(failedPartSchema).optional(),
    /**
     * Fingerprint of the key that signed this manifest (manifest.json.sig), for rotation and `list`.
     * Only a record: what is trusted is the signature checked against vault.signerKeyFile.
     */
    signedBy: z
      .string()
      .regex(/^[0-9A-F]{40}$/)
      .optional(),
    /**
     * Whether the roles part carries the roles' password hashes: false when the backup's database
     * role could not read pg_authid (only a superuser, or a role granted SELECT on it, can), so
     * the roles a restore creates have no password. Absent in manifests written before it was recorded.
     */
    rolePasswords: z.boolean().optional(),
    /** Delta mode only (database.delta): the snapshot's place in its chain. Absent: a full `database` part. */
    chain: chainSchema.optional(),
  })
  .superRefine((m, ctx) => {
    // Which database parts each kind holds (a full snapshot's `database` part is checked where it is read).
    const parts = new Set(m.files.map((f) => f.part));
    const kind = m.chain?.kind ?? 'full';
    const holds: Record<typeof kind, PartName[]> = { full: ['database'], base: ['schema', 'rows'], delta: ['delta'] };
    if (kind !== 'full') {
      for (const p of holds[kind])
        if (!parts.has(p)) ctx.addIssue({ code: 'custom', path: ['files'], message: `the ${p} part is missing` });
    }
    for (const p of ['database', 'schema', 'rows', 'delta'] as const) {
      if (parts.has(p) && !holds[kind].includes(p))
        ctx.addIssue({ code: 'custom', path: ['files'], message: `a ${kind} snapshot holds no ${p} part` });
    }
    if (m.chain?.kind === 'base' && m.chain.base !== m.id) {
      ctx.addIssue({ code: 'custom', path: ['chain', 'base'], message: 'a base is its own base' });
    }
  });
export type Manifest = z.infer<typeof manifestSchema>;

export const MANIFEST_NAME = 'manifest.json';
/** The detached OpenPGP signature of the manifest (vault.signingKeyFile; see signature.ts). */
export const SIGNATURE_NAME = 'manifest.json.sig';
