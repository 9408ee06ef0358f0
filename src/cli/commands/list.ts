import { IntegrityError } from '../../errors.js';
import { readVerifyState, verifyStatus } from '../../recover/verify-state.js';
import { checkStatus, readCheckState } from '../../vault/check.js';
import { listSnapshots } from '../../vault/store.js';
import { examples, VAULT_OPTION, type RegisterCommand } from '../context.js';
import { formatAge, formatBytes } from '../../format.js';

export const registerList: RegisterCommand = (program, { io, config }) => {
  program
    .command('list')
    .description('List snapshots, newest first.')
    .option('--json', 'print the snapshots as JSON')
    .option(...VAULT_OPTION)
    .addHelpText(
      'after',
      examples([
        'permafrost list',
        'permafrost list --json | jq ".[0].id"',
        'permafrost list --vault /media/usb/permafrost   # no config file needed',
      ]),
    )
    .action(async (opts: { json?: boolean; vault?: string }) => {
      const cfg = config({ vault: opts.vault });
      const snaps = await listSnapshots(cfg.vault.dir, { versions: true });
      const verified = await readVerifyState(cfg.vault.dir);
      const checked = (await readCheckState(cfg.vault.dir)).snapshots;
      const now = Date.now();
      const rows = snaps.map((s) => ({
        id: s.id,
        ageSeconds: Math.round((now - s.time.getTime()) / 1000),
        bytes: s.manifest?.files.reduce((sum, f) => sum + f.bytes, 0) ?? null,
        parts: s.manifest?.files.map((f) => f.part) ?? [],
        database: s.manifest?.database.name ?? null,
        failed: s.manifest?.failed ?? [],
        // Which keys open each part (manifests from before recipients: the passphrase only), and who signed it.
        keys: Object.fromEntries(s.manifest?.files.map((f) => [f.part, f.keys ?? { recipients: [], passphrase: true }]) ?? []),
        signedBy: s.manifest?.signedBy ?? null,
        future: s.future,
        /** Held only in Syncthing's .stversions on this device (pruned on the server); restorable by its id. */
        versionsOnly: s.versionsOnly === true,
        problem: s.problem ?? null,
        verified: verifyStatus(verified[s.id]),
        verifiedAt: verified[s.id]?.checkedAt ?? null,
        checked: checkStatus(checked[s.id]),
        checkedAt: checked[s.id]?.checkedAt ?? null,
        checkProblems: checked[s.id]?.problems ?? [],
      }));
      if (opts.json) io.out(JSON.stringify(rows, null, 2));
      else if (rows.length === 0) io.out(`no snapshots in ${cfg.vault.dir}`);
      else {
        io.out(['SNAPSHOT', 'AGE', 'SIZE', 'VERIFIED', 'CHECKED', 'CONTENTS'].join('\t'));
        for (const r of rows) {
          const size = r.bytes === null ? '?' : formatBytes(r.bytes);
          const mark = r.verified === 'verified' ? '✓' : r.verified === 'failed' ? '✗ failed' : 'never';
          const check = r.checked === 'ok' ? '✓' : r.checked === 'failed' ? `✗ ${r.checkProblems.join('; ')}` : 'never';
          const contents =
            r.problem ?? [r.parts.join(','), ...r.failed.map((f) => `${f.part} FAILED${f.optional ? ' (optional)' : ''}`)].join(', ');
          const age = r.future ? `in the future (${formatAge(-r.ageSeconds * 1000)} ahead)` : formatAge(r.ageSeconds * 1000);
          io.out([r.id, age, size, mark, check, `${contents}${r.versionsOnly ? ' (in .stversions)' : ''}`].join('\t'));
        }
        for (const r of rows.filter((x) => x.future)) {
          io.err(
            `warning: snapshot ${r.id} is dated in the future (the clock ran ahead?): it is never taken as "latest" or pruned; move it out of ${cfg.vault.dir} once it is not needed.`,
          );
        }
      }
      // Everything is listed first; then a damaged entry makes the run fail as an integrity problem (exit 3).
      const damaged = rows.filter((r) => r.problem !== null);
      const first = damaged[0];
      if (first) {
        const others =
          damaged.length > 1 ? ` (and ${damaged.length - 1} more damaged entr${damaged.length > 2 ? 'ies' : 'y'}, listed above)` : '';
        throw new IntegrityError(
          `Snapshot ${first.id} failed its integrity check: ${first.problem}${others}; move damaged entries out of ${cfg.vault.dir} or replace them from a backup device.`,
          { details: damaged.slice(1).map((r) => `${r.id}: ${r.problem}`) },
        );
      }
    });
};
