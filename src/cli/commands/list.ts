import { IntegrityError, UserError } from '../../errors.js';
import { formatAge, formatBytes } from '../../format.js';
import type { SnapshotRow } from '../../ops/overview.js';
import { keysOpeningEvery, type SnapshotKeys } from '../../vault/snapshot-keys.js';
import { bucketFlags, bucketOptions, examples, VAULT_OPTION, type BucketOptionValues, type RegisterCommand } from '../context.js';

/** A CHECKED cell longer than this is cut in the aligned table (the whole text is in --tsv and --json). */
export const CHECKED_WIDTH = 48;

/** `full`, `base`, `delta 3`; with who needs it: `base, needed by 2026-12-01T05-00-00Z +4`. */
function kindCell(r: Pick<SnapshotRow, 'kind' | 'depth' | 'neededBy'>): string {
  if (r.kind === null) return '?';
  const kind = r.kind === 'delta' ? `delta ${r.depth}` : r.kind;
  const [newest, ...more] = r.neededBy;
  return newest ? `${kind}, needed by ${newest}${more.length ? ` +${more.length}` : ''}` : kind;
}

/** What opens every part of a snapshot: the passphrase (no fingerprint: none is computed from a secret) and/or these public keys. */
export function opensWith(r: Pick<SnapshotRow, 'keys' | 'problem'>): SnapshotKeys | null {
  return r.problem === null ? keysOpeningEvery(Object.values(r.keys)) : null;
}

/** What opens a snapshot, short: `passphrase`, `key …0123456789ABCDEF` (the fingerprint's last 16 digits). */
function keyCell(k: SnapshotKeys | null): string {
  if (k === null) return '?';
  const all = [...(k.passphrase ? ['passphrase'] : []), ...k.recipients.map((fp) => `key …${fp.slice(-16)}`)];
  return all.length === 0 ? '?' : all.join(' or ');
}

/** What `list --json` prints for a snapshot (its shape predates the overview: parts by name). */
function listJson(r: SnapshotRow) {
  return {
    id: r.id,
    ageSeconds: r.ageSeconds,
    bytes: r.bytes,
    kind: r.kind,
    depth: r.depth,
    base: r.base,
    reference: r.reference,
    neededBy: r.neededBy,
    parts: r.parts.map((p) => p.part),
    database: r.database,
    failed: r.failed,
    keys: r.keys,
    signedBy: r.signedBy,
    opensWith: opensWith(r),
    future: r.future,
    versionsOnly: r.versionsOnly,
    problem: r.problem,
    verified: r.verified,
    verifiedAt: r.verifiedAt,
    checked: r.checked,
    checkedAt: r.checkedAt,
    checkProblems: r.checkProblems,
  };
}

const HEADER = ['SNAPSHOT', 'AGE', 'SIZE', 'KIND', 'VERIFIED', 'CHECKED', 'CONTENTS', 'KEY'];

/** One table row's cells, full text (the aligned table cuts CHECKED afterwards). */
function cells(r: SnapshotRow): string[] {
  const size = r.bytes === null ? '?' : formatBytes(r.bytes);
  const mark = r.verified === 'verified' ? '✓' : r.verified === 'failed' ? '✗ failed' : 'never';
  const check = r.checked === 'ok' ? '✓' : r.checked === 'failed' ? `✗ ${r.checkProblems.join('; ')}` : 'never';
  const contents =
    r.problem ??
    [r.parts.map((p) => p.part).join(','), ...r.failed.map((f) => `${f.part} FAILED${f.optional ? ' (optional)' : ''}`)].join(', ');
  const age = r.future ? `in the future (${formatAge(-r.ageSeconds * 1000)} ahead)` : formatAge(r.ageSeconds * 1000);
  return [r.id, age, size, kindCell(r), mark, check, `${contents}${r.versionsOnly ? ' (in .stversions)' : ''}`, keyCell(opensWith(r))];
}

