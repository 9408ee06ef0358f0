import { realpathSync } from 'node:fs';
import { DEFAULT_UNIT_DIR, UNIT_NAME, VERIFY_UNIT_NAME } from '../../schedule/systemd.js';
import { examples, type RegisterCommand } from '../context.js';

/** How this very CLI was started: the node binary and the script, both absolute. */
function selfCommand(): string[] {
  const script = process.argv[1];
  return script ? [process.execPath, realpathSync(script)] : [process.execPath];
}

export const registerSystemd: RegisterCommand = (program, { io, config }) => {
  program
    .command('systemd')
    .description(
      `Print (or with --install, write) ${UNIT_NAME}.service/.timer (Type=oneshot, runs \`permafrost backup\` on schedule.backup) and ` +
        `${VERIFY_UNIT_NAME}.service/.timer (runs \`permafrost verify\` on schedule.verify), OnCalendar= in schedule.timezone, ` +
        'for hosts that prefer systemd timers to `permafrost daemon`. The units run `permafrost` as found on PATH (scripts/install.sh puts it there), ' +
        'as the owner of vault.dir (or --user), with ProtectSystem=strict and write access to the vault only; runs alert through notify.* themselves.',
    )
    .option('--install', `write the units into --unit-dir (default ${DEFAULT_UNIT_DIR})`)
    .option('--unit-dir <dir>', 'where --install writes the units', DEFAULT_UNIT_DIR)
    .option('--user <name>', 'account the backup runs as (default: the owner of vault.dir)')
    .option(
      '--metrics-textfile <path>',
      "after every run, rewrite this .prom file for node_exporter's textfile collector (`permafrost metrics --textfile`)",
    )
    .option('--json', 'print the units as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost systemd',
        'sudo permafrost --config /etc/permafrost/permafrost.yaml systemd --install',
        'sudo permafrost systemd --install --metrics-textfile /var/lib/prometheus/node-exporter/permafrost.prom',
        `sudo systemctl daemon-reload && sudo systemctl enable --now ${UNIT_NAME}.timer ${VERIFY_UNIT_NAME}.timer`,
        `systemctl list-timers 'permafrost-*'`,
      ]),
    )
    .action(async (opts: { install?: boolean; unitDir: string; user?: string; metricsTextfile?: string; json?: boolean }) => {
      const cfg = config();
      const { installedCommand, installUnits, systemdUnitsFor } = await import('../../jobs/systemd-units.js');
      const { command, warning } = installedCommand(process.env.PATH, selfCommand());
      const units = await systemdUnitsFor(cfg, { user: opts.user, command, metricsTextfile: opts.metricsTextfile });
      if (warning) io.err(`warning: ${warning}`);
      if (opts.install) {
        const written = await installUnits(opts.unitDir, units.files);
        if (opts.json) return io.out(JSON.stringify({ ...units, written }, null, 2));
        for (const file of written) io.out(`wrote ${file}`);
        io.out(`backup runs as ${units.user} on OnCalendar=${units.onCalendar}, verify on OnCalendar=${units.verifyOnCalendar}. Now run:`);
        io.out(`  systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}.timer ${VERIFY_UNIT_NAME}.timer`);
        return;
      }
      if (opts.json) return io.out(JSON.stringify(units, null, 2));
      for (const [name, text] of Object.entries(units.files)) {
        io.out(`# ----- ${name} -----`);
        io.out(text);
      }
    });
};
