import { runInit } from '../../jobs/init.js';
import { describePolicy } from '../../vault/retention.js';
import { examples, type RegisterCommand } from '../context.js';

interface InitFlags {
  mastodon: string;
  force?: boolean;
  vault?: string;
  json?: boolean;
}

export const registerInit: RegisterCommand = (program, { io, configFlag }) => {
  program
    .command('init')
    .description("Write a config from a Mastodon install's .env.production (database, Redis, secrets, media) and create a passphrase file.")
    .requiredOption('--mastodon <dir>', 'the Mastodon folder holding .env.production (e.g. /home/mastodon/live)')
    .option('--vault <dir>', 'where snapshots are stored (default: /var/lib/permafrost/snapshots)')
    .option('--force', 'replace an existing config (an existing passphrase file is always kept)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost init --mastodon /home/mastodon/live            # writes ./permafrost.yaml',
        'permafrost --config /etc/permafrost/permafrost.yaml init --mastodon /home/mastodon/live --vault /srv/permafrost',
        'permafrost init --mastodon /home/mastodon/live --force && permafrost doctor',
      ]),
    )
    .action(async (opts: InitFlags) => {
      const result = await runInit({
        mastodonDir: opts.mastodon,
        configPath: configFlag() ?? './permafrost.yaml',
        force: opts.force,
        vaultDir: opts.vault,
      });
      if (opts.json) return io.out(JSON.stringify(result, null, 2));
      io.out(`wrote ${result.configPath}`);
      for (const f of result.passwordFiles) io.out(`wrote ${f} (mode 0600)`);
      io.out(`snapshots will go to ${result.vaultDir}`);
      io.out(
        `retention (vault.keep): ${describePolicy(result.keep)}; older snapshots are deleted after each backup (edit vault.keep to change it)`,
      );
      io.out(result.mediaDir ? `media to replicate: ${result.mediaDir} (without cache/)` : 'media: not replicated (object storage)');
      for (const n of result.notes) io.out(`note: ${n}`);
      io.out('');
      if (result.passphraseCreated) {
        io.out(
          `Created the passphrase file ${result.passphraseFile} (mode 0400). Every snapshot is encrypted with it, and ` +
            'without it no backup can ever be read: not by permafrost, not by gpg, not by anyone. Store a copy of it ' +
            'now somewhere off this server (a password manager, a printed sheet in a drawer), because a backup that ' +
            'dies with the server together with its only key is no backup.',
        );
      } else {
        io.out(`Kept the existing passphrase file ${result.passphraseFile}; make sure a copy of it is stored off this server.`);
      }
      io.out('');
      io.out('Next: `permafrost doctor` checks everything, then `permafrost backup` takes the first snapshot.');
    });
};
