import { UserError } from '../../errors.js';
import { describePolicy } from '../../vault/retention.js';
import type { Command } from 'commander';
import type { InitDeviceResult, InitResult } from '../../ops/init.js';
import { examples, type CommandContext, type RegisterCommand } from '../context.js';
import type { Io } from '../run.js';

interface InitFlags {
  mastodon?: string;
  device?: boolean;
  media?: string;
  syncthingHome?: string;
  syncthingUrl?: string;
  serverId?: string;
  force?: boolean;
  vault?: string;
  generateKeys?: string;
  passphraseFile?: string;
  recipients?: string[];
  json?: boolean;
}

export const registerInit: RegisterCommand = (program, ctx) => {
  const cmd = program
    .command('init')
    .description(
      "Write a config from a Mastodon install's .env.production (database, Redis, secrets, media) and create a passphrase file; with --device, a backup device's config instead.",
    );
  // In the order --help lists them, as before they were grouped.
  keyOptions(deviceOptions(serverOptions(cmd)).option('--force', 'replace an existing config (an existing passphrase file is always kept)'))
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost init --mastodon /home/mastodon/live            # writes ./permafrost.yaml',
        'permafrost --config /etc/permafrost/permafrost.yaml init --mastodon /home/mastodon/live --vault /srv/permafrost',
        'permafrost init --mastodon /home/mastodon/live --force && permafrost doctor',
        'permafrost init --mastodon /home/mastodon/live --generate-keys /root/move-me   # the server holds no secret that decrypts',
        "permafrost init --mastodon /home/mastodon/live --passphrase-file /root/passphrase   # rebuilt server: the old snapshots' passphrase",
        'permafrost --config /etc/permafrost/permafrost.yaml init --device --vault /srv/permafrost/snapshots --media /srv/permafrost/media',
      ]),
    )
    .action((opts: InitFlags) => (opts.device ? initDevice(opts, ctx) : initServer(opts, ctx)));
};

/** Where the config goes, and where the Mastodon install is read from. */
function serverOptions(cmd: Command): Command {
  return cmd
    .option('--mastodon <dir>', 'the Mastodon folder holding .env.production (e.g. /home/mastodon/live); required unless --device')
    .option(
      '--vault <dir>',
      'where snapshots are stored (default: /var/lib/permafrost/snapshots; with --device /srv/permafrost/snapshots)',
    );
}

/** --device and the flags only a backup device's config takes. */
function deviceOptions(cmd: Command): Command {
  return cmd
    .option(
      '--device',
      'write the config of a backup device (Syncthing receiver): vault.dir and media.dir filled by Syncthing, vault.keep, no database, no passphrase',
    )
    .option('--media <dir>', "with --device: the device's folder for the server's media (media.dir; default /srv/permafrost/media)")
    .option(
      '--syncthing-home <dir>',
      "with --device: Syncthing's folder on this machine, whose config.xml holds the API key (default: ~/.local/state/syncthing or ~/.config/syncthing)",
    )
    .option('--syncthing-url <url>', "with --device: Syncthing's GUI/REST address, or its unix socket (default http://127.0.0.1:8384)")
    .option('--server-id <id>', "with --device: the server's Syncthing ID (`permafrost device-id` there), written into syncthing.devices");
}

/** The key the server's snapshots are encrypted with: a new passphrase unless one of these says otherwise. */
function keyOptions(cmd: Command): Command {
  return cmd
    .option(
      '--generate-keys <dir>',
      'instead of a passphrase, make a recipient key pair (its secret half written into DIR, to be moved off the server) and a signing key pair',
    )
    .option(
      '--passphrase-file <file>',
      'reuse this passphrase (a 0600 file, or - for standard input) instead of making a new one: a rebuilt server keeps the key its old snapshots need',
    )
    .option('--recipients <files...>', "encrypt to these public keys (vault.recipients), e.g. the old server's, instead of a passphrase");
}

