import { identityOptions, secretFlags } from '../identity.js';
import { examples, type RegisterCommand } from '../context.js';

export const registerRekey: RegisterCommand = (program, { io, config }) => {
  identityOptions(program.command('rekey'))
    .description(
      "Rewrap the session key of snapshots for the keys configured now (vault.recipients, vault.passphraseFile) without re-encrypting their data: only each part's key packets change. Each snapshot is rewritten beside the old one, checked, then swapped in. A snapshot already wrapped for the configured keys is skipped, so running it again finishes a run that was stopped. Needs a secret that opens them as they are (the passphrase or --identity). Reports rewrapped / already done / failed; exits 0 when none failed, else with the first failure's code (2: the secret opens none of its key packets, 3: damaged).",
    )
    .argument('[snapshot]', 'snapshot id, "latest", or "all"', 'all')
    .option(
      '--passphrase-file <file>',
      'the vault passphrase the snapshots are encrypted with now (a 0600 file), instead of vault.passphraseFile',
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost rekey all --identity /media/usb/old-secret.asc      # after adding or removing a recipient',
        'permafrost rekey latest --passphrase-file /media/usb/old-passphrase   # after a new vault.passphraseFile',
        'permafrost rekey all --identity key.asc --json | jq ".rewrapped[].parts[].seipdSha256"',
      ]),
    )
    .action(
      async (snapshot: string, opts: { json?: boolean; passphraseFile?: string; identity?: string; identityPassphraseFile?: string }) => {
        const cfg = config();
        const { rekeyFailed, runRekey } = await import('../../ops/rekey.js');
        const report = await runRekey(cfg, snapshot, secretFlags(io, opts));
        if (opts.json) io.out(JSON.stringify(report, null, 2));
        else {
          for (const note of report.notes) io.out(`note: ${note}`);
          for (const r of report.rewrapped)
            io.out(`rewrapped ${r.snapshot} (${r.parts.map((p) => p.name).join(', ')}): data unchanged, key packets for the current keys`);
          for (const id of report.alreadyDone) io.out(`already done ${id}: its key packets are already for the current keys`);
          for (const f of report.failed) io.out(`failed ${f.snapshot}: ${f.error}`);
          io.out(`rekey: ${report.rewrapped.length} rewrapped, ${report.alreadyDone.length} already done, ${report.failed.length} failed`);
        }
        const failed = rekeyFailed(report);
        if (failed) throw failed;
      },
    );
};
