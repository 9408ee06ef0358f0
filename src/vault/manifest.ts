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
} as const;

export type PartName = keyof typeof PART_FILE;
export type PartFileName = (typeof PART_FILE)[PartName];

const partSchema = z.enum(['database', 'redis', 'secrets', 'roles']);
const partFileNameSchema = z.enum([PART_FILE.database, PART_FILE.redis, PART_FILE.secrets, PART_FILE.roles]);
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

/** The manifest written as `manifest.json` in each snapshot folder. */
export const manifestSchema = z.object({
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
});
export type Manifest = z.infer<typeof manifestSchema>;

export const MANIFEST_NAME = 'manifest.json';
/** The detached OpenPGP signature of the manifest (vault.signingKeyFile; see signature.ts). */
export const SIGNATURE_NAME = 'manifest.json.sig';
