import { describeReason } from '../../vault/retention.js';
import { examples, type RegisterCommand } from '../context.js';
import { cliNotifyLog } from '../notify-log.js';

export const registerPrune: RegisterCommand = (program, { io, config }) => {
  program
    .command('prune')
    .description(
      'Apply the retention policy vault.keep: list what is kept and why, delete the other snapshots. ' +
        'Periods (hour, day, ISO week, month, year) are counted in schedule.timezone, only where a snapshot exists, as restic does. ' +
        'The newest snapshot, the newest verified-good one, snapshots dated in the future, snapshots in progress and anything that is not a snapshot folder are never deleted; ' +
        'within a period a verified-good snapshot is kept rather than a newer unverified one. ' +
        'A kept delta snapshot (database.delta) keeps its whole chain back to its base, shown as "needed by <id>". Without vault.keep nothing is deleted.',
    )
    .option('--dry-run', 'only show what would be deleted')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost prune --dry-run',
        'permafrost prune',
        'permafrost prune --json | jq -r ".removed[]"',
        'permafrost prune --json | jq -r \'.kept[] | select(.reasons[0].rule == "needed") | .id\'   # kept only for a chain',
        '# in permafrost.yaml:  vault: { keep: { last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 } }',
      ]),
    )
    .action(async (opts: { dryRun?: boolean; json?: boolean }) => {
      const cfg = config();
      const [{ runPrune }, { sweepAndReport }, { readJobSecrets }] = await Promise.all([
        import('../../ops/prune.js'),
        import('../../recover/sweep.js'),
        import('../../ops/secrets.js'),
      ]);
      if (!opts.dryRun) await sweepAndReport(cfg, cliNotifyLog(io), readJobSecrets(cfg));
      const result = await runPrune(cfg, { dryRun: opts.dryRun });
      if (opts.json) return io.out(JSON.stringify(result, null, 2));
      if (!result.policy) {
        return io.out(
          `no policy: everything is kept (${result.kept.length} snapshot${result.kept.length === 1 ? '' : 's'}); set vault.keep, e.g. \`keep: { last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 }\`, before the disk fills.`,
        );
      }
      for (const k of result.kept) io.out(`keep    ${k.id}  ${k.reasons.map(describeReason).join(', ')}`);
      for (const id of result.removed) io.out(`${result.dryRun ? 'would delete' : 'delete'}  ${id}`);
      for (const i of result.ignored) io.out(`skip    ${i.id}  (${i.problem})`);
      const verb = result.dryRun ? 'would delete' : 'deleted';
      io.out(
        `${result.kept.length} kept, ${result.removed.length} ${verb}${result.ignored.length ? `, ${result.ignored.length} unreadable left alone` : ''} (periods in ${result.timezone})`,
      );
    });
};
