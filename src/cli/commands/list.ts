import { IntegrityError } from '../../errors.js';
import { neededBy } from '../../vault/retention.js';
import type { SnapshotKeys } from '../../vault/keys-reuse.js';
import { examples, VAULT_OPTION, type RegisterCommand } from '../context.js';
import { formatAge, formatBytes } from '../../format.js';

/** What opens a snapshot, short: `passphrase`, `key …0123456789ABCDEF` (the fingerprint's last 16 digits). */
function keyCell(k: SnapshotKeys | null): string {
  if (k === null) return '?';
  const all = [...(k.passphrase ? ['passphrase'] : []), ...k.recipients.map((fp) => `key …${fp.slice(-16)}`)];
  return all.length ? all.join(' or ') : '?';
}

/** `full`, `base`, `delta 3`; with who needs it: `base, needed by 2026-12-01T05-00-00Z +4`. */
function kindCell(r: { kind: string | null; depth: number | null; neededBy: string[] }): string {
  if (r.kind === null) return '?';
  const kind = r.kind === 'delta' ? `delta ${r.depth}` : r.kind;
  const [newest, ...more] = r.neededBy;
  return newest ? `${kind}, needed by ${newest}${more.length ? ` +${more.length}` : ''}` : kind;
}

export const registerList: RegisterCommand = (program, { io, config }) => {
  program
    .command('list')
    .description(
      'List snapshots, newest first: age, size, kind (full; or base / delta N of a database.delta chain, with the newest snapshot whose restore needs it), ' +
        'the key that opens it (the passphrase, or a public key by fingerprint), verify and check results, parts.',
    )
    .option('--json', 'print the snapshots as JSON')
    .option(...VAULT_OPTION)
    .addHelpText(
      'after',
      examples([
        'permafrost list',
        'permafrost list --json | jq ".[0].id"',
        'permafrost list --json | jq -r \'.[] | select(.kind == "delta") | "\\(.id) needs \\(.reference)"\'',
        'permafrost list --vault /media/usb/permafrost   # no config file needed',
      ]),
    )
    .action(async (opts: { json?: boolean; vault?: string }) => {
      const cfg = config({ vault: opts.vault });
      const [{ listSnapshots }, { readVerifyState, verifyStatus }, { checkStatus, readCheckState }, { snapshotKeys }] = await Promise.all([
        import('../../vault/store.js'),
        import('../../recover/verify-state.js'),
        import('../../vault/check.js'),
        import('../../vault/keys-reuse.js'),
      ]);
      const snaps = await listSnapshots(cfg.vault.dir, { versions: true });
      const verified = await readVerifyState(cfg.vault.dir);
      const checked = (await readCheckState(cfg.vault.dir)).snapshots;
      const needs = neededBy(snaps.filter((s) => s.manifest).map((s) => ({ id: s.id, time: s.time, chain: s.manifest?.chain })));
      const now = Date.now();
      const rows = snaps.map((s) => ({
        id: s.id,
        ageSeconds: Math.round((now - s.time.getTime()) / 1000),
        bytes: s.manifest?.files.reduce((sum, f) => sum + f.bytes, 0) ?? null,
        /** full (restores alone), base or delta (database.delta); null when the manifest is unusable. */
        kind: s.manifest ? (s.manifest.chain?.kind ?? 'full') : null,
        /** A delta's place in its chain: deltas since its base, the base, the snapshot it applies on top of. */
        depth: s.manifest?.chain?.depth ?? null,
        base: s.manifest?.chain?.base ?? null,
        reference: s.manifest?.chain?.reference ?? null,
        /** The snapshots whose restore reads this one (newest first): prune keeps it while any of them is kept. */
        neededBy: needs.get(s.id) ?? [],
        parts: s.manifest?.files.map((f) => f.part) ?? [],
        database: s.manifest?.database.name ?? null,
        failed: s.manifest?.failed ?? [],
        // Which keys open each part (manifests from before recipients: the passphrase only), and who signed it.
        keys: Object.fromEntries(s.manifest?.files.map((f) => [f.part, f.keys ?? { recipients: [], passphrase: true }]) ?? []),
        signedBy: s.manifest?.signedBy ?? null,
        /** What opens every part: the passphrase (no fingerprint: none is computed from a secret) and/or these public keys. */
        opensWith: s.manifest ? snapshotKeys(s.manifest) : null,
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
        io.out(['SNAPSHOT', 'AGE', 'SIZE', 'KIND', 'VERIFIED', 'CHECKED', 'CONTENTS', 'KEY'].join('\t'));
        for (const r of rows) {
          const size = r.bytes === null ? '?' : formatBytes(r.bytes);
          const mark = r.verified === 'verified' ? '✓' : r.verified === 'failed' ? '✗ failed' : 'never';
          const check = r.checked === 'ok' ? '✓' : r.checked === 'failed' ? `✗ ${r.checkProblems.join('; ')}` : 'never';
          const contents =
            r.problem ?? [r.parts.join(','), ...r.failed.map((f) => `${f.part} FAILED${f.optional ? ' (optional)' : ''}`)].join(', ');
          const age = r.future ? `in the future (${formatAge(-r.ageSeconds * 1000)} ahead)` : formatAge(r.ageSeconds * 1000);
          io.out(
            [
              r.id,
              age,
              size,
              kindCell(r),
              mark,
              check,
              `${contents}${r.versionsOnly ? ' (in .stversions)' : ''}`,
              keyCell(r.opensWith),
            ].join('\t'),
          );
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
