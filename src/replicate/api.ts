import { z } from 'zod';

/*
 * The parts of Syncthing's REST replies that permafrost reads. Only the fields used are checked;
 * every object is loose, so the other fields (and those newer Syncthing versions add) pass through
 * untouched, which matters for config objects that are patched back.
 */

/** GET /rest/system/status */
export const systemStatusSchema = z.looseObject({ myID: z.string() });

/** GET /rest/system/ping */
export const pingSchema = z.looseObject({ ping: z.string() });

/** One entry of GET /rest/config/devices */
export const stDeviceSchema = z.looseObject({
  deviceID: z.string(),
  name: z.string(),
  addresses: z.array(z.string()),
});
export type StDevice = z.infer<typeof stDeviceSchema>;

const stVersioningSchema = z.looseObject({ type: z.string(), params: z.record(z.string(), z.string()) });
export type StVersioning = z.infer<typeof stVersioningSchema>;

/** One entry of GET /rest/config/folders */
export const stFolderSchema = z.looseObject({
  id: z.string(),
  label: z.string(),
  path: z.string(),
  type: z.string(),
  devices: z.array(z.looseObject({ deviceID: z.string() })),
  rescanIntervalS: z.number(),
  fsWatcherEnabled: z.boolean(),
  fsWatcherDelayS: z.number(),
  paused: z.boolean(),
  versioning: stVersioningSchema,
});
export type StFolder = z.infer<typeof stFolderSchema>;

/** GET /rest/db/ignores?folder=… */
export const ignoresSchema = z.looseObject({ ignore: z.array(z.string()).nullable() });

/** GET /rest/system/connections */
export const connectionsSchema = z.looseObject({
  connections: z.record(
    z.string(),
    z.looseObject({ connected: z.boolean(), address: z.string().optional(), startedAt: z.string().optional() }),
  ),
});

/** GET /rest/stats/device */
export const deviceStatsSchema = z.record(z.string(), z.looseObject({ lastSeen: z.string().optional() }));

/** GET /rest/db/status?folder=… */
export const folderStatusSchema = z.looseObject({
  state: z.string(),
  needBytes: z.number(),
  receiveOnlyChangedFiles: z.number().optional(),
  /** Files that failed to scan or pull, and the folder's own error (empty when none). */
  errors: z.number().optional(),
  pullErrors: z.number().optional(),
  error: z.string().optional(),
});

/** GET /rest/db/completion?folder=…&device=… */
export const completionSchema = z.looseObject({
  completion: z.number(),
  needBytes: z.number(),
  needItems: z.number(),
  needDeletes: z.number().optional(),
  /** Syncthing ≥ 1.23: valid, paused, notSharing or unknown. */
  remoteState: z.string().optional(),
});

/** GET /rest/db/file?folder=…&file=… */
export const fileInfoSchema = z.looseObject({
  availability: z.array(z.looseObject({ id: z.string() })).nullish(),
});

/** GET /rest/events?since=0&timeout=0 (the default event mask, buffered by Syncthing) — the index updates status reads. */
export const eventsSchema = z.array(
  z.looseObject({
    type: z.string(),
    time: z.string(),
    data: z
      .looseObject({ folder: z.string().optional(), device: z.string().optional(), filenames: z.array(z.string()).nullish() })
      .nullish()
      .catch(null),
  }),
);

/**
 * GET /rest/cluster/pending/folders (Syncthing ≥ 1.13): folders other devices share with this one
 * that it has not added, by folder ID, then by the offering device's ID.
 */
export const pendingFoldersSchema = z.record(
  z.string(),
  z.looseObject({ offeredBy: z.record(z.string(), z.looseObject({ label: z.string().optional() })).optional() }),
);
