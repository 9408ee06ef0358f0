import { Option, type Command } from 'commander';
import type { RestoreResult } from '../../ops/restore.js';
import type { DatabaseRestoreResult, TargetSession } from '../../recover/restore-database.js';
import type { Io } from '../run.js';
import {
  bucketOptions,
  examples,
  onVault,
  positiveInt,
  vaultConfig,
  VAULT_OPTION,
  type BucketOptionValues,
  type RegisterCommand,
} from '../context.js';
import { agentOption, identityOptions, secretFlags } from '../identity.js';
import { progress } from '../progress.js';
import { formatBytes } from '../../format.js';

interface RestoreFlags extends BucketOptionValues {
  gpgAgent?: boolean;
  database?: string;
  redis?: string;
  secrets?: string;
  media?: string;
  mediaFrom?: string;
  all?: string;
  force?: boolean;
  dropPrevious?: boolean;
  role?: string;
  vault?: string;
  terminateSessions?: boolean;
  jobs?: number;
  owner: boolean;
  passphraseFile?: string;
  identity?: string;
  identityPassphraseFile?: string;
  json?: boolean;
  signer?: string;
  insecureNoSignatureCheck?: boolean;
}

export const registerRestore: RegisterCommand = (program, { io, config }) => {
  const cmd = bucketOptions(agentOption(identityOptions(program.command('restore'))))
    .description(
      'Verify a snapshot completely (a delta snapshot: its whole chain back to the base), restore its database into <target>_incoming, check it against the manifest and swap it in ' +
        '(roles and owner created when missing, the previous database kept under <target>_before_<date>), and/or write its Redis RDB, ' +
        '.env.production (mode 0600) and media folder. A failed run leaves everything as it was and can be run again.',
    )
    .argument('[snapshot]', 'snapshot id, or "latest"', 'latest');
  // In the order --help lists them, as before they were grouped.
  trustOptions(safetyOptions(targetOptions(cmd)))
    .option(...VAULT_OPTION)
    .option('--json', 'print the result as JSON (the steps before it start go to stderr)')
    .addHelpText(
      'after',
      examples([
        'permafrost restore latest --database mastodon_restored',
        'permafrost restore 2026-11-26T07-40-00Z --database mastodon_production --force --jobs 2',
        'permafrost restore latest --redis /root/dump.rdb --secrets /root/env.production',
        'permafrost restore latest --database mastodon_production --force --terminate-sessions   # Mastodon still connected',
        'permafrost restore latest --database mastodon_production --force --drop-previous',
        'permafrost restore latest --database mastodon_production --no-owner --role mastodon',
        'PGHOST=/var/run/postgresql permafrost restore latest --vault /media/usb/permafrost --passphrase-file /root/passphrase   # no config file',
        'permafrost restore latest --vault /media/usb/permafrost --identity /root/secret.asc --signer 0123456789ABCDEF0123456789ABCDEF01234567   # a signed vault',
        'permafrost restore latest --vault /srv/syncthing/vault --passphrase-file /root/passphrase --all /root/restore --media-from /srv/syncthing/media',
        'runuser -u postgres -- permafrost restore --vault /srv/copy --passphrase-file - < /root/passphrase   # peer authentication: as postgres',
        'permafrost restore latest --database mastodon_restored --identity /media/usb/permafrost-secret.asc   # encrypted to vault.recipients',
        'permafrost restore latest --database mastodon_restored --gpg-agent   # the recipient key is in your own gpg keyring',
        'permafrost restore 2026-11-26T13-00-00Z --database mastodon_restored   # a delta snapshot: its base, then each delta up to it',
        'AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… permafrost restore latest --vault s3://my-bucket/permafrost --endpoint https://s3.example.com --passphrase-file - < /root/passphrase   # a fresh machine: the bucket and the key, no config',
      ]),
    )
    .action(async (snapshot: string, opts: RestoreFlags) => {
      const cfg = vaultConfig(config, opts);
      const [{ runRestore }, { describeSession }] = await Promise.all([
        import('../../ops/restore.js'),
        import('../../recover/restore-database.js'),
      ]);
      const shown = progress(io, 'restore', { json: opts.json });
      const result = await onVault(io, cfg, opts, snapshot, shown.events, (vaultCfg, id, ctx) =>
        runRestore(vaultCfg, ctx, {
          snapshot: id,
          database: opts.database,
          redis: opts.redis,
          secrets: opts.secrets,
          media: opts.media,
          mediaFrom: opts.mediaFrom,
          all: opts.all,
          force: opts.force,
          dropPrevious: opts.dropPrevious,
          role: opts.role,
          terminateSessions: opts.terminateSessions,
          jobs: opts.jobs,
          noOwner: !opts.owner,
          signer: opts.signer,
          insecureNoSignatureCheck: opts.insecureNoSignatureCheck,
          ...secretFlags(io, opts),
        }),
      ).finally(() => shown.done());
      for (const w of result.warnings) io.err(`warning: ${w}`);
      const say = (line: string): void => (opts.json ? io.err(line) : io.out(line));
      if (opts.json) {
        printNextSteps(say, result);
        return io.out(
          JSON.stringify(
            { ...(result.database ?? { snapshot: result.snapshot, database: null }), files: result.files, nextSteps: result.nextSteps },
            null,
            2,
          ),
        );
      }
      printFiles(io, result);
      if (result.database) printDatabase(io, result.database, describeSession);
      printNextSteps(say, result);
    });
};

