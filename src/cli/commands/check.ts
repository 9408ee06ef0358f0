import { runContext } from '../../run-context.js';
import { cliNotifyLog } from '../notify-log.js';
import { examples, VAULT_OPTION, type RegisterCommand } from '../context.js';

export const registerCheck: RegisterCommand = (program, { io, config }) => {
  program
    .command('check')
    .description(
      "Check snapshots without the passphrase: every part's size and SHA-256 against the manifest, the manifest itself, and nothing missing or unexpected in the folder; a delta snapshot's chain (each reference back to its base present, undamaged, of the same base and one less in depth). Exits 3 naming each damaged snapshot; results show in list, status and /metrics.",
    )
    .argument('[snapshot]', 'snapshot id, "latest", or "all"', 'all')
    .option('--json', 'print the results as JSON')
    .option(...VAULT_OPTION)
    .addHelpText(
      'after',
      examples([
        'permafrost check                           # every snapshot',
        'permafrost check 2026-11-26T07-40-00Z',
        'permafrost check all --json | jq ".snapshots[] | select(.ok | not)"',
        'permafrost check --vault /media/usb/permafrost   # a copy of the vault, no config file needed',
      ]),
    )
    .action(async (snapshot: string, opts: { json?: boolean; vault?: string }) => {
      const cfg = config({ vault: opts.vault });
      const [{ runCheckJob }, { checkFailed }] = await Promise.all([import('../../ops/runs.js'), import('../../ops/check.js')]);
      const result = await runCheckJob(cfg, runContext({ log: cliNotifyLog(io) }), { snapshot });
      if (opts.json) io.out(JSON.stringify(result, null, 2));
      else {
        for (const s of result.snapshots) {
          io.out(
            s.arriving
              ? s.waitsFor
                ? `… ${s.id}: its chain needs ${s.waitsFor}, which is still arriving (Syncthing is writing it), not checked`
                : `… ${s.id}: still arriving (Syncthing is writing it), not checked`
              : s.ok
                ? `✓ ${s.id}`
                : `✗ ${s.id}: ${s.problems.join('; ')}`,
          );
          for (const g of s.goodCopies) io.out(`    ${g}`);
        }
        if (result.snapshots.length === 0) io.out(`no snapshots in ${cfg.vault.dir}`);
      }
      if (!result.ok) throw checkFailed(result);
    });
};
