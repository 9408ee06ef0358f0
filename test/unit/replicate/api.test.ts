import { describe, expect, it } from 'vitest';
import {
  completionSchema,
  connectionsSchema,
  eventsSchema,
  fileInfoSchema,
  folderStatusSchema,
  stFolderSchema,
  systemStatusSchema,
} from '../../../src/replicate/api.js';

const folder = {
  id: 'permafrost',
  label: 'permafrost vault',
  path: '/var/lib/permafrost',
  type: 'sendonly',
  devices: [{ deviceID: 'AAA', introducedBy: '' }],
  rescanIntervalS: 3600,
  fsWatcherEnabled: true,
  fsWatcherDelayS: 10,
  paused: false,
  versioning: { type: 'simple', params: { keep: '5' }, cleanupIntervalS: 3600 },
  // A field a newer Syncthing adds: it must survive a read and a patch back.
  blockPullOrder: 'standard',
};

describe('Syncthing REST replies', () => {
  it('keeps the fields permafrost does not read (a folder patched back loses nothing)', () => {
    const parsed = stFolderSchema.parse(folder);
    expect(parsed).toEqual(folder);
    expect(parsed.devices[0]).toEqual({ deviceID: 'AAA', introducedBy: '' });
    expect(parsed.versioning.cleanupIntervalS).toBe(3600);
  });

  it('refuses a reply missing or mistyping a field that is read', () => {
    const noPaused: Record<string, unknown> = { ...folder };
    delete noPaused.paused;
    expect(stFolderSchema.safeParse(noPaused).success).toBe(false);
    expect(stFolderSchema.safeParse({ ...folder, versioning: { type: 'simple', params: { keep: 5 } } }).success).toBe(false);
    expect(systemStatusSchema.safeParse({ myID: 42 }).success).toBe(false);
    expect(systemStatusSchema.safeParse('<html>login</html>').success).toBe(false);
    expect(completionSchema.safeParse({ completion: '100', needBytes: 0, needItems: 0 }).success).toBe(false);
    expect(folderStatusSchema.safeParse({ state: 'idle' }).success).toBe(false);
    expect(connectionsSchema.safeParse({ connections: { AAA: { connected: 'yes' } } }).success).toBe(false);
  });

  it('reads completion from old and new Syncthing (remoteState only in newer ones)', () => {
    expect(completionSchema.parse({ completion: 100, needBytes: 0, needItems: 0 }).remoteState).toBeUndefined();
    expect(completionSchema.parse({ completion: 40, needBytes: 9, needItems: 1, remoteState: 'paused' }).remoteState).toBe('paused');
  });

  it('file availability may be null or absent', () => {
    expect(fileInfoSchema.parse({ availability: null }).availability).toBeNull();
    expect(fileInfoSchema.parse({}).availability).toBeUndefined();
    expect(fileInfoSchema.parse({ availability: [{ id: 'AAA', fromTemporary: false }] }).availability).toEqual([
      { id: 'AAA', fromTemporary: false },
    ]);
  });

  it("an event's data of an unexpected shape is read as null, not as a failure of the whole list", () => {
    const events = eventsSchema.parse([
      { id: 1, type: 'LocalIndexUpdated', time: 't1', data: { folder: 'permafrost', filenames: ['a'] } },
      { id: 2, type: 'Starting', time: 't2', data: 'a string' },
      { id: 3, type: 'RemoteIndexUpdated', time: 't3', data: { folder: 7 } },
    ]);
    expect(events.map((e) => e.data)).toEqual([{ folder: 'permafrost', filenames: ['a'] }, null, null]);
    expect(eventsSchema.safeParse([{ type: 'X' }]).success).toBe(false);
  });
});
