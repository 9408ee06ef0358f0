import { formatBytes } from '../../format.js';
import { examples, type RegisterCommand } from '../context.js';
import { withRunContext } from '../run.js';
import type { MediaCopyResult } from '../../ops/offsite-media.js';
import { registerOffsitePush } from './offsite-push.js';

/** One line per source → target: what was copied, how, and what was already there. */
function mediaLine(r: MediaCopyResult): string {
  const how = { 'server-side': 'server-side copy', streamed: 'streamed', upload: 'uploaded', download: 'downloaded' }[r.mode];
  return (
    `${r.from} → ${r.to}: ${r.copied} copied (${formatBytes(r.bytes)}, ${how}), ${r.unchanged} already there` +
    (r.foreign > 0 ? `, ${r.foreign} keys that are no media path left alone` : '')
  );
}

export const registerOffsite: RegisterCommand = (program, ctx) => {
  const { io, config } = ctx;
  const offsite = program
    .command('offsite')
    .description('Copies of the snapshots and media in S3-compatible buckets (the offsite: section; docs/offsite.md).')
    .addHelpText(
      'after',
      examples([
        'permafrost offsite push',
        'permafrost offsite push all --target b2',
        'permafrost offsite media',
        'permafrost offsite media-restore --target b2 --to /home/mastodon/live/public/system',
      ]),
    );

  registerOffsitePush(offsite, ctx);

  offsite
    .command('media')
    .description(
      "Copy Mastodon's own media (never cache/) to each offsite target under <prefix>media/: from mediaBucket (S3_ENABLED=true) by " +
        'server-side copy where the endpoint is the same and streamed GET→PUT otherwise, and from media.dir (public/system). ' +
        "Incremental: only what the target lacks or holds with another size or ETag is copied; every object gets the target's Object Lock.",
    )
    .option('--target <name>', 'only this offsite target (default: all)')
    .option('--streamed', "GET→PUT even on the same endpoint (when the target's keys may not read the media bucket)")
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost offsite media',
        'permafrost offsite media --target b2',
        '# in permafrost.yaml (permafrost init writes it when .env.production has S3_ENABLED=true):',
        '#   mediaBucket: { bucket: files-example, endpoint: https://s3.fr-par.scw.cloud, region: fr-par,',
        '#                  credentialsFromEnv: { file: /home/mastodon/live/.env.production } }',
      ]),
    )
    .action(async (opts: { target?: string; streamed?: boolean; json?: boolean }) => {
      const cfg = config();
      const { runMediaCopy } = await import('../../ops/offsite-media.js');
      const results = await withRunContext(io, {}, (ctx) =>
        runMediaCopy(cfg, { target: opts.target, streamed: opts.streamed, signal: ctx.signal }),
      );
      if (opts.json) return io.out(JSON.stringify(results, null, 2));
      for (const r of results) io.out(mediaLine(r));
    });

  offsite
    .command('media-restore')
    .description(
      "Bring a target's media (<prefix>media/) back: into a folder (--to, e.g. the new server's public/system) or, without --to, " +
        'into the configured mediaBucket. Incremental: files already there with their size are skipped, so an interrupted restore goes on.',
    )
    .option('--target <name>', 'the offsite target to restore from (needed when several are configured)')
    .option('--to <dir>', 'a folder to restore into instead of mediaBucket')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost offsite media-restore --target b2 --to /home/mastodon/live/public/system',
        'permafrost offsite media-restore --target b2   # into mediaBucket',
        'chown -R mastodon: /home/mastodon/live/public/system   # files are written as the user running permafrost',
      ]),
    )
    .action(async (opts: { target?: string; to?: string; json?: boolean }) => {
      const cfg = config();
      const { runMediaRestore } = await import('../../ops/offsite-media.js');
      const r = await withRunContext(io, {}, (ctx) => runMediaRestore(cfg, { target: opts.target, to: opts.to, signal: ctx.signal }));
      if (opts.json) return io.out(JSON.stringify(r, null, 2));
      io.out(mediaLine(r));
    });
};
