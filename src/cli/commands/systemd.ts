import { realpathSync } from 'node:fs';
import { Option } from 'commander';
import { UserError } from '../../errors.js';
import {
  CHECK_UNIT_NAME,
  DAEMON_UNIT_NAME,
  DEFAULT_UNIT_DIR,
  initSystemProblem,
  UNIT_NAME,
  VERIFY_UNIT_NAME,
} from '../../schedule/systemd.js';
import { examples, type CommandContext, type RegisterCommand } from '../context.js';
import type { Io } from '../run.js';
import type { SystemdUnits } from '../../ops/systemd-units.js';

/** How this very CLI was started: the node binary and the script, both absolute. */
function selfCommand(): string[] {
  const script = process.argv[1];
  return script ? [process.execPath, realpathSync(script)] : [process.execPath];
}

/** Where the PID-1 check reads /proc: only tests point it elsewhere. */
const PROC_DIR_ENV = 'PERMAFROST_TEST_PROC_DIR';

interface Opts {
  install?: boolean;
  output?: string;
  unitDir: string;
  user?: string;
  metricsTextfile?: string;
  daemon?: boolean;
  json?: boolean;
}

export const registerSystemd: RegisterCommand = (program, ctx) => {
  program
    .command('systemd')
    .description(
      `Print (or with --install, write) systemd units. With --daemon: ${DAEMON_UNIT_NAME}.service, which runs \`permafrost daemon\` ` +
        '(server or backup device: a device needs it for its dead-man alarm; `systemctl reload` makes it read its config again). ' +
        `Without: timers instead of the daemon, ${UNIT_NAME}.service/.timer (Type=oneshot, runs \`permafrost backup\` on schedule.backup), ` +
        `${VERIFY_UNIT_NAME}.service/.timer (\`permafrost verify\` on schedule.verify) and ${CHECK_UNIT_NAME}.service/.timer ` +
        '(`permafrost check` on schedule.check), OnCalendar= in schedule.timezone; on a device only check (and verify with verify.connection). ' +
        'The units run `permafrost` as found on PATH (scripts/install.sh puts it there), ' +
        'as the owner of vault.dir (or --user), with ProtectSystem=strict and write access to the vault only; runs alert through notify.* themselves. ' +
        '--install refuses (exit 2) where PID 1 is not systemd; --output DIR writes the units anyway (to copy to another host or an image).',
    )
    .option('--daemon', `one ${DAEMON_UNIT_NAME}.service running \`permafrost daemon\` instead of timers`)
    .addOption(
      new Option('--install', `write the units into --unit-dir (default ${DEFAULT_UNIT_DIR}); only where systemd runs`).conflicts('output'),
    )
    .option('--unit-dir <dir>', 'where --install writes the units', DEFAULT_UNIT_DIR)
    .option('--output <dir>', 'write the units into this folder, whatever init system runs here')
    .option('--user <name>', 'account the units run as (default: the owner of vault.dir)')
    .option(
      '--metrics-textfile <path>',
      "timers only: after every run, rewrite this .prom file for node_exporter's textfile collector (`permafrost metrics --textfile`)",
    )
    .option('--json', 'print the units as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost systemd',
        'sudo permafrost --config /etc/permafrost/permafrost.yaml systemd --daemon --install',
        `sudo systemctl daemon-reload && sudo systemctl enable --now ${DAEMON_UNIT_NAME}.service`,
        'sudo permafrost --config /etc/permafrost/permafrost.yaml systemd --install',
        'sudo permafrost systemd --install --metrics-textfile /var/lib/prometheus/node-exporter/permafrost.prom',
        `sudo systemctl daemon-reload && sudo systemctl enable --now ${UNIT_NAME}.timer ${VERIFY_UNIT_NAME}.timer ${CHECK_UNIT_NAME}.timer`,
        'permafrost systemd --daemon --output ./units    # for another host',
        `systemctl list-timers 'permafrost-*'`,
      ]),
    )
    .action((opts: Opts) => writeOrPrintUnits(opts, ctx));
};

/** The units for this config: printed, or written into --output / --unit-dir with what to run next. */
async function writeOrPrintUnits(opts: Opts, { io, config }: CommandContext): Promise<void> {
  const cfg = config();
  const { installedCommand, installUnits, systemdUnitsFor } = await import('../../ops/systemd-units.js');
  const { command, warning } = installedCommand(process.env.PATH, selfCommand());
  const units = await systemdUnitsFor(cfg, { user: opts.user, command, metricsTextfile: opts.metricsTextfile, daemon: opts.daemon });
  if (opts.install) {
    const problem = initSystemProblem(process.env[PROC_DIR_ENV] ?? '/proc');
    if (problem) {
      throw new UserError(
        `--install: ${problem}, so units in ${opts.unitDir} would never run; run \`permafrost daemon\` under this host's own service manager, or pass --output DIR to write the units for a host that runs systemd.`,
      );
    }
  }
  for (const w of [...(warning ? [warning] : []), ...units.warnings]) io.err(`warning: ${w}`);
  const dir = opts.install ? opts.unitDir : opts.output;
  if (dir !== undefined) {
    const written = await installUnits(dir, units.files);
    if (opts.json) return io.out(JSON.stringify({ ...units, written }, null, 2));
    return printWritten(io, units, written, opts.install === true);
  }
  if (opts.json) return io.out(JSON.stringify(units, null, 2));
  for (const [name, text] of Object.entries(units.files)) {
    io.out(`# ----- ${name} -----`);
    io.out(text);
  }
}

/** What was written, who the jobs run as and when, and the systemctl line that starts them. */
function printWritten(io: Io, units: SystemdUnits, written: string[], installed: boolean): void {
  for (const file of written) io.out(`wrote ${file}`);
  const enable =
    units.mode === 'daemon'
      ? `${DAEMON_UNIT_NAME}.service`
      : Object.keys(units.files)
          .filter((f) => f.endsWith('.timer'))
          .join(' ');
  const schedules = [
    units.onCalendar ? `backup on OnCalendar=${units.onCalendar}` : '',
    units.verifyOnCalendar ? `verify on OnCalendar=${units.verifyOnCalendar}` : '',
    units.checkOnCalendar ? `check on OnCalendar=${units.checkOnCalendar}` : '',
  ].filter(Boolean);
  io.out(units.mode === 'daemon' ? `the daemon runs as ${units.user}.` : `the jobs run as ${units.user}: ${schedules.join(', ')}.`);
  if (!installed) io.out(`Copy them into ${DEFAULT_UNIT_DIR} on the host that runs them, then run:`);
  else io.out('Now run:');
  io.out(`  systemctl daemon-reload && systemctl enable --now ${enable}`);
}
