import { examples, type RegisterCommand } from '../context.js';

export const registerSync: RegisterCommand = (program, { io, config }) => {
  const sync = program
    .command('sync')
    .description('Configure the local Syncthing from the config (apply), or show replication (status).')
    .addHelpText(
      'after',
      examples(['permafrost sync apply --dry-run', 'permafrost sync apply', 'permafrost sync status --json', 'permafrost sync revert']),
    );

  sync
    .command('revert')
    .description(
      'On a backup device: undo files changed, added or deleted locally in the receive-only folders (Syncthing\'s "Revert Local Changes"), so they hold the server\'s copies again.',
    )
    .addHelpText('after', examples(['permafrost sync revert', 'permafrost status   # no more "locally changed file(s)"']))
    .action(async () => {
      const [{ revertLocalChanges }, { readSyncthingKey }] = await Promise.all([
        import('../../replicate/apply.js'),
        import('../../ops/secrets.js'),
      ]);
      const cfg = config();
      const reverted = await revertLocalChanges(cfg, readSyncthingKey(cfg));
      io.out(reverted.length ? `reverted local changes in ${reverted.join(', ')}` : 'no local changes to revert');
    });

  sync
    .command('apply')
    .description(
      'Make the local Syncthing match the config: the configured devices, and the folders permafrost-snapshots (vault.dir) and mastodon-media (media.dir), send-only on a source, receive-only with versioning on a receiver. Other folders and devices are left alone; a second run changes nothing.',
    )
    .option('--dry-run', 'print the changes without making them')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost sync apply --dry-run          # what would change',
        'permafrost sync apply                    # on the server (role: source) and on each backup device (role: receiver)',
        'permafrost sync apply --json | jq ".changes | length"',
      ]),
    )
    .action(async (opts: { dryRun?: boolean; json?: boolean }) => {
      const [{ applySync }, { readSyncthingKey }] = await Promise.all([import('../../replicate/apply.js'), import('../../ops/secrets.js')]);
      const cfg = config();
      const result = await applySync(cfg, readSyncthingKey(cfg), { dryRun: opts.dryRun });
      if (opts.json) return io.out(JSON.stringify(result, null, 2));
      for (const w of result.warnings) io.err(`warning: ${w.message}: ${w.fix}.`);
      if (result.changes.length === 0) return io.out(`no change: Syncthing (${result.role}) already matches the config`);
      const verb = result.dryRun ? 'would make' : 'made';
      io.out(`${verb} ${result.changes.length} change${result.changes.length > 1 ? 's' : ''} (${result.role}):`);
      for (const c of result.changes) io.out(`  ${c.summary}`);
    });

  sync
    .command('status')
    .description(
      'Show each device: connection, completion per folder, bytes to send, newest snapshot and lag (same as `permafrost status`).',
    )
    .option('--json', 'print the status as JSON')
    .addHelpText('after', examples(['permafrost sync status', 'permafrost sync status --json | jq ".devices[].lagSeconds"']))
    .action(async (opts: { json?: boolean }) => {
      const [{ replicationStatus }, { renderStatus, statusFailure }, { readSyncthingKey }] = await Promise.all([
        import('../../replicate/status.js'),
        import('../status-render.js'),
        import('../../ops/secrets.js'),
      ]);
      const cfg = config();
      const status = await replicationStatus(cfg, readSyncthingKey(cfg));
      renderStatus(io, status, Boolean(opts.json));
      if (!status.ok) throw statusFailure(status);
    });
};
