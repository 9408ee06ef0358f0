import { Option } from 'commander';
import { runRestore } from '../../jobs/restore.js';
import { examples, type RegisterCommand } from '../context.js';
import { formatBytes } from '../run.js';

interface RestoreFlags {
  database: string;
  force?: boolean;
  jobs?: number;
  owner: boolean;
  json?: boolean;
}

export const registerRestore: RegisterCommand = (program, { io, config }) => {
  program
    .command('restore')
    .description('Verify a snapshot completely, then restore its database with pg_restore --clean --if-exists.')
    .argument('[snapshot]', 'snapshot id, or "latest"', 'latest')
    .requiredOption('--database <name>', 'target database (created when missing)')
    .option('--force', 'replace the contents of a database that already holds tables')
    .addOption(new Option('-j, --jobs <n>', 'parallel pg_restore jobs').argParser((v) => Number.parseInt(v, 10)))
    .option('--no-owner', 'do not restore object ownership (when the original roles do not exist here)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost restore latest --database mastodon_restored',
        'permafrost restore 2026-11-26T07-40-00Z --database mastodon_production --force --jobs 2',
      ]),
    )
    .action(async (snapshot: string, opts: RestoreFlags) => {
      const result = await runRestore(config(), {
        snapshot,
        database: opts.database,
        force: opts.force,
        jobs: opts.jobs,
        noOwner: !opts.owner,
        events: { phase: (p) => (!opts.json ? io.err(`restore: ${p}…`) : undefined) },
      });
      if (opts.json) return io.out(JSON.stringify(result, null, 2));
      io.out(
        `restored snapshot ${result.snapshot} into database "${result.database}"${result.created ? ' (created)' : ''}: ` +
          `${formatBytes(result.bytes)} archive, verified in ${(result.decryptMs / 1000).toFixed(1)}s, ` +
          `restored in ${(result.restoreMs / 1000).toFixed(1)}s`,
      );
    });
};
