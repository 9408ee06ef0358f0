import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { DEFAULT_BACKUP_CRON, DEFAULT_VERIFY_CRON } from '../../../src/config/schema-schedule.js';
import { cronToOnCalendar } from '../../../src/schedule/systemd.js';
import { CLI, makeWorkspace, REPO, runCli, type Workspace } from '../../harness/env.js';
import { evalModule, NIX_INSTANTIATE, nixSkipReason, type NixEval } from '../../harness/nix.js';

const skip = nixSkipReason();
if (skip) console.warn(`SKIPPED: ${skip}: the NixOS module tests (test/e2e/setup/nix-module.test.ts) did not run`);
const systemdAnalyze = spawnSync('which', ['systemd-analyze'], { encoding: 'utf8' }).stdout.trim();
if (!systemdAnalyze) console.warn('SKIPPED: systemd-analyze is not installed (apt-get install systemd): NixOS unit verification skipped');

const DEVICE = 'MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD';

let ws: Workspace;
afterEach(() => ws?.cleanup());

/** A workspace whose stub store holds a real `permafrost` (this CLI), so ExecStart= names an executable. */
function workspace(): { ws: Workspace; store: string } {
  ws = makeWorkspace(null, 'x');
  const store = path.join(ws.dir, 'store');
  mkdirSync(path.join(store, 'permafrost/bin'), { recursive: true });
  symlinkSync(CLI, path.join(store, 'permafrost/bin/permafrost'));
  return { ws, store };
}

function evaluate(store: string, configuration: Record<string, unknown> | string, name = 'eval'): NixEval {
  return evalModule(path.join(ws.dir, name), store, configuration);
}

/** The snippet on a host running Mastodon, PostgreSQL and Syncthing; vault and temp folder in the workspace. */
function mastodonHost(permafrost: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    services: {
      mastodon: { enable: true },
      postgresql: { enable: true },
      syncthing: { enable: true },
      permafrost: {
        enable: true,
        mastodon: true,
        settings: {
          vault: { dir: ws.vault, tempDir: ws.dir, passphraseFile: ws.passFile, keep: { hourly: 24, daily: 7, weekly: 4, monthly: 12 } },
          syncthing: { devices: [{ name: 'nas', id: DEVICE }] },
        },
        ...permafrost,
      },
    },
  };
}

/** key → values of one [Section] of a unit file (a key given twice, or with spaces, gives several values). */
function section(unit: string, name: string): Map<string, string[]> {
  const body = unit.split(/^\[/m).find((s) => s.startsWith(`${name}]`)) ?? '';
  const out = new Map<string, string[]>();
  for (const line of body.split('\n').slice(1)) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.indexOf('=');
    const key = line.slice(0, at);
    // systemd reads yes and true alike; NixOS writes true.
    const values = line
      .slice(at + 1)
      .split(' ')
      .filter(Boolean)
      .map((v) => (v === 'yes' ? 'true' : v));
    out.set(key, [...(out.get(key) ?? []), ...values]);
  }
  return out;
}

/** The units `permafrost systemd` generates for the same vault and temp folder. */
async function systemdCommandUnits(): Promise<Record<string, string>> {
  ws.writeConfig({ extra: { database: { name: 'mastodon' } } });
  const r = await runCli(['--config', ws.configFile, 'systemd', '--json', '--user', 'root']);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { files: Record<string, string> }).files;
}

function writeUnits(units: Record<string, string>): string[] {
  const dir = path.join(ws.dir, 'units');
  mkdirSync(dir, { recursive: true });
  return Object.entries(units).map(([name, text]) => {
    writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  });
}

/** systemd-analyze verify's complaints about the permafrost units (none expected), beside the Syncthing units NixOS would have. */
function verifyUnits(files: string[]): { complaints: string[]; status: number | null } {
  for (const name of ['syncthing.service', 'syncthing-init.service']) {
    writeFileSync(path.join(path.dirname(files[0]!), name), '[Service]\nType=oneshot\nExecStart=/bin/true\n');
  }
  const v = spawnSync(systemdAnalyze, ['verify', ...files], { encoding: 'utf8' });
  return { complaints: `${v.stdout}${v.stderr}`.split('\n').filter((l) => l.includes('permafrost')), status: v.status };
}

