import { agentOption, identityOptions, secretFlags } from '../identity.js';
import { progress } from '../progress.js';
import { bucketOptions, examples, onVault, vaultConfig, VAULT_OPTION, type BucketOptionValues, type RegisterCommand } from '../context.js';

export const registerVerify: RegisterCommand = (program, { io, config }) => {
  bucketOptions(agentOption(identityOptions(program.command('verify'))))
    .description(
      'Test-restore a snapshot into a scratch database (always dropped) and check it against its manifest: integrity, SHA-256, every table of the manifest (by schema and name), row counts, schema version, Redis and secrets parts; a delta snapshot: its chain back to the base, and the count and content hash of every table.',
    )
    .argument('[snapshot]', 'snapshot id, or "latest"', 'latest')
    .option(
      '--passphrase-file <file>',
      'the vault passphrase (a 0600 file), instead of vault.passphraseFile: for a backup device that keeps none',
    )
    .option(
      '--signer <fingerprint>',
      "the signing key's fingerprint (40 hex digits, printed by init and doctor): every manifest read must be signed by it; the trust anchor of a signed vault on a machine without vault.signerKeyFile",
    )
    .option('--insecure-no-signature-check', 'verify a signed vault without checking who signed its manifests')
    .option(...VAULT_OPTION)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost verify                          # the newest snapshot',
        'permafrost verify 2026-11-26T07-40-00Z',
        'permafrost verify latest --json | jq .checks',
        'permafrost verify latest --passphrase-file /media/usb/passphrase   # on a backup device',
        'PGHOST=/var/run/postgresql permafrost verify --vault /media/usb/permafrost --passphrase-file /root/passphrase   # no config: scratch database on the libpq server',
        'permafrost verify latest --identity /media/usb/permafrost-secret.asc   # snapshots encrypted to vault.recipients',
        'permafrost verify --vault /media/usb/permafrost --identity /root/secret.asc --signer 0123456789ABCDEF0123456789ABCDEF01234567   # a signed vault, no config',
        'permafrost verify 2026-11-26T13-00-00Z   # a delta snapshot: base, deltas in order, every table count and hash',
        'permafrost verify latest --target b2   # the newest complete snapshot of the offsite target b2, fetched into vault.tempDir',
        'PGHOST=/var/run/postgresql permafrost verify --vault s3://my-bucket/permafrost --endpoint https://s3.example.com --passphrase-file /root/passphrase',
      ]),
    )
    .action(
      async (
        snapshot: string,
        opts: {
          json?: boolean;
          passphraseFile?: string;
          identity?: string;
          identityPassphraseFile?: string;
          gpgAgent?: boolean;
          vault?: string;
          signer?: string;
          insecureNoSignatureCheck?: boolean;
        } & BucketOptionValues,
      ) => {
        const cfg = vaultConfig(config, opts);
        const { runVerifyJob, verificationFailed } = await import('../../ops/runs.js');
        const shown = progress(io, 'verify', { json: opts.json });
        const result = await onVault(io, cfg, opts, snapshot, shown.events, (vaultCfg, id, ctx) =>
          runVerifyJob(vaultCfg, ctx, {
            snapshot: id,
            ...secretFlags(io, opts),
            signer: opts.signer,
            insecureNoSignatureCheck: opts.insecureNoSignatureCheck,
          }),
        ).finally(() => shown.done());
        if (opts.json) io.out(JSON.stringify(result, null, 2));
        else {
          for (const c of result.checks) io.out(`${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
          if (result.ok) io.out(`snapshot ${result.snapshot} verified in ${(result.durationMs / 1000).toFixed(1)}s`);
        }
        if (!result.ok) throw verificationFailed(result);
      },
    );
};
