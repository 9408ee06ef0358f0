import { PermafrostError } from '../../errors.js';
import { examples, type RegisterCommand } from '../context.js';

const LABEL = { ok: 'OK  ', warn: 'WARN', fail: 'FAIL' } as const;

export const registerDoctor: RegisterCommand = (program, { io, configFlag }) => {
  program
    .command('doctor')
    .description(
      'Check everything a backup needs (config, passphrase, PostgreSQL, Redis, vault, media, Syncthing) and say what to fix; ' +
        'on a backup device, what a device needs instead (its folder and free space, Syncthing, the last check, freshness against syncthing.staleAfter).',
    )
    .option('--json', 'print the checks as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost doctor',
        'permafrost --config /etc/permafrost/device.yaml doctor   # on the backup device',
        'permafrost --config /etc/permafrost/permafrost.yaml doctor --json | jq \'.lines[] | select(.status != "ok")\'',
      ]),
    )
    .action(async (opts: { json?: boolean }) => {
      const { runDoctor } = await import('../../ops/doctor.js');
      const report = await runDoctor({ configFlag: configFlag() });
      if (opts.json) io.out(JSON.stringify(report, null, 2));
      else {
        for (const l of report.lines) io.out(`${LABEL[l.status]}  ${l.check}: ${l.message}${l.fix ? ` — fix: ${l.fix}` : ''}`);
        const fails = report.lines.filter((l) => l.status === 'fail').length;
        io.out(
          fails === 0
            ? `doctor: everything a ${report.device ? 'backup device' : 'backup'} needs is in place`
            : `doctor: ${fails} problem${fails > 1 ? 's' : ''} to fix`,
        );
      }
      if (!report.ok) {
        const fails = report.lines.filter((l) => l.status === 'fail').map((l) => l.check);
        throw new PermafrostError('unhealthy', `doctor found problems (${fails.join(', ')}); fix the FAIL lines and run doctor again.`);
      }
    });
};
