import { describe, expect, it } from 'vitest';
import { judgeReplication, type DeviceFacts, type ReplicationFacts, type SyncthingFacts } from '../../../src/replicate/status.js';
import type { SnapshotEntry } from '../../../src/vault/store.js';

const NOW = new Date('2026-12-01T12:00:00Z');

/** A snapshot without a readable manifest: its commit time is the folder's time. */
function snap(id: string, time: string): SnapshotEntry {
  return { id, dir: `/vault/${id}`, time: new Date(time), manifest: null, future: false };
}

const NEWEST = snap('2026-12-01T11-00-00Z', '2026-12-01T11:00:00Z');
const OLDER = snap('2026-12-01T08-00-00Z', '2026-12-01T08:00:00Z');

function facts(over: Partial<ReplicationFacts> = {}): ReplicationFacts {
  return { role: 'source', now: NOW, snaps: [NEWEST, OLDER], staleAfter: 7200, device: null, syncthing: null, ...over };
}

function device(over: Partial<DeviceFacts> = {}): DeviceFacts {
  return {
    name: 'nas',
    id: 'NAS-ID',
    connection: { connected: true, address: '127.0.0.1:22000', startedAt: '2026-12-01T10:00:00Z' },
    lastSeen: '2026-12-01T11:59:00Z',
    completions: [],
    onDevice: null,
    oldestMissing: null,
    problem: null,
    ...over,
  };
}

function syncthing(over: Partial<SyncthingFacts> = {}): SyncthingFacts {
  const folder = { id: 'permafrost-snapshots', paused: false } as SyncthingFacts['folders'][number]['folder'];
  return {
    role: 'source',
    myID: 'ME-ID',
    error: null,
    folders: [{ folder, status: { state: 'idle', needBytes: 0 } }],
    devices: [],
    state: { seen: {} },
    ...over,
  };
}

describe('judgeReplication (pure)', () => {
  it('without Syncthing judges the newest snapshot age alone', () => {
    expect(judgeReplication(facts()).ok).toBe(true);
    const none = judgeReplication(facts({ snaps: [] }));
    expect(none.issues.map((i) => i.code)).toEqual(['no-snapshot']);
    expect(none.problems).toEqual(['there is no snapshot yet: run `permafrost backup`']);
    const old = judgeReplication(facts({ staleAfter: 1800 }));
    expect(old.ok).toBe(false);
    expect(old.snapshot).toEqual({ id: NEWEST.id, finishedAt: '2026-12-01T11:00:00.000Z', ageSeconds: 3600 });
    expect(old.issues.map((i) => i.code)).toEqual(['snapshot-stale']);
  });

  it('an unreachable Syncthing is one problem; the ID it gave before failing is kept', () => {
    const s = judgeReplication(facts({ syncthing: syncthing({ error: 'connection refused', folders: [], state: null }) }));
    expect(s).toMatchObject({ syncthing: true, reachable: false, error: 'connection refused', myID: 'ME-ID', ok: false });
    expect(s.problems).toEqual(['Syncthing: connection refused']);
  });

  it('a device holding the newest snapshot has its lag from the first-seen time; one lacking an old snapshot is stale', () => {
    const current = device({ onDevice: { id: NEWEST.id, seenAt: '2026-12-01T11:00:30Z', firstSeenNow: false } });
    const behind = device({
      name: 'offsite',
      id: 'OFF-ID',
      connection: undefined,
      lastSeen: '1970-01-01T00:00:00Z',
      completions: [{ folder: 'permafrost-snapshots', completion: { completion: 50, needBytes: 10, needItems: 2, remoteState: 'paused' } }],
      oldestMissing: OLDER,
    });
    const s = judgeReplication(facts({ syncthing: syncthing({ devices: [current, behind] }) }));
    expect(s.devices[0]).toMatchObject({
      newestSnapshotComplete: true,
      newestOnDevice: NEWEST.id,
      lagSeconds: 30,
      lagPending: false,
      stale: false,
    });
    expect(s.devices[1]).toMatchObject({
      connected: false,
      lastSeen: null,
      newestSnapshotComplete: null,
      lagPending: true,
      lagSeconds: 3600,
      stale: true,
      bytesToSend: 10,
    });
    expect(s.issues.map((i) => [i.code, i.device])).toEqual([
      ['device-folder', 'offsite'],
      ['device-stale', 'offsite'],
    ]);
    expect(s.problems[1]).toBe(`device offsite lacks snapshot ${OLDER.id}, older than 7200s (it has no snapshot; it is not connected)`);
  });

  it('a receiver reports its local folders, not what devices hold', () => {
    const folder = { id: 'permafrost-snapshots', paused: true } as SyncthingFacts['folders'][number]['folder'];
    const st = syncthing({
      role: 'receiver',
      folders: [{ folder, status: { state: 'idle', needBytes: 0, receiveOnlyChangedFiles: 3 } }],
      devices: [device({ oldestMissing: OLDER })],
    });
    const s = judgeReplication(facts({ syncthing: st }));
    expect(s.localFolders).toEqual([
      { folder: 'permafrost-snapshots', state: 'idle', paused: true, needBytes: 0, receiveOnlyChangedFiles: 3, errors: 0 },
    ]);
    expect(s.devices[0]).toMatchObject({ stale: false, lagSeconds: null, newestSnapshotComplete: null });
    expect(s.issues.map((i) => i.code)).toEqual(['folder', 'folder']);
    expect(s.problems[0]).toBe(
      'folder permafrost-snapshots is paused on this backup device, so nothing arrives: run `permafrost sync apply` here to resume it',
    );
  });
});