/** `text` cut to `width` characters, ending in `…` when cut. */
function cut(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}…`;
}

/**
 * The snapshot table: tab-separated (for scripts: `--tsv`, or stdout not a terminal), or columns
 * padded to align on a terminal, with long CHECKED text cut so one damaged snapshot cannot push the
 * other columns out of line. The last column is never padded.
 */
export function renderListTable(rows: readonly SnapshotRow[], opts: { aligned: boolean }): string[] {
  const table = [HEADER, ...rows.map(cells)];
  if (!opts.aligned) return table.map((r) => r.join('\t'));
  const checked = HEADER.indexOf('CHECKED');
  for (const r of table.slice(1)) r[checked] = cut(r[checked]!, CHECKED_WIDTH);
  const widths = HEADER.map((_, i) => Math.max(...table.map((r) => [...r[i]!].length)));
  return table.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length)))
      .join('  ')
      .trimEnd(),
  );
}

export const registerList: RegisterCommand = (program, { io, config }) => {
  bucketOptions(program.command('list'))
    .description(
      'List snapshots, newest first: age, size, kind (full; or base / delta N of a database.delta chain, with the newest snapshot whose restore needs it), verify and check results, parts, ' +
        'and the key that opens it (the passphrase, or a public key by fingerprint). ' +
        'Columns are aligned on a terminal (a long CHECKED text cut with …); with --tsv, or when stdout is not a terminal, tab-separated with every text whole.',
    )
    .option('--json', 'print the snapshots as JSON')
    .option('--tsv', 'print tab-separated columns, also on a terminal')
    .option(...VAULT_OPTION)
    .option(
      '--signer <fingerprint>',
      'with a bucket: every manifest listed must be signed by this key (its 40 hex digits), else the run exits 3 naming the snapshot',
    )
    .addHelpText(
      'after',
      examples([
        'permafrost list',
        'permafrost list --tsv | cut -f1,6',
        'permafrost list --json | jq ".[0].id"',
        'permafrost list --json | jq -r \'.[] | select(.kind == "delta") | "\\(.id) needs \\(.reference)"\'',
        'permafrost list --vault /media/usb/permafrost   # no config file needed',
        'AWS_PROFILE=backup permafrost list --vault s3://my-bucket/permafrost --endpoint https://s3.eu-central-003.backblazeb2.com   # a bucket, no config',
        'permafrost list --target b2   # the offsite target named b2 in the config',
      ]),
    )
    .action(async (opts: { json?: boolean; tsv?: boolean; vault?: string; signer?: string } & BucketOptionValues) => {
      const bucket = bucketFlags(opts);
      if (opts.signer !== undefined && !bucket)
        throw new UserError(
          '--signer goes with a bucket (--vault s3://…, --target); a vault folder is checked against vault.signerKeyFile by `permafrost check`.',
        );
      const cfg = config(bucket ? { bucket: true } : { vault: opts.vault });
      let rows: SnapshotRow[];
      let where = cfg.vault.dir;
      if (bucket) {
        const [{ listBucket }, { snapshotRows }] = await Promise.all([
          import('../../ops/bucket-vault.js'),
          import('../../ops/overview.js'),
        ]);
        const listed = await listBucket(cfg, bucket, { signer: opts.signer });
        for (const w of listed.warnings) io.err(`warning: ${w}`);
        rows = snapshotRows(listed.entries, new Date());
        where = listed.describe;
      } else {
        const { gatherOverview } = await import('../../ops/overview.js');
        rows = (await gatherOverview(cfg)).snapshots;
      }
      if (opts.json) io.out(JSON.stringify(rows.map(listJson), null, 2));
      else if (rows.length === 0) io.out(`no snapshots in ${where}`);
      else {
        for (const line of renderListTable(rows, { aligned: io.outIsTTY === true && !opts.tsv })) io.out(line);
        for (const r of rows.filter((x) => x.future)) {
          io.err(
            `warning: snapshot ${r.id} is dated in the future (the clock ran ahead?): it is never taken as "latest" or pruned; move it out of ${where} once it is not needed.`,
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
          `Snapshot ${first.id} failed its integrity check: ${first.problem}${others}; move damaged entries out of ${where} or replace them from a backup device.`,
          { details: damaged.slice(1).map((r) => `${r.id}: ${r.problem}`) },
        );
      }
    });
};
