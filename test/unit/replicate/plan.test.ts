import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readApiKey } from '../../../src/ops/secrets.js';
import { parseConfig } from '../../../src/config/load.js';
import { requireSource } from '../../../src/config/normalize.js';
import { syncthingSchema } from '../../../src/config/schema-replicate.js';
import { UserError } from '../../../src/errors.js';
import { normalizeDeviceId } from '../../../src/replicate/device-id.js';
import type { StFolder } from '../../../src/replicate/api.js';
import { SNAPSHOT_IGNORES, desiredState, planChanges, type CurrentState } from '../../../src/replicate/plan.js';

// Real IDs made by `syncthing generate` (valid check characters).
const ME = 'QSUKYKF-FQN6OG6-DZIPWHF-6GRVTDW-NREBRHS-MIYLO3G-TW2UB6U-WNC7IA6';
const NAS = 'AUBBQEE-LH2CXVA-KFMJSKB-3TRKKGW-VHIV4YS-ZMMH36Y-7ZPWXEN-C4WOXQM';
const OTHER = 'AHQYD6Q-CWV25PY-4I2PIEX-H7XEDLE-HE7HYO6-LWE4KCM-BUC3W6P-JKHONQZ';

function cfg(role: 'source' | 'receiver', over: Record<string, unknown> = {}) {
  return {
    vault: { dir: '/srv/snapshots' },
    media: { dir: '/srv/media', ignore: ['cache/**'] },
    syncthing: syncthingSchema.parse({ apiKeyFile: '/k', role, devices: [{ name: 'nas', id: NAS.toLowerCase() }], ...over }),
  };
}

function folder(id: string, path: string, type: string, extra: Partial<StFolder> = {}): StFolder {
  return {
    id,
    label: id === 'permafrost-snapshots' ? 'permafrost snapshots' : 'Mastodon media',
    path,
    type,
    devices: [{ deviceID: NAS }, { deviceID: ME }],
    rescanIntervalS: 3600,
    fsWatcherEnabled: true,
    fsWatcherDelayS: 10,
    paused: false,
    versioning: { type: '', params: {} },
    ...extra,
  };
}

/** What Syncthing looks like after a successful apply of cfg('source'). */
function inLine(): CurrentState {
  return {
    myID: ME,
    devices: [
      { deviceID: ME, name: 'server', addresses: ['dynamic'] },
      { deviceID: NAS, name: 'nas', addresses: ['dynamic'] },
    ],
    folders: [folder('permafrost-snapshots', '/srv/snapshots', 'sendonly'), folder('mastodon-media', '/srv/media', 'sendonly')],
    ignores: { 'permafrost-snapshots': [...SNAPSHOT_IGNORES], 'mastodon-media': ['cache/**'] },
  };
}

const plan = (c: ReturnType<typeof cfg>, cur: CurrentState) =>
  planChanges(desiredState(c, cur.myID), cur).map((ch) => [ch.kind, ch.method, ch.path, ch.body]);