/** systemd-analyze verify accepts the evaluated units, with no complaint about them (where systemd-analyze is installed). */
function expectUnitsVerify(units: Record<string, string>): void {
  if (!systemdAnalyze) return;
  const v = verifyUnits(writeUnits(units));
  expect(v.complaints).toEqual([]);
  expect(v.status).toBe(0);
}

/** The config the module rendered, written where its ExecStart= looks, then loaded as the CLI loads it. */
function loadRendered(store: string, result: NixEval) {
  const file = path.join(store, 'permafrost.yaml');
  writeFileSync(file, result.configText!);
  expect(result.units!['permafrost-backup.service'] ?? result.units!['permafrost.service']).toContain(`--config ${file} `);
  return parseConfig(result.configText!, file);
}

describe.skipIf(skip !== null)('NixOS module (nix/module.nix through lib.evalModules)', () => {
  it('the issue snippet: units hardened as `permafrost systemd` makes them, users, tmpfiles, and a config the CLI loads', async () => {
    const { store } = workspace();
    const result = evaluate(store, mastodonHost());
    expect(result.failedAssertions).toEqual([]);

    const config = loadRendered(store, result);
    expect(config.role).toBe('source');
    expect(config.role === 'source' && config.database).toEqual({
      name: 'mastodon',
      user: 'mastodon',
      host: '/run/postgresql',
      compression: 1,
    });
    expect(config.redis).toEqual({ url: 'unix:///run/redis-mastodon/redis.sock', optional: false });
    expect(config.secrets).toEqual({ file: '/run/credentials/permafrost-backup.service/mastodon-secrets', optional: false });
    expect(config.media?.dir).toBe('/var/lib/mastodon/public-system');
    expect(config.vault.keep).toEqual({ hourly: 24, daily: 7, weekly: 4, monthly: 12 });
    expect(config.syncthing).toMatchObject({ url: 'http://127.0.0.1:8384', home: '/var/lib/syncthing/.config/syncthing', role: 'source' });
    expect(config.syncthing?.devices).toEqual([{ name: 'nas', id: DEVICE }]);

    expect(Object.keys(result.units!).sort()).toEqual([
      'permafrost-backup.service',
      'permafrost-backup.timer',
      'permafrost-sync-apply.service',
      'permafrost-verify.service',
      'permafrost-verify.timer',
    ]);
    const generated = await systemdCommandUnits();
    for (const job of ['backup', 'verify']) {
      const nix = section(result.units![`permafrost-${job}.service`]!, 'Service');
      const cli = section(generated[`permafrost-${job}.service`]!, 'Service');
      // Every directive the systemd command sets, hardening included, with the same value; only the command and account differ.
      for (const [key, values] of cli) {
        if (key === 'ExecStart' || key === 'User') continue;
        expect([key, nix.get(key)]).toEqual([key, values]);
      }
      expect(nix.get('User')).toEqual(['permafrost']);
      expect(nix.get('ExecStart')).toEqual([
        path.join(store, 'permafrost/bin/permafrost'),
        '--config',
        path.join(store, 'permafrost.yaml'),
        job,
      ]);
      expect(section(result.units![`permafrost-${job}.timer`]!, 'Timer')).toEqual(section(generated[`permafrost-${job}.timer`]!, 'Timer'));
    }
    // Only the backup reads Mastodon's 0600 secrets, through a private copy systemd hands it.
    expect(section(result.units!['permafrost-backup.service']!, 'Service').get('LoadCredential')).toEqual([
      'mastodon-secrets:/var/lib/mastodon/.secrets_env',
    ]);
    expect(section(result.units!['permafrost-verify.service']!, 'Service').has('LoadCredential')).toBe(false);
    const apply = section(result.units!['permafrost-sync-apply.service']!, 'Service');
    expect(apply.get('ExecStart')).toEqual([
      path.join(store, 'permafrost/bin/permafrost'),
      '--config',
      path.join(store, 'permafrost.yaml'),
      'sync',
      'apply',
    ]);
    // Root that can read any file and write none: Syncthing's 0600 config.xml, the secret files' folders.
    expect([apply.get('User'), apply.get('CapabilityBoundingSet'), apply.get('ReadWritePaths')]).toEqual([
      undefined,
      ['CAP_DAC_READ_SEARCH'],
      undefined,
    ]);
    expect(apply.get('ProtectSystem')).toEqual(['strict']);

    expect(result.users!.permafrost).toEqual({ isSystemUser: true, group: 'permafrost', extraGroups: ['mastodon', 'redis-mastodon'] });
    expect(result.users!.syncthing!.extraGroups).toEqual(['permafrost', 'mastodon']);
    expect(result.groups).toEqual(['permafrost']);
    expect(result.tmpfiles).toEqual([
      'd /var/lib/permafrost 0750 permafrost permafrost - -',
      `d ${ws.vault} 2750 permafrost permafrost - -`,
      `d ${ws.dir} 0700 permafrost permafrost - -`,
    ]);
    expect(result.postgresql!.identMap).toBe('permafrost mastodon mastodon\npermafrost permafrost mastodon\n');
    expect(result.postgresql!.authentication).toBe('local mastodon mastodon peer map=permafrost\n');

    expectUnitsVerify(result.units!);
  });

  it('timers fire on the configured cron exactly as `permafrost systemd` translates it, defaults included', () => {
    const { store } = workspace();
    const defaults = evaluate(store, mastodonHost(), 'defaults');
    expect(defaults.timers).toEqual({
      'permafrost-backup': cronToOnCalendar(DEFAULT_BACKUP_CRON),
      'permafrost-verify': cronToOnCalendar(DEFAULT_VERIFY_CRON),
    });
    const patterns = [
      '40 * * * *',
      '*/15 9-17 * * 1-5',
      '0 30 2 1,15 * *',
      '@weekly',
      '0 */2 * * *',
      '5-59/10 * * JAN-MAR SUN',
      '0 0 * * 7',
      '0 0 1-31 * 3',
      '*/10 * * * * *',
      '0 0 12 * * MON-FRI',
      '15,45 */3 1-7 * *',
      '0 4 * * 6,0,1',
    ];
    patterns.forEach((pattern, i) => {
      const host = mastodonHost();
      const settings = (host.services as { permafrost: { settings: Record<string, unknown> } }).permafrost.settings;
      settings.schedule = { backup: pattern, verify: pattern, timezone: 'Europe/Berlin' };
      const result = evaluate(store, host, `cron-${i}`);
      expect([pattern, result.timers]).toEqual([
        pattern,
        {
          'permafrost-backup': cronToOnCalendar(pattern, 'Europe/Berlin'),
          'permafrost-verify': cronToOnCalendar(pattern, 'Europe/Berlin'),
        },
      ]);
    });
  });

  it('a cron pattern OnCalendar= cannot express fails the build with the systemd command reason', () => {
    const { store } = workspace();
    ['0 3 1 * 1', '0 0 L * *', '5/10 * * * *', '61 * * * *'].forEach((pattern, i) => {
      const host = mastodonHost();
      const settings = (host.services as { permafrost: { settings: Record<string, unknown> } }).permafrost.settings;
      settings.schedule = { backup: pattern };
      const result = evaluate(store, host, `bad-${i}`);
      let reason = '';
      try {
        cronToOnCalendar(pattern);
      } catch (err) {
        reason = (err as Error).message.split('; use a simpler pattern')[0]!;
      }
      expect(reason).toMatch(/^schedule\.backup: cannot translate/);
      expect(result.failedAssertions).toEqual([
        `services.permafrost.settings.${reason}; use a simpler pattern, or set services.permafrost.daemon = true instead of timers.`,
      ]);
    });
  });

  it('daemon = true on the server: one hardened permafrost.service, which gets the secrets credential', () => {
    const { store } = workspace();
    const result = evaluate(store, mastodonHost({ daemon: true }));
    expect(result.failedAssertions).toEqual([]);
    expect(Object.keys(result.units!).sort()).toEqual(['permafrost-sync-apply.service', 'permafrost.service']);
    expect(result.timers).toEqual({});
    const daemon = section(result.units!['permafrost.service']!, 'Service');
    expect(daemon.get('ExecStart')).toEqual([
      path.join(store, 'permafrost/bin/permafrost'),
      '--config',
      path.join(store, 'permafrost.yaml'),
      'daemon',
    ]);
    expect(daemon.get('LoadCredential')).toEqual(['mastodon-secrets:/var/lib/mastodon/.secrets_env']);
    expect([daemon.get('Restart'), daemon.get('SystemCallFilter'), daemon.get('CapabilityBoundingSet')]).toEqual([
      ['on-failure'],
      ['@system-service'],
      [],
    ]);
    expect(loadRendered(store, result).secrets).toEqual({ file: '/run/credentials/permafrost.service/mastodon-secrets', optional: false });
  });

  it('a receiver runs the daemon, lets Syncthing write the vault, and its config loads as a device', () => {
    const { store } = workspace();
    const result = evaluate(store, {
      services: {
        syncthing: { enable: true },
        permafrost: {
          enable: true,
          role: 'receiver',
          settings: { vault: { dir: ws.vault }, syncthing: { devices: [{ name: 'server', id: DEVICE }] } },
        },
      },
    });
    expect(result.failedAssertions).toEqual([]);
    const config = loadRendered(store, result);
    expect(config.role).toBe('receiver');
    expect(config.syncthing?.role).toBe('receiver');
    expect(Object.keys(result.units!).sort()).toEqual(['permafrost-sync-apply.service', 'permafrost.service']);
    const daemon = section(result.units!['permafrost.service']!, 'Service');
    expect(daemon.get('ExecStart')).toEqual([
      path.join(store, 'permafrost/bin/permafrost'),
      '--config',
      path.join(store, 'permafrost.yaml'),
      'daemon',
    ]);
    expect(daemon.get('ProtectSystem')).toEqual(['strict']);
    expect(daemon.get('ReadWritePaths')).toEqual([ws.vault]);
    expect(result.timers).toEqual({});
    expect(result.tmpfiles).toContain(`d ${ws.vault} 2770 permafrost permafrost - -`);
    expect(result.users!.permafrost!.extraGroups).toEqual([]);
    expect(result.users!.syncthing!.extraGroups).toEqual(['permafrost']);
    expectUnitsVerify(result.units!);
  });

  it('each impossible combination fails with its own message', () => {
    const { store } = workspace();
    writeFileSync(path.join(ws.dir, 'secret'), 'in the store once referenced\n');
    const receiver = { enable: true, role: 'receiver', settings: { vault: { dir: ws.vault } } };
    const cases: Array<[string, Record<string, unknown> | string, string]> = [
      [
        'no passphrase',
        { services: { permafrost: { enable: true, settings: { database: { name: 'm' } } } } },
        'services.permafrost: a source encrypts every snapshot, so set services.permafrost.settings.vault.recipients (public key files) or settings.vault.passphraseFile (a file outside the Nix store, mode 0600, e.g. "/run/keys/permafrost-passphrase").',
      ],
      [
        'recipients instead of a passphrase: only the database is missing',
        { services: { permafrost: { enable: true, settings: { vault: { recipients: [path.join(ws.dir, 'recipient.asc')] } } } } },
        'services.permafrost: a source backs up a database; set services.permafrost.mastodon = true (it reads services.mastodon.database) or services.permafrost.settings.database.name.',
      ],
      [
        'no database',
        { services: { permafrost: { enable: true, settings: { vault: { passphraseFile: ws.passFile } } } } },
        'services.permafrost: a source backs up a database; set services.permafrost.mastodon = true (it reads services.mastodon.database) or services.permafrost.settings.database.name.',
      ],
      [
        'mastodon without services.mastodon',
        { services: { permafrost: { enable: true, mastodon: true, settings: { vault: { passphraseFile: ws.passFile } } } } },
        'services.permafrost.mastodon = true reads services.mastodon, which is not enabled; enable services.mastodon or set services.permafrost.settings.database yourself.',
      ],
      [
        'receiver with mastodon',
        { services: { mastodon: { enable: true }, syncthing: { enable: true }, permafrost: { ...receiver, mastodon: true } } },
        'services.permafrost: a receiver makes no backups, so mastodon = true belongs on the server; remove it or set role = "source".',
      ],
      [
        'receiver without Syncthing',
        { services: { permafrost: receiver } },
        'services.permafrost: a receiver holds only what Syncthing brings; enable services.syncthing on it.',
      ],
      [
        'receiver on timers',
        { services: { syncthing: { enable: true }, permafrost: { ...receiver, daemon: false } } },
        "services.permafrost: the backup and verify timers need the server's database; a receiver runs the daemon (services.permafrost.daemon = true), which checks its replicas on schedule.check.",
      ],
      [
        'syncthing.role in settings',
        {
          services: {
            syncthing: { enable: true },
            permafrost: { ...receiver, settings: { vault: { dir: ws.vault }, syncthing: { role: 'source' } } },
          },
        },
        'services.permafrost.settings.syncthing.role: set services.permafrost.role instead; the module renders it.',
      ],
      [
        'a secret as a Nix path',
        `{ ... }: { services.permafrost = { enable = true; settings.database.name = "m"; settings.vault.passphraseFile = ${ws.dir}/secret; }; }\n`,
        `services.permafrost.settings.vault.passphraseFile: the Nix path ${ws.dir}/secret names a secret, and Nix copies it into the Nix store, which every user can read; give the path of a file outside the store as a string (e.g. "/run/keys/permafrost").`,
      ],
      [
        'a secret in the store',
        {
          services: {
            permafrost: {
              enable: true,
              settings: { database: { name: 'm', passwordFile: '/nix/store/abc-db-password' }, vault: { passphraseFile: ws.passFile } },
            },
          },
        },
        'services.permafrost.settings.database.passwordFile: "/nix/store/abc-db-password" is in the Nix store (/nix/store/abc-db-password), which every user can read; give the path of a file outside it (e.g. "/run/keys/permafrost").',
      ],
    ];
    cases.forEach(([name, configuration, message], i) => {
      expect([name, evaluate(store, configuration, `case-${i}`).failedAssertions]).toEqual([name, [message]]);
    });
  });

  // Issue 20 item 7: every setting that names a secret, as a Nix path (copied into the store when rendered) and as a
  // string that is or normalises into the store; each refused with its own option named.
  const SECRET_SETTINGS = [
    'vault.passphraseFile',
    'vault.signingKeyFile',
    'database.passwordFile',
    'redis.passwordFile',
    'secrets.file',
    'syncthing.apiKeyFile',
    'syncthing.home',
    'verify.connection.passwordFile',
    'notify.mastodon.tokenFile',
    'web.tokenFile',
  ];

  /** A Nix module setting services.permafrost.settings.<key> = <nix expression> for each entry (and a database name). */
  function withSettings(entries: Array<[string, string]>, extra = ''): string {
    const lines = entries.map(([key, expr]) => `  services.permafrost.settings.${key} = ${expr};`).join('\n');
    return `{ ... }: {\n  services.permafrost.enable = true;\n  services.permafrost.settings.database.name = "m";\n${lines}\n${extra}}\n`;
  }

  const pathMessage = (option: string, file: string): string =>
    `${option}: the Nix path ${file} names a secret, and Nix copies it into the Nix store, which every user can read; give the path of a file outside the store as a string (e.g. "/run/keys/permafrost").`;
  const storeMessage = (option: string, given: string, normal: string): string =>
    `${option}: "${given}" is in the Nix store (${normal}), which every user can read; give the path of a file outside it (e.g. "/run/keys/permafrost").`;

  it('every secret setting given as a Nix path fails the build naming its option (./env.production as secrets.file included)', () => {
    const { store } = workspace();
    const file = (key: string) => path.join(ws.dir, 'config', `${key.replaceAll('.', '-')}`);
    const result = evaluate(store, withSettings(SECRET_SETTINGS.map((key) => [key, file(key)])));
    expect(result.failedAssertions.sort()).toEqual(
      SECRET_SETTINGS.map((key) => pathMessage(`services.permafrost.settings.${key}`, file(key))).sort(),
    );
    // The case alone: a passphrase outside the store, the secrets file as a Nix path.
    const envProduction = path.join(ws.dir, 'config', 'env.production');
    const alone = evaluate(
      store,
      withSettings([
        ['vault.passphraseFile', JSON.stringify(ws.passFile)],
        ['secrets.file', envProduction],
      ]),
      'env-production',
    );
    expect(alone.failedAssertions).toEqual([pathMessage('services.permafrost.settings.secrets.file', envProduction)]);
    // A package (pkgs.writeText) is a store path too, whatever it is called.
    const written = evaluate(
      store,
      `{ pkgs, ... }: {\n  services.permafrost.enable = true;\n  services.permafrost.settings.database.name = "m";\n  services.permafrost.settings.vault.passphraseFile = ${JSON.stringify(ws.passFile)};\n  services.permafrost.settings.web.tokenFile = pkgs.writeText "web-token" "secret";\n}\n`,
      'write-text',
    );
    expect(written.failedAssertions).toEqual([
      `services.permafrost.settings.web.tokenFile: the package ${store}/web-token is in the Nix store, which every user can read; give the path of a file outside it as a string (e.g. "/run/keys/permafrost").`,
    ]);
  });

  it('every secret setting given as a string that is or normalises into the store (//, /./, ..) fails the build naming its option', () => {
    const { store } = workspace();
    const spellings: Array<(name: string) => [string, string]> = [
      (n) => [`/nix//store/abc-${n}`, `/nix/store/abc-${n}`],
      (n) => [`//nix/store/abc-${n}`, `/nix/store/abc-${n}`],
      (n) => [`/nix/./store/abc-${n}`, `/nix/store/abc-${n}`],
      (n) => [`/nix/var/../store/abc-${n}`, `/nix/store/abc-${n}`],
      (n) => [`/run/../../nix/store/./abc-${n}/`, `/nix/store/abc-${n}`],
      () => ['/nix/store/', '/nix/store'],
    ];
    spellings.forEach((spelling, i) => {
      const entries = SECRET_SETTINGS.map((key): [string, string] => [key, JSON.stringify(spelling(key.replaceAll('.', '-'))[0])]);
      const result = evaluate(store, withSettings(entries), `spelling-${i}`);
      expect([i, result.failedAssertions.sort()]).toEqual([
        i,
        SECRET_SETTINGS.map((key) => {
          const [given, normal] = spelling(key.replaceAll('.', '-'));
          return storeMessage(`services.permafrost.settings.${key}`, given, normal);
        }).sort(),
      ]);
    });
    // Paths outside the store pass, however close they look; public keys may live in the store.
    const outside = evaluate(
      store,
      withSettings([
        ['vault.passphraseFile', '"/nix/storehouse/passphrase"'],
        ['database.passwordFile', '"/run/keys/nix/store/db-password"'],
        ['secrets.file', '"/nix/store-secrets/env.production"'],
        ['redis.passwordFile', '"/nix/var/store/../../keys/redis"'],
        ['vault.signerKeyFile', '"/nix/store/abc-signer.pub.asc"'],
        ['vault.recipients', '[ "/nix//store/abc-admin.pub.asc" ]'],
      ]),
      'outside',
    );
    expect(outside.failedAssertions).toEqual([]);
  });

  it("a Mastodon database or Redis password file in the store (a Nix path or a store string) fails the build naming services.mastodon's option", () => {
    const { store } = workspace();
    const dbPassword = path.join(ws.dir, 'config', 'db-password');
    const result = evaluate(
      store,
      `{ ... }: {
  services.mastodon = { enable = true; database.createLocally = false; database.passwordFile = ${dbPassword}; redis.passwordFile = "/nix//store/abc-redis"; };
  services.permafrost = { enable = true; mastodon = true; settings.vault.passphraseFile = ${JSON.stringify(ws.passFile)}; };
}\n`,
    );
    expect(result.failedAssertions.sort()).toEqual(
      [
        pathMessage('services.mastodon.database.passwordFile', dbPassword),
        storeMessage('services.mastodon.redis.passwordFile', '/nix//store/abc-redis', '/nix/store/abc-redis'),
      ].sort(),
    );
  });

  it('nix/package.nix is a function of the nixpkgs it is called with (it is built only where nixpkgs is)', () => {
    const r = spawnSync(NIX_INSTANTIATE!, ['--parse', path.join(REPO, 'nix/package.nix')], { encoding: 'utf8' });
    // Only status and output: nix may warn on stderr about the machine (a missing nixbld group on a fresh Debian).
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\(\{ lib, buildNpmPackage, nodejs, gnupg, postgresql, redis, isa-l \}: \(buildNpmPackage \{/);
  });
});
