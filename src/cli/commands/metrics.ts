import { examples, type RegisterCommand } from '../context.js';

export const registerMetrics: RegisterCommand = (program, { io, config }) => {
  program
    .command('metrics')
    .description(
      "Print Prometheus metrics computed from the vault (permafrost_healthy: the same judgement as `permafrost status`; snapshots, sizes, durations, verify and check results, growth, alert delivery failures), or write them atomically for node_exporter's textfile collector.",
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
      const [{ writeMetricsTextfile }, { replicationReaderFor }, { gatherOverview, judge }, { renderMetrics }] = await Promise.all([
        import('../../ops/metrics.js'),
        import('../../ops/watch.js'),
        import('../../ops/overview.js'),
        import('../../web/prometheus.js'),
      ]);
      const o = await gatherOverview(cfg, { replication: replicationReaderFor(cfg) });
      const text = await renderMetrics(o, judge(o));
      if (opts.textfile) io.err(`metrics written to ${await writeMetricsTextfile(opts.textfile, text)}`);
      else io.out(text.trimEnd());
    });
};
