import { realpathSync } from 'node:fs';
import { DEFAULT_UNIT_DIR, installUnits, systemdUnitsFor } from '../../jobs/systemd-units.js';
import { UNIT_NAME } from '../../schedule/systemd.js';
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
      `Print (or with --install, write) a ${UNIT_NAME}.service (Type=oneshot, runs \`permafrost backup\`) and ${UNIT_NAME}.timer ` +
        '(OnCalendar= translated from schedule.backup, in schedule.timezone), for hosts that prefer systemd timers to `permafrost daemon`. ' +
        'The service runs as the owner of vault.dir (or --user), with ProtectSystem=strict and write access to the vault only.',
    )
    .option('--install', `write the units into --unit-dir (default ${DEFAULT_UNIT_DIR})`)
    .option('--unit-dir <dir>', 'where --install writes the units', DEFAULT_UNIT_DIR)
    .option('--user <name>', 'account the backup runs as (default: the owner of vault.dir)')
    .option('--json', 'print the units as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost systemd',
        'sudo permafrost --config /etc/permafrost/permafrost.yaml systemd --install',
        `sudo systemctl daemon-reload && sudo systemctl enable --now ${UNIT_NAME}.timer`,
        `systemctl list-timers ${UNIT_NAME}.timer`,
      ]),
    )
    .action(async (opts: { install?: boolean; unitDir: string; user?: string; json?: boolean }) => {
      const cfg = config();
      const units = await systemdUnitsFor(cfg, { user: opts.user, command: selfCommand() });
      if (opts.install) {
        const written = await installUnits(opts.unitDir, units.files);
        if (opts.json) return io.out(JSON.stringify({ ...units, written }, null, 2));
        for (const file of written) io.out(`wrote ${file}`);
        io.out(`backup runs as ${units.user} on OnCalendar=${units.onCalendar}. Now run:`);
        io.out(`  systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}.timer`);
        return;
      }
      if (opts.json) return io.out(JSON.stringify(units, null, 2));
      for (const [name, text] of Object.entries(units.files)) {
        io.out(`# ----- ${name} -----`);
        io.out(text);
      }
    });
};
