import { progress } from '../progress.js';
import { examples, type RegisterCommand } from '../context.js';
import { withRunContext } from '../run.js';
import { formatBytes } from '../../format.js';

export const registerBackup: RegisterCommand = (program, { io, config }) => {
  program
    .command('backup')
    .description('Capture the database into a new encrypted snapshot in vault.dir.')
    .option('--json', 'print the manifest as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost backup',
        'permafrost backup --json | jq .files',
        '# with database.delta in the config: a base, then snapshots of what changed',
        'permafrost backup --json | jq .chain.kind',
      ]),
    )
    .action(async (opts: { json?: boolean }) => {
      const cfg = config();
      const { runBackupJob } = await import('../../ops/runs.js');
      const shown = progress(io, 'backup', { json: opts.json });
      // Alerts go out after the run; an alert receiver that is down only adds warnings.
      const result = await withRunContext(io, shown.events, (ctx) => runBackupJob(cfg, ctx)).finally(() => shown.done());
      for (const w of result.warnings) io.err(`warning: ${w}`);
      if (opts.json) return io.out(JSON.stringify(result.manifest, null, 2));
      const size = result.manifest.files.reduce((s, f) => s + f.bytes, 0);
      const secs = (Date.parse(result.manifest.finishedAt) - Date.parse(result.manifest.startedAt)) / 1000;
      const chain = result.manifest.chain;
      const kind = chain
        ? chain.kind === 'base'
          ? ` (a base: ${chain.reason ?? 'due'})`
          : ` (a delta on ${chain.reference}, ${chain.depth} after its base)`
        : '';
      io.out(`snapshot ${result.manifest.id}${kind} written to ${result.dir} (${formatBytes(size)} in ${secs.toFixed(1)}s)`);
      const pruned = result.pruned?.removed ?? [];
      if (pruned.length > 0)
        io.out(`pruned ${pruned.length} old snapshot${pruned.length > 1 ? 's' : ''} (vault.keep): ${pruned.join(', ')}`);
    });
};