/** Where each part goes: --database, --redis, --secrets, --media (and where from), or --all. */
function targetOptions(cmd: Command): Command {
  return cmd
    .option('--database <name>', "target database (default: the snapshot's, when no file is asked for, or with --all)")
    .option('--redis <file>', 'write the decrypted Redis RDB here')
    .option('--secrets <file>', 'write the decrypted .env.production here')
    .option('--media <dir>', 'put the media folder (public/system, without cache/) here, copied from --media-from or media.dir')
    .option('--media-from <dir>', "the media copy to restore from (e.g. the backup device's Syncthing media folder)")
    .option(
      '--all <dir>',
      'everything under DIR: dump.rdb, env.production, system/ (media with --media-from or media.dir), and the database',
    );
}

/** What the restore may replace, end or leave out: --force and what goes with it, --jobs, the roles. */
function safetyOptions(cmd: Command): Command {
  return cmd
    .option('--force', 'replace a database that holds tables, and existing files and folders (atomically)')
    .option('--drop-previous', 'with --force: drop the previous database after the swap instead of keeping it under <target>_before_<date>')
    .option(
      '--terminate-sessions',
      'end other sessions on the target database right before the swap (without it, restore refuses a database in use)',
    )
    .addOption(new Option('-j, --jobs <n>', 'parallel pg_restore jobs').argParser(positiveInt('--jobs 2')))
    .option('--no-owner', "do not restore the snapshot's roles, object ownership and grants (pg_restore --no-owner --no-acl)")
    .option(
      '--role <name>',
      "with --no-owner: the existing role that owns every restored object and the database (as Mastodon's migration guide does)",
    );
}

/** The key that opens the vault and the signer its manifests must come from. */
function trustOptions(cmd: Command): Command {
  return cmd
    .option(
      '--passphrase-file <file>',
      'the vault passphrase (a 0600 file, or - to read it from standard input), instead of vault.passphraseFile: for a backup device that keeps none',
    )
    .option(
      '--signer <fingerprint>',
      "the signing key's fingerprint (40 hex digits, printed by init and doctor): every manifest read must be signed by it; the trust anchor of a signed vault on a machine without vault.signerKeyFile",
    )
    .option(
      '--insecure-no-signature-check',
      'restore a signed vault without checking who signed its manifests (only when you know the copy is yours)',
    );
}

/** The steps around the restore, only once it succeeded: a refused restore has nothing to follow up. */
function printNextSteps(say: (line: string) => void, result: RestoreResult): void {
  say('');
  say('To bring the whole server back (with Mastodon stopped while you put each piece in place):');
  result.nextSteps.forEach((step, i) => say(`  ${i + 1}. ${step}`));
}

/** Each file part and the media folder: written, replaced, or already in place. */
function printFiles(io: Io, result: RestoreResult): void {
  for (const f of result.files) {
    const what = f.part === 'media' ? 'media folder' : `${f.part} part`;
    const how = f.unchanged ? 'already in place (identical)' : f.replaced ? 'replaced' : 'written';
    io.out(`${what} of snapshot ${result.snapshot} ${how}: ${f.path} (${formatBytes(f.bytes)}${f.part === 'media' ? '' : ', mode 0600'})`);
  }
}

/** The database: roles made, sessions ended, the swap, and the previous database kept or dropped. */
function printDatabase(io: Io, db: DatabaseRestoreResult, describeSession: (s: TargetSession) => string): void {
  if (db.rolesCreated.length > 0) io.out(`created role${db.rolesCreated.length > 1 ? 's' : ''} ${db.rolesCreated.join(', ')}`);
  if (db.rolesNote) io.out(`roles: ${db.rolesNote}`);
  for (const role of db.rolesWithoutPassword) {
    const q = `"${role.replace(/"/g, '""')}"`;
    io.out(
      `role ${role} came back without a password (the snapshot holds none: the backup's role could not read pg_authid, or it had none); ` +
        `if Mastodon connects with DB_PASS, set it as a superuser: ALTER ROLE ${q} PASSWORD '…';  (or \`runuser -u postgres -- psql -c '\\password ${role}'\`)`,
    );
  }
  for (const s of db.terminatedSessions) io.out(`ended session ${describeSession(s)} on "${db.database}"`);
  io.out(
    `restored snapshot ${db.snapshot} into database "${db.database}"${db.created ? ' (created)' : ''}: ` +
      `${formatBytes(db.bytes)} archive, verified in ${(db.decryptMs / 1000).toFixed(1)}s, ` +
      `restored and checked in ${(db.restoreMs / 1000).toFixed(1)}s`,
  );
  if (db.previous?.dropped) io.out(`the previous database was dropped (--drop-previous)`);
  else if (db.previous)
    io.out(`the previous database is kept as "${db.previous.name}"; once you no longer need it: dropdb ${db.previous.name}`);
}
