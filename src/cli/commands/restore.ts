import { Option } from 'commander';
import { runRestore } from '../../recover/restore.js';
import { describeSession } from '../../recover/restore-database.js';
import { examples, positiveInt, withStopSignal, type RegisterCommand } from '../context.js';
import { identityOptions, secretFlags } from '../identity.js';
import { cliNotifyLog } from '../notify-log.js';
import { sweepAndReport } from '../../recover/sweep.js';
import { progress } from '../progress.js';
import { formatBytes } from '../../format.js';

interface RestoreFlags {
  database?: string;
  redis?: string;
  secrets?: string;
  force?: boolean;
  terminateSessions?: boolean;
  jobs?: number;
  owner: boolean;
  passphraseFile?: string;
  identity?: string;
  identityPassphraseFile?: string;
  json?: boolean;
}

export const registerRestore: RegisterCommand = (program, { io, config }) => {
  identityOptions(program.command('restore'))
    .description(
      'Verify a snapshot completely, then restore its database with pg_restore --clean --if-exists, and/or write its Redis RDB and .env.production to files (mode 0600).',
    )
    .argument('[snapshot]', 'snapshot id, or "latest"', 'latest')
    .option('--database <name>', 'target database (created when missing)')
    .option('--redis <file>', 'write the decrypted Redis RDB here (never overwrites)')
    .option('--secrets <file>', 'write the decrypted .env.production here (never overwrites)')
    .option('--force', 'replace the contents of a database that already holds tables')
    .option(
      '--terminate-sessions',
      'end other sessions on the target database right before pg_restore runs (without it, restore refuses a database in use)',
    )
    .addOption(new Option('-j, --jobs <n>', 'parallel pg_restore jobs').argParser(positiveInt('--jobs 2')))
    .option('--no-owner', 'do not restore object ownership (when the original roles do not exist here)')
    .option(
      '--passphrase-file <file>',
      'the vault passphrase (a 0600 file), instead of vault.passphraseFile: for a backup device that keeps none',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost restore latest --database mastodon_restored',
        'permafrost restore 2026-11-26T07-40-00Z --database mastodon_production --force --jobs 2',
        'permafrost restore latest --redis /root/dump.rdb --secrets /root/env.production',
        'permafrost restore latest --database mastodon_production --force --terminate-sessions   # Mastodon still connected',
        'PGHOST=/var/run/postgresql permafrost restore latest --database mastodon_production --passphrase-file /media/usb/passphrase   # on a backup device',
        'permafrost restore latest --database mastodon_restored --identity /media/usb/permafrost-secret.asc   # encrypted to vault.recipients',
      ]),
    )
    .action(async (snapshot: string, opts: RestoreFlags) => {
      const cfg = config();
      await sweepAndReport(cfg, cliNotifyLog(io));
      const shown = progress(io, 'restore', { json: opts.json });
      const result = await withStopSignal((signal) =>
        runRestore(cfg, {
          snapshot,
          database: opts.database,
          redis: opts.redis,
          secrets: opts.secrets,
          force: opts.force,
          terminateSessions: opts.terminateSessions,
          jobs: opts.jobs,
          noOwner: !opts.owner,
          ...secretFlags(io, opts),
          events: shown.events,
          signal,
        }),
      ).finally(() => shown.done());
      const db = result.database;
      if (opts.json) {
        return io.out(
          JSON.stringify(
            { ...(db ?? { snapshot: result.snapshot, database: null }), files: result.files, nextSteps: result.nextSteps },
            null,
            2,
          ),
        );
      }
      for (const f of result.files)
        io.out(`wrote the ${f.part} part of snapshot ${result.snapshot} to ${f.path} (${formatBytes(f.bytes)}, mode 0600)`);
      if (db) {
        for (const s of db.terminatedSessions) io.out(`ended session ${describeSession(s)} on "${db.database}"`);
        io.out(
          `restored snapshot ${db.snapshot} into database "${db.database}"${db.created ? ' (created)' : ''}: ` +
            `${formatBytes(db.bytes)} archive, verified in ${(db.decryptMs / 1000).toFixed(1)}s, ` +
            `restored in ${(db.restoreMs / 1000).toFixed(1)}s`,
        );
      }
      io.out('');
      io.out('To bring the whole server back:');
      result.nextSteps.forEach((step, i) => io.out(`  ${i + 1}. ${step}`));
    });
};
