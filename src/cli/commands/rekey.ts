import { identityOptions, secretFlags } from '../identity.js';
import { examples, type RegisterCommand } from '../context.js';

export const registerRekey: RegisterCommand = (program, { io, config }) => {
  identityOptions(program.command('rekey'))
    .description(
      "Rewrap the session key of snapshots for the keys configured now (vault.recipients, vault.passphraseFile) without re-encrypting their data: only each part's key packets change. Each snapshot is rewritten beside the old one, checked, then swapped in. Needs a secret that opens them as they are (the passphrase or --identity).",
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
        'permafrost rekey all --identity key.asc --json | jq ".[].parts[].seipdSha256"',
      ]),
    )
    .action(
      async (snapshot: string, opts: { json?: boolean; passphraseFile?: string; identity?: string; identityPassphraseFile?: string }) => {
        const cfg = config();
        const { runRekey } = await import('../../vault/keys-rekey.js');
        const results = await runRekey(cfg, snapshot, secretFlags(io, opts));
        if (opts.json) io.out(JSON.stringify(results, null, 2));
        else
          for (const r of results)
            io.out(
              `rekeyed snapshot ${r.snapshot} (${r.parts.map((p) => p.name).join(', ')}): data unchanged, key packets for the current keys`,
            );
      },
    );
};