/** `--syncthing-home` for `syncthingHome`. */
const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** `init --device`: a backup device's config, refusing the server's flags. */
async function initDevice(opts: InitFlags, { io, configFlag }: CommandContext): Promise<void> {
  const serverOnly = (['mastodon', 'generateKeys', 'passphraseFile', 'recipients'] as const).find((k) => opts[k] !== undefined);
  if (serverOnly) {
    throw new UserError(
      `${flag(serverOnly)} is for the server's config; a backup device (--device) has no database and no key. Leave it out, or drop --device.`,
    );
  }
  const { runInitDevice } = await import('../../ops/init.js');
  const r = await runInitDevice({
    configPath: configFlag() ?? './permafrost.yaml',
    force: opts.force,
    vaultDir: opts.vault,
    mediaDir: opts.media,
    syncthingHome: opts.syncthingHome,
    syncthingUrl: opts.syncthingUrl,
    serverId: opts.serverId,
  });
  if (opts.json) return io.out(JSON.stringify(r, null, 2));
  printDevice(io, r);
}

/** What a device's config holds, and the four steps that connect it to the server. */
function printDevice(io: Io, r: InitDeviceResult): void {
  const cfg = r.configPath;
  io.out(`wrote ${cfg} (a backup device: Syncthing receiver, no database, no passphrase)`);
  io.out(`snapshots will arrive in ${r.vaultDir}, the server's media in ${r.mediaDir}`);
  io.out(
    `Syncthing: ${r.syncthingHome} (its config.xml holds the API key; change syncthing.home or set syncthing.apiKeyFile if it is elsewhere)`,
  );
  io.out(`retention (vault.keep): ${describePolicy(r.keep)}; the device's prune applies it to what it holds`);
  io.out('alerts (notify) and the status page (web) are written commented out: uncomment them to use them');
  io.out('');
  io.out('Next:');
  io.out(
    `  1. \`permafrost --config ${cfg} device-id\` prints this device's Syncthing ID: add it to the server's syncthing.devices, and run \`permafrost sync apply\` there`,
  );
  if (r.serverId === null) {
    io.out(
      `  2. add the server to syncthing.devices in ${cfg}: - { name: server, id: "<what \`permafrost device-id\` prints on the server>" }`,
    );
  } else {
    io.out(`  2. the server (${r.serverId}) is already in syncthing.devices`);
  }
  io.out(`  3. \`permafrost --config ${cfg} sync apply\` sets up this Syncthing: both folders receive-only, with versioning`);
  io.out(
    `  4. \`permafrost --config ${cfg} systemd --daemon --install\` runs the daemon: the hourly check, prune, and the alarm when the server stops sending`,
  );
}

/** `init --mastodon DIR`: the server's config from .env.production, refusing a device's flags. */
async function initServer(opts: InitFlags, { io, configFlag }: CommandContext): Promise<void> {
  const deviceOnly = (['media', 'syncthingHome', 'syncthingUrl', 'serverId'] as const).find((k) => opts[k] !== undefined);
  if (deviceOnly) throw new UserError(`${flag(deviceOnly)} is for a backup device's config; add --device, or leave it out.`);
  if (opts.mastodon === undefined) {
    throw new UserError(
      "init needs --mastodon DIR (the Mastodon folder holding .env.production) on the server, or --device for a backup device's config.",
    );
  }
  const { runInit } = await import('../../ops/init.js');
  const result = await runInit({
    mastodonDir: opts.mastodon,
    configPath: configFlag() ?? './permafrost.yaml',
    force: opts.force,
    vaultDir: opts.vault,
    generateKeysDir: opts.generateKeys,
    reusePassphraseFile: opts.passphraseFile,
    recipients: opts.recipients,
  });
  if (opts.json) return io.out(JSON.stringify(result, null, 2));
  io.out(`wrote ${result.configPath}`);
  for (const f of result.passwordFiles) io.out(`wrote ${f} (mode 0600)`);
  io.out(`snapshots will go to ${result.vaultDir}`);
  if (result.reusedKey) io.out(`the snapshots already there open with ${result.reusedKey}; new ones use the same key`);
  printAccess(io, result);
  io.out(
    `retention (vault.keep): ${describePolicy(result.keep)}; older snapshots are deleted after each backup (edit vault.keep to change it)`,
  );
  io.out(result.mediaDir ? `media to replicate: ${result.mediaDir} (without cache/)` : 'media: not replicated (object storage)');
  for (const n of result.notes) io.out(`note: ${n}`);
  io.out('');
  printKey(io, result);
  io.out('');
  printNext(io, result);
}