describe('sync apply planner', () => {
  it.each([
    ['in line: nothing to do', cfg('source'), inLine(), []],
    [
      'an unmanaged folder and device are left alone',
      cfg('source'),
      {
        ...inLine(),
        devices: [...inLine().devices, { deviceID: OTHER, name: 'laptop', addresses: ['dynamic'] }],
        folders: [...inLine().folders, folder('photos', '/p', 'sendreceive', { paused: true })],
      },
      [],
    ],
    [
      'device renamed and given an address',
      cfg('source', { devices: [{ name: 'nas2', id: NAS, addresses: ['tcp://192.0.2.10:22000'] }] }),
      inLine(),
      [['update-device', 'PATCH', `/rest/config/devices/${NAS}`, { name: 'nas2', addresses: ['tcp://192.0.2.10:22000'] }]],
    ],
    [
      'paused folder is resumed',
      cfg('source'),
      { ...inLine(), folders: [folder('permafrost-snapshots', '/srv/snapshots', 'sendonly', { paused: true }), inLine().folders[1]!] },
      [['resume-folder', 'PATCH', '/rest/config/folders/permafrost-snapshots', { paused: false }]],
    ],
    [
      'changed media ignores are set',
      cfg('source', {}),
      { ...inLine(), ignores: { ...inLine().ignores, 'mastodon-media': [] } },
      [['set-ignores', 'POST', '/rest/db/ignores?folder=mastodon-media', { ignore: ['cache/**'] }]],
    ],
    [
      'a device no longer listed is unshared from the managed folders only',
      cfg('source', { devices: [] }),
      inLine(),
      [
        ['update-folder', 'PATCH', '/rest/config/folders/permafrost-snapshots', { devices: [{ deviceID: ME }] }],
        ['update-folder', 'PATCH', '/rest/config/folders/mastodon-media', { devices: [{ deviceID: ME }] }],
      ],
    ],
  ])('%s', (_name, c, cur, expected) => {
    expect(plan(c, cur)).toEqual(expected);
  });

  it('creates every folder paused, sets ignores, then resumes it (source)', () => {
    const cur: CurrentState = { myID: ME, devices: [], folders: [], ignores: {} };
    const changes = plan(cfg('source'), cur);
    expect(changes.map((c) => c[0])).toEqual([
      'add-device',
      'add-folder',
      'set-ignores',
      'resume-folder',
      'add-folder',
      'set-ignores',
      'resume-folder',
    ]);
    expect(changes[0]).toEqual(['add-device', 'POST', '/rest/config/devices', { deviceID: NAS, name: 'nas', addresses: ['dynamic'] }]);
    expect(changes[1]![3]).toMatchObject({
      id: 'permafrost-snapshots',
      path: '/srv/snapshots',
      type: 'sendonly',
      paused: true,
      devices: [{ deviceID: ME }, { deviceID: NAS }],
    });
    expect(changes[1]![3]).not.toHaveProperty('versioning');
    expect(changes[2]).toEqual(['set-ignores', 'POST', '/rest/db/ignores?folder=permafrost-snapshots', { ignore: [...SNAPSHOT_IGNORES] }]);
  });

  it('receiver folders are receive-only with versioning from the config', () => {
    const cur: CurrentState = { myID: ME, devices: [], folders: [], ignores: {} };
    const changes = plan(cfg('receiver', { versioning: { type: 'staggered', maxAge: '30d' } }), cur);
    expect(changes[1]![3]).toMatchObject({
      type: 'receiveonly',
      paused: true,
      versioning: { type: 'staggered', params: { maxAge: String(30 * 86400) } },
    });
    // Syncthing keeps params it was not sent (PATCH merges maps): extra ones are not a difference.
    const inline = inLine();
    inline.folders = inline.folders.map((f) => ({
      ...f,
      type: 'receiveonly',
      versioning: { type: 'simple', params: { keep: '6', cleanoutDays: '0', maxAge: '9' } },
    }));
    expect(plan(cfg('receiver'), inline)).toEqual([]);
    inline.folders[0]!.versioning.params.keep = '3';
    expect(plan(cfg('receiver'), inline)).toEqual([
      [
        'update-folder',
        'PATCH',
        '/rest/config/folders/permafrost-snapshots',
        { versioning: { type: 'simple', params: { keep: '6', cleanoutDays: '0' } } },
      ],
    ]);
  });

  it('without media only the snapshots folder is managed', () => {
    const c = { ...cfg('source'), media: undefined };
    expect(desiredState(c, ME).folders.map((f) => f.id)).toEqual(['permafrost-snapshots']);
  });

  it('refuses its own ID and duplicates, naming the key', () => {
    expect(() => desiredState(cfg('source', { devices: [{ name: 'me', id: ME }] }), ME)).toThrow(
      /syncthing\.devices\[0\]\.id: .* own Syncthing ID/,
    );
    expect(() =>
      desiredState(
        cfg('source', {
          devices: [
            { name: 'a', id: NAS },
            { name: 'b', id: NAS },
          ],
        }),
        ME,
      ),
    ).toThrow(UserError);
  });
});

describe('device IDs', () => {
  it.each([
    [NAS, NAS],
    [NAS.toLowerCase().replace(/-/g, ''), NAS],
    [NAS.replace(/-/g, ' '), NAS],
    [NAS.slice(0, -1) + 'A', null],
    ['ABCDEFG-HIJKLMN', null],
    ['', null],
  ])('%s → %s', (input, out) => expect(normalizeDeviceId(input)).toBe(out));
});

describe('replication config', () => {
  const base = `vault: { dir: /v, passphraseFile: /etc/hostname }\n`;
  it('a receiver needs no database; asking for it anyway is a clear UserError', () => {
    const c = parseConfig(`${base}syncthing: { apiKeyFile: /etc/hostname, role: receiver }\n`, 'r.yaml');
    expect(c.syncthing).toMatchObject({
      role: 'receiver',
      url: 'http://127.0.0.1:8384',
      staleAfter: 7200,
      versioning: { type: 'simple', keep: 6 },
    });
    expect(() => requireSource(c, 'backup')).toThrow(/no database section .*receiver/);
  });
  it('a source still needs a database', () => {
    expect(() => parseConfig(`${base}syncthing: { apiKeyFile: /etc/hostname }\n`, 's.yaml')).toThrow(UserError);
    try {
      parseConfig(`${base}syncthing: { apiKeyFile: /etc/hostname }\n`, 's.yaml');
    } catch (err) {
      expect((err as UserError).details.join('\n')).toContain('database: required');
    }
  });
  it('media.ignore defaults to cache/**; staleAfter takes durations; apiKeyFile xor home', () => {
    const c = parseConfig(`${base}media: { dir: /m }\nsyncthing: { home: /st, role: receiver, staleAfter: 90m }\n`, 'r.yaml');
    expect(c.media?.ignore).toEqual(['cache/**']);
    expect(c.syncthing?.staleAfter).toBe(5400);
    expect(() => parseConfig(`${base}syncthing: { role: receiver }\n`, 'r.yaml')).toThrow(UserError);
  });
});

describe('Syncthing client settings', () => {
  it('reads the API key from syncthing.home/config.xml (the GUI one, not another apikey-like text)', () => {
    const home = mkdtempSync(path.join(tmpdir(), 'permafrost-sthome-'));
    try {
      writeFileSync(
        path.join(home, 'config.xml'),
        '<configuration><device id="X"><address>dynamic</address></device>\n<gui enabled="true" tls="false">\n<address>127.0.0.1:8384</address>\n<apikey>k3y-from-gui</apikey>\n</gui></configuration>\n',
      );
      const st = syncthingSchema.parse({ home });
      expect(readApiKey(st)).toBe('k3y-from-gui');
      writeFileSync(path.join(home, 'config.xml'), '<configuration><gui></gui></configuration>');
      expect(() => readApiKey(st)).toThrow(/syncthing\.home: .* has no GUI API key/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
