import { z } from 'zod';
import { absPath } from './schema-common.js';
import { normalizeDeviceId } from '../replicate/device-id.js';

const DURATION_RE = /^(\d+)\s*(s|m|h|d)$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** `90m`, `2h`, `7d` or a number of seconds → seconds. */
export const durationSeconds = z
  .union([
    z.number().int().positive(),
    z.string().regex(DURATION_RE, 'expected a duration like "90m", "2h" or "7d", or a number of seconds'),
  ])
  .transform((v) => {
    if (typeof v === 'number') return v;
    const m = DURATION_RE.exec(v)!;
    return Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
  });

/** Mastodon's media folder (public/system), replicated live; `ignore` are Syncthing ignore patterns. */
export const mediaSchema = z.strictObject({
  dir: absPath,
  ignore: z.array(z.string().min(1)).default(['cache/**']),
});

export const syncthingDeviceSchema = z.strictObject({
  name: z.string().min(1, 'expected a device name'),
  id: z.string().refine((s) => normalizeDeviceId(s) !== null, {
    message:
      'not a valid Syncthing device ID (8 groups of 7 letters/digits with dashes); copy it again from `permafrost device-id` on that device',
  }),
  /** e.g. tcp://192.0.2.10:22000; absent means "dynamic". */
  addresses: z.array(z.string().min(1)).min(1).optional(),
});

/** syncthing.staleAfter's default (2 h); also the threshold of a config without a syncthing section. */
export const DEFAULT_STALE_AFTER_S = 7200;

/** Versioning on a receiver's folders (Syncthing's own file versioning). */
export const versioningSchema = z.strictObject({
  type: z.enum(['simple', 'staggered', 'trashcan']).default('simple'),
  /** simple: versions kept per file. */
  keep: z.number().int().min(1).default(6),
  /** simple/trashcan: days after which old versions are removed (0 = never). */
  cleanoutDays: z.number().int().min(0).default(0),
  /** staggered: the longest a version is kept. */
  maxAge: durationSeconds.default(365 * 86400),
});

export const syncthingSchema = z
  .strictObject({
    /** http://127.0.0.1:8384, or the absolute path of the GUI's unix socket. */
    url: z
      .string()
      .regex(/^(https?:\/\/|\/)/, 'expected http://HOST:PORT or the absolute path of a unix socket')
      .default('http://127.0.0.1:8384'),
    /** File (mode 0600) holding the API key. */
    apiKeyFile: absPath.optional(),
    /** Syncthing's home folder: the API key is read from its config.xml. */
    home: absPath.optional(),
    role: z.enum(['source', 'receiver']).default('source'),
    devices: z.array(syncthingDeviceSchema).default([]),
    versioning: versioningSchema.prefault({}),
    /** A device whose newest snapshot is older than this makes `status` fail. */
    staleAfter: durationSeconds.default(DEFAULT_STALE_AFTER_S),
  })
  .superRefine((s, ctx) => {
    if ((s.apiKeyFile === undefined) === (s.home === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['apiKeyFile'],
        message: "set exactly one of syncthing.apiKeyFile (a file holding the API key) or syncthing.home (Syncthing's folder)",
      });
    }
  });

export type MediaConfig = z.output<typeof mediaSchema>;
export type SyncthingConfig = z.output<typeof syncthingSchema>;
export type VersioningConfig = z.output<typeof versioningSchema>;
