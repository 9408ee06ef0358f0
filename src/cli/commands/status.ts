import { examples, type RegisterCommand } from '../context.js';

export const registerStatus: RegisterCommand = (program, { io, config }) => {
  program
    .command('status')
    .description(
      'The one judgement of health, as the status page and /metrics (permafrost_healthy) show it: the newest snapshot and its age, its verify and check results, the last backup run, ' +
        'each Syncthing device (connection, completion, lag), the next scheduled runs, disk and growth. On a backup device: the newest snapshot held complete here, when it arrived, and the disk its copies use. ' +
        'Exits 1 naming each problem with its fix: a failed last backup, a newest snapshot without a required part, a failed check or verify, a damaged snapshot, ' +
        'a newest snapshot older than syncthing.staleAfter (default 2h), a device lacking a snapshot older than that, Syncthing unreachable, a paused folder, folder errors, locally changed files. ' +
        'Warnings (no vault.keep, no off-site copy, no verify for 7 days, a disk full within 7 days) are printed and do not fail it.',
    )
    .option('--json', 'print the status as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost status',
        'permafrost status --json | jq ".devices[] | {name, lagSeconds}"',
        'permafrost status || echo "permafrost needs attention"',
        'permafrost status --json | jq ".issues[] | {code, severity}"',
        'permafrost status --json | jq ".device.disk"            # on a backup device',
      ]),
    )
    .action(async (opts: { json?: boolean }) => {
      const cfg = config();
      const [{ gatherOverview, judge, isHealthy }, { replicationReaderFor }, { statusJson, renderHuman, healthFailure }] =
        await Promise.all([import('../../ops/overview.js'), import('../../ops/watch.js'), import('../status-render.js')]);
      const o = await gatherOverview(cfg, { replication: replicationReaderFor(cfg) });
      const problems = judge(o);
      if (opts.json) io.out(JSON.stringify(statusJson(o, problems), null, 2));
      else renderHuman(io, o, problems);
      if (!isHealthy(problems)) throw healthFailure(problems);
    });
};
