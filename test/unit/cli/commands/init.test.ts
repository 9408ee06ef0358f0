import { beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess } from '../../../harness/cli-inproc.js';
import type { InitDeviceResult, InitResult } from '../../../../src/ops/init.js';

const ops = vi.hoisted(() => ({ runInit: vi.fn(), runInitDevice: vi.fn() }));
vi.mock('../../../../src/ops/init.js', () => ops);
beforeEach(() => {
  ops.runInit.mockReset();
  ops.runInitDevice.mockReset();
});

function server(over: Partial<InitResult> = {}): InitResult {
  return {
    configPath: '/etc/permafrost/permafrost.yaml',
    passphraseFile: '/etc/permafrost/passphrase',
    keys: null,
    passphraseCreated: true,
    passwordFiles: ['/etc/permafrost/db-password'],
    vaultDir: '/var/lib/permafrost/snapshots',
    keep: { last: 6 },
    mediaDir: '/home/mastodon/live/public/system',
    notes: ['redis has a password'],
    access: { method: 'password', osUser: null, osUserExists: false, switchUser: false } as unknown as InitResult['access'],
    peerMap: null,
    handedOver: [],
    reusedKey: null,
    ...over,
  };
}

const device: InitDeviceResult = {
  configPath: '/etc/permafrost/device.yaml',
  vaultDir: '/srv/permafrost/snapshots',
  mediaDir: '/srv/permafrost/media',
  syncthingHome: '/home/me/.local/state/syncthing',
  keep: { last: 6 },
  serverId: null,
};

