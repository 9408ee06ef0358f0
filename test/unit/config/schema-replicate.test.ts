import { describe, expect, it } from 'vitest';
import {
  durationSeconds,
  mediaSchema,
  syncthingDeviceSchema,
  syncthingSchema,
  versioningSchema,
} from '../../../src/config/schema-replicate.js';

const DEVICE = 'MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD';

describe('durationSeconds', () => {
  it.each([
    ['90s', 90],
    ['90m', 5400],
    ['2h', 7200],
    ['7d', 604800],
    ['2 h', 7200],
    [3600, 3600],
  ])('%s → %d seconds', (v, want) => expect(durationSeconds.parse(v)).toBe(want));

  it.each(['2w', '1.5h', '-2h', 'h', '', '2hours'])('refuses %s', (v) => expect(durationSeconds.safeParse(v).success).toBe(false));

  it('refuses zero, negative and fractional numbers', () => {
    for (const v of [0, -5, 1.5]) expect(durationSeconds.safeParse(v).success).toBe(false);
  });
});

describe('syncthing section', () => {
  it('fills the defaults: local GUI URL, source role, simple versioning keeping 6, stale after 2 h', () => {
    expect(syncthingSchema.parse({ apiKeyFile: '/etc/permafrost/st-key' })).toEqual({
      url: 'http://127.0.0.1:8384',
      apiKeyFile: '/etc/permafrost/st-key',
      role: 'source',
      devices: [],
      versioning: { type: 'simple', keep: 6, cleanoutDays: 0, maxAge: 365 * 86400 },
      staleAfter: 7200,
    });
  });

  it('needs exactly one of apiKeyFile and home', () => {
    const message = "set exactly one of syncthing.apiKeyFile (a file holding the API key) or syncthing.home (Syncthing's folder)";
    const issues = (v: unknown) => syncthingSchema.safeParse(v).error?.issues.map((i) => i.message) ?? [];
    expect(issues({})).toEqual([message]);
    expect(issues({ apiKeyFile: '/k', home: '/var/lib/syncthing' })).toEqual([message]);
    expect(issues({ home: '/var/lib/syncthing' })).toEqual([]);
  });

  it('refuses a URL that is neither http(s) nor a socket path, and an API key inline', () => {
    expect(syncthingSchema.safeParse({ apiKeyFile: '/k', url: 'ftp://x' }).success).toBe(false);
    expect(syncthingSchema.safeParse({ apiKeyFile: '/k', url: 'relative.sock' }).success).toBe(false);
    expect(syncthingSchema.safeParse({ apiKeyFile: '/k', url: '/run/syncthing.sock' }).success).toBe(true);
    expect(syncthingSchema.safeParse({ apiKey: 'abc', home: '/h' }).success).toBe(false);
  });

  it('a device needs a valid ID (a wrong check character is caught here, not at pairing time)', () => {
    expect(syncthingDeviceSchema.safeParse({ name: 'nas', id: DEVICE }).success).toBe(true);
    const bad = syncthingDeviceSchema.safeParse({ name: 'nas', id: DEVICE.replace('QXGZDMM', 'QXGZDMN') });
    expect(bad.error?.issues[0]?.message).toMatch(/^not a valid Syncthing device ID/);
    expect(syncthingDeviceSchema.safeParse({ name: '', id: DEVICE }).success).toBe(false);
    expect(syncthingDeviceSchema.safeParse({ name: 'nas', id: DEVICE, addresses: [] }).success).toBe(false);
  });

  it('versioning and media keep their bounds and defaults', () => {
    expect(versioningSchema.safeParse({ keep: 0 }).success).toBe(false);
    expect(versioningSchema.safeParse({ type: 'external' }).success).toBe(false);
    expect(mediaSchema.parse({ dir: '/srv/mastodon/public/system' }).ignore).toEqual(['cache/**']);
    expect(mediaSchema.safeParse({ dir: 'public/system' }).success).toBe(false);
  });
});
