import { examples, type RegisterCommand } from '../context.js';

export const registerMetrics: RegisterCommand = (program, { io, config }) => {
  program
    .command('metrics')
    .description(
      "Print Prometheus metrics computed from the vault (snapshots, sizes, durations, verify results, alert delivery failures), or write them atomically for node_exporter's textfile collector.",
    )
    .option('--textfile <path>', 'write to this .prom file (atomically) instead of stdout')
    .addHelpText(
      'after',
      examples([
        'permafrost metrics',
        'permafrost metrics --textfile /var/lib/prometheus/node-exporter/permafrost.prom',
        '# after each backup from systemd:  ExecStartPost=/usr/bin/permafrost metrics --textfile …/permafrost.prom',
      ]),
    )
    .action(async (opts: { textfile?: string }) => {
      const cfg = config();
      const [{ collectMetrics }, { replicationReaderFor }] = await Promise.all([
        import('../../jobs/metrics.js'),
        import('../../jobs/watch.js'),
      ]);
      const result = await collectMetrics(cfg, { textfile: opts.textfile, replication: replicationReaderFor(cfg) });
      if (result.written) io.err(`metrics written to ${result.written}`);
      else io.out(result.text.trimEnd());
    });
};