/** How the database is reached, and so which OS user runs permafrost. */
function printAccess(io: Io, result: InitResult): void {
  const a = result.access;
  if (a.method === 'peer') {
    io.out(
      `database: reached over the unix socket ${a.socket} without a password (peer authentication, Debian's and Mastodon's default): only the OS user ${a.osUser} connects as the role ${a.role}, so permafrost runs as ${a.osUser}`,
    );
    if (result.handedOver.length > 0) io.out(`gave ${result.handedOver.join(', ')} to ${a.osUser}`);
    if (result.peerMap) {
      const m = result.peerMap;
      io.out(
        `note: there is no OS user ${a.osUser} on this host: create it (\`useradd --system --user-group ${a.osUser}\`) and give it ${result.configPath}'s secrets, ` +
          `or let this user connect as ${a.role}: add \`${m.ident}\` to ${m.identFile}, and above the first \`local\` line of pg_hba.conf \`${m.hba}\`, then \`systemctl reload postgresql\`.`,
      );
    }
  } else if (a.method === 'password') {
    io.out(
      'database: reached with the password from .env.production (stored in the 0600 file above); any OS user that can read it connects',
    );
  } else {
    io.out(
      `database: reached over TCP (${a.host}) without a password in .env.production: PostgreSQL must let this user in by ~/.pgpass (PGPASSFILE) or a trust line; \`permafrost doctor\` checks it`,
    );
  }
}

/** The key snapshots are encrypted with, and what the admin must keep of it off the server. */
function printKey(io: Io, result: InitResult): void {
  if (result.keys) {
    const k = result.keys;
    io.out(
      `Snapshots are encrypted to the key ${k.recipientFingerprint} (${k.recipientPublic}); this server holds no secret that decrypts them.`,
    );
    io.out(
      `Its secret half was written once to ${k.recipientSecret} (mode 0600): move it off this server NOW (a USB stick, a password manager, the backup device), ` +
        'then `shred -u` it here. Without it no backup can ever be read; with it on the server, whoever takes the server reads every backup.',
    );
    io.out(
      `Manifests are signed by ${k.signingFingerprint} (${k.signingSecret}, stays here); give ${k.signerPublic} to every device as vault.signerKeyFile.`,
    );
    io.out(
      `Keep the signer's fingerprint ${k.signingFingerprint} with that secret key: a restore from a copy of the vault trusts only the manifests it signed ` +
        `(sh restore.sh --signer ${k.signingFingerprint} …, permafrost restore --signer ${k.signingFingerprint} …); \`permafrost doctor\` prints it again.`,
    );
  } else if (result.passphraseCreated && result.reusedKey) {
    io.out(`Wrote the passphrase you gave to ${result.passphraseFile} (mode 0400): old and new snapshots open with it.`);
  } else if (result.passphraseFile === null) {
    io.out('Snapshots are encrypted to the public keys of vault.recipients; this server holds no secret that decrypts them.');
  } else if (result.passphraseCreated) {
    io.out(
      `Created the passphrase file ${result.passphraseFile} (mode 0400). Every snapshot is encrypted with it, and ` +
        'without it no backup can ever be read: not by permafrost, not by gpg, not by anyone. Store a copy of it ' +
        'now somewhere off this server (a password manager, a printed sheet in a drawer), because a backup that ' +
        'dies with the server together with its only key is no backup.',
    );
  } else {
    io.out(`Kept the existing passphrase file ${result.passphraseFile}; make sure a copy of it is stored off this server.`);
  }
}

/** doctor, the first backup and the timers, as the OS user that reaches the database. */
function printNext(io: Io, result: InitResult): void {
  const cfg = result.configPath;
  const as = result.access.osUser !== null && result.access.switchUser ? `runuser -u ${result.access.osUser} -- ` : '';
  io.out(
    `Next: \`${as}permafrost --config ${cfg} doctor\` checks everything, then \`${as}permafrost --config ${cfg} backup\` takes the first snapshot` +
      (as ? `; \`permafrost --config ${cfg} systemd --install\` runs the backups as ${result.access.osUser} (the vault's owner).` : '.'),
  );
}
