import { runContext } from '../../run-context.js';
import { cliNotifyLog } from '../notify-log.js';
import { bucketFlags, bucketOptions, examples, VAULT_OPTION, type BucketOptionValues, type RegisterCommand } from '../context.js';
import { UserError } from '../../errors.js';
import { withRunContext } from '../run.js';

export const registerCheck: RegisterCommand = (program, { io, config }) => {
  bucketOptions(program.command('check'))
    .description(
      "Check snapshots without the passphrase: every part's size and SHA-256 against the manifest, the manifest itself, and nothing missing or unexpected in the folder; a delta snapshot's chain (each reference back to its base present, undamaged, of the same base and one less in depth). Exits 3 naming each damaged snapshot; results show in list, status and /metrics.",
    )
    .argument('[snapshot]', 'snapshot id, "latest", or "all"', 'all')
    .option('--json', 'print the results as JSON')
    .option(...VAULT_OPTION)
    .option(
      '--read-data',
      'with a bucket: download every part and re-hash it (SHA-256, streamed) against the manifest; without it, sizes from the listing',
    )
    .option('--signer <fingerprint>', 'with a bucket: every manifest must be signed by this key (40 hex digits)')
    .addHelpText(
      'after',
      examples([
        'permafrost check                           # every snapshot',
        'permafrost check 2026-11-26T07-40-00Z',
        'permafrost check all --json | jq ".snapshots[] | select(.ok | not)"',
        'permafrost check --vault /media/usb/permafrost   # a copy of the vault, no config file needed',
        'permafrost check --target b2 --read-data   # every object of the offsite target b2 downloaded and re-hashed',
        'AWS_ENDPOINT_URL=https://s3.example.com permafrost check latest --vault s3://my-bucket/permafrost --path-style',
      ]),
    )
    .action(
      async (snapshot: string, opts: { json?: boolean; vault?: string; readData?: boolean; signer?: string } & BucketOptionValues) => {
        const bucket = bucketFlags(opts);
        if ((opts.readData || opts.signer !== undefined) && !bucket)
          throw new UserError(
            '--read-data and --signer go with a bucket (--vault s3://…, --target); a vault folder is always hashed whole, against vault.signerKeyFile.',
          );
        const cfg = config(bucket ? { bucket: true } : { vault: opts.vault });
        const { checkFailed } = await import('../../ops/check.js');
        let where = cfg.vault.dir;
        let result;
        if (bucket) {
          const { runBucketCheck } = await import('../../ops/check-bucket.js');
          const r = await withRunContext(io, {}, (ctx) =>
            runBucketCheck(cfg, bucket, snapshot, { readData: opts.readData, signer: opts.signer, signal: ctx.signal }),
          );
          for (const w of r.warnings) io.err(`warning: ${w}`);
          where = r.describe;
          result = r;
        } else {
          const { runCheckJob } = await import('../../ops/runs.js');
          result = await runCheckJob(cfg, runContext({ log: cliNotifyLog(io) }), { snapshot });
        }
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
          if (result.snapshots.length === 0) io.out(`no snapshots in ${where}`);
        }
        if (!result.ok) throw checkFailed(result);
      },
    );
};