describe('permafrost init (server)', () => {
  it('maps the flags onto runInit (config path from --config, else ./permafrost.yaml) and prints what it wrote', async () => {
    ops.runInit.mockResolvedValue(server());
    let r = await runInProcess([
      '--config',
      '/etc/permafrost/permafrost.yaml',
      'init',
      '--mastodon',
      '/home/mastodon/live',
      '--vault',
      '/srv/v',
      '--force',
      '--recipients',
      '/k/a.asc',
      '/k/b.asc',
    ]);
    expect(r.code).toBe(0);
    expect(ops.runInit).toHaveBeenCalledWith({
      mastodonDir: '/home/mastodon/live',
      configPath: '/etc/permafrost/permafrost.yaml',
      force: true,
      vaultDir: '/srv/v',
      generateKeysDir: undefined,
      reusePassphraseFile: undefined,
      recipients: ['/k/a.asc', '/k/b.asc'],
    });
    expect(r.out.slice(0, 3)).toEqual([
      'wrote /etc/permafrost/permafrost.yaml',
      'wrote /etc/permafrost/db-password (mode 0600)',
      'snapshots will go to /var/lib/permafrost/snapshots',
    ]);
    expect(r.out).toContain('media to replicate: /home/mastodon/live/public/system (without cache/)');
    expect(r.out).toContain('note: redis has a password');
    expect(r.out.some((l) => l.startsWith('Created the passphrase file /etc/permafrost/passphrase (mode 0400).'))).toBe(true);
    expect(r.out.at(-1)).toBe(
      'Next: `permafrost --config /etc/permafrost/permafrost.yaml doctor` checks everything, then `permafrost --config /etc/permafrost/permafrost.yaml backup` takes the first snapshot.',
    );
    r = await runInProcess(['init', '--mastodon', '/m', '--generate-keys', '/root/k', '--passphrase-file', '-']);
    expect(ops.runInit.mock.calls[1]![0]).toMatchObject({
      configPath: './permafrost.yaml',
      generateKeysDir: '/root/k',
      reusePassphraseFile: '-',
    });
  });

  it('peer access: the OS user, runuser in the next steps, the ident/hba lines when that user is missing', async () => {
    ops.runInit.mockResolvedValue(
      server({
        access: {
          method: 'peer',
          socket: '/var/run/postgresql',
          role: 'mastodon',
          osUser: 'mastodon',
          osUserExists: false,
          switchUser: true,
        } as unknown as InitResult['access'],
        peerMap: {
          ident: 'permafrost root mastodon',
          identFile: '/etc/postgresql/15/main/pg_ident.conf',
          hba: 'local all mastodon peer map=permafrost',
        },
        handedOver: ['/etc/permafrost/permafrost.yaml'],
        mediaDir: null,
        passphraseCreated: false,
      }),
    );
    const r = await runInProcess(['init', '--mastodon', '/m']);
    expect(r.out).toContain('gave /etc/permafrost/permafrost.yaml to mastodon');
    expect(r.out.find((l) => l.startsWith('note: there is no OS user mastodon'))).toContain(
      'add `permafrost root mastodon` to /etc/postgresql/15/main/pg_ident.conf',
    );
    expect(r.out).toContain('media: not replicated (object storage)');
    expect(r.out).toContain(
      'Kept the existing passphrase file /etc/permafrost/passphrase; make sure a copy of it is stored off this server.',
    );
    expect(r.out.at(-1)).toMatch(
      /^Next: `runuser -u mastodon -- permafrost --config .* systemd --install` runs the backups as mastodon \(the vault's owner\)\.$/,
    );
  });

  it('--json prints the result alone', async () => {
    ops.runInit.mockResolvedValue(server());
    const r = await runInProcess(['init', '--mastodon', '/m', '--json']);
    expect(JSON.parse(r.out.join('\n'))).toEqual(server());
  });

  it.each([
    [
      ['init'],
      "init needs --mastodon DIR (the Mastodon folder holding .env.production) on the server, or --device for a backup device's config.",
    ],
    [['init', '--mastodon', '/m', '--server-id', 'X'], "--server-id is for a backup device's config; add --device, or leave it out."],
    [
      ['init', '--mastodon', '/m', '--syncthing-home', '/s'],
      "--syncthing-home is for a backup device's config; add --device, or leave it out.",
    ],
    [
      ['init', '--device', '--generate-keys', '/k'],
      "--generate-keys is for the server's config; a backup device (--device) has no database and no key. Leave it out, or drop --device.",
    ],
    [
      ['init', '--device', '--mastodon', '/m'],
      "--mastodon is for the server's config; a backup device (--device) has no database and no key. Leave it out, or drop --device.",
    ],
  ])('%j: exit 2, "%s", nothing written', async (args, sentence) => {
    const r = await runInProcess(args);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([`permafrost: ${sentence}`]);
    expect(ops.runInit).not.toHaveBeenCalled();
    expect(ops.runInitDevice).not.toHaveBeenCalled();
  });
});

describe('permafrost init --device', () => {
  it('maps the device flags onto runInitDevice and prints the four steps; a given server ID is said to be there', async () => {
    ops.runInitDevice.mockResolvedValue(device);
    let r = await runInProcess([
      '--config',
      '/etc/permafrost/device.yaml',
      'init',
      '--device',
      '--vault',
      '/srv/v',
      '--media',
      '/srv/m',
      '--syncthing-url',
      'http://127.0.0.1:8385',
    ]);
    expect(r.code).toBe(0);
    expect(ops.runInitDevice).toHaveBeenCalledWith({
      configPath: '/etc/permafrost/device.yaml',
      force: undefined,
      vaultDir: '/srv/v',
      mediaDir: '/srv/m',
      syncthingHome: undefined,
      syncthingUrl: 'http://127.0.0.1:8385',
      serverId: undefined,
    });
    expect(r.out[0]).toBe('wrote /etc/permafrost/device.yaml (a backup device: Syncthing receiver, no database, no passphrase)');
    expect(r.out.filter((l) => /^ {2}\d\. /.test(l))).toHaveLength(4);
    expect(r.out.find((l) => l.startsWith('  2.'))).toContain('add the server to syncthing.devices');
    ops.runInitDevice.mockResolvedValue({ ...device, serverId: 'SERVER-ID' });
    r = await runInProcess(['init', '--device']);
    expect(r.out).toContain('  2. the server (SERVER-ID) is already in syncthing.devices');
  });
});
