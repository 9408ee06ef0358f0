import type { Command } from 'commander';
import { formatBytes } from '../../format.js';
import { examples, type CommandContext } from '../context.js';
import { withRunContext } from '../run.js';

/** `permafrost offsite push` under the `offsite` command (its own file, beside the other offsite subcommands). */
export function registerOffsitePush(offsite: Command, { io, config }: CommandContext): void {
  offsite
    .command('push')
    .description(
      'Upload snapshots to the offsite targets as they are on disk (ciphertext, no re-encryption), streamed: each part, then manifest.json.sig, ' +
        'then manifest.json last, so a snapshot counts in the bucket only once it is whole. Files already there at their size are skipped, so an ' +
        'interrupted push resumes. Without SNAPSHOT: every snapshot newer than the newest one the bucket holds (what each backup does by itself); ' +
        '"all": every snapshot the bucket lacks; an id: that one. A delta snapshot takes its chain along. Then the runbook (RESTORE.md, restore.sh, ' +
        "signer.pub.asc), and the target's keep: retention (only what is past its Object Lock date and needed by no kept chain is deleted). " +
        'Keys are read from offsite.credentials files or the standard AWS environment, never from the command line.',
    )
    .argument('[snapshot]', 'a snapshot id, or "all" (default: what is newer than the bucket\'s newest)')
    .option('--target <name>', 'only this target (default: every target in offsite:)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost offsite push                            # what the bucket lacks since its newest snapshot',
        'permafrost offsite push all --target b2            # every local snapshot the bucket lacks',
        'permafrost offsite push 2026-12-01T10-40-00Z       # one snapshot (and its delta chain)',
        'permafrost offsite push --json | jq ".targets[] | {target, pushed, error}"',
        '# in permafrost.yaml:  offsite: [{ name: b2, endpoint: https://s3.eu-central-003.backblazeb2.com, bucket: my-backups,',
        '#   credentials: { accessKeyIdFile: /etc/permafrost/b2-key-id, secretAccessKeyFile: /etc/permafrost/b2-key },',
        '#   lock: { mode: governance, days: 30 }, keep: { daily: 14, weekly: 8, monthly: 12 } }]',
      ]),
    )
    .action(async (snapshot: string | undefined, opts: { target?: string; json?: boolean }) => {
      const cfg = config();
      const { runOffsitePush, pushFailure } = await import('../../ops/offsite.js');
      const selection = snapshot === undefined ? 'new' : snapshot === 'all' ? 'all' : { id: snapshot };
      const result = await withRunContext(io, {}, (ctx) => runOffsitePush(cfg, ctx, { selection, target: opts.target }));
      if (opts.json) io.out(JSON.stringify(result, null, 2));
      else {
        for (const t of result.targets) {
          for (const p of t.problems) io.err(`warning: ${t.describe}: snapshot ${p.id} was not pushed: ${p.problem}`);
          if (t.foreign > 0) io.err(`warning: ${t.describe} holds ${t.foreign} key(s) that are not permafrost's; they are left alone.`);
          const r = t.retention;
          for (const x of r?.refused ?? [])
            io.err(
              `warning: ${t.describe} refused to delete snapshot ${x.id} (an Object Lock still in force, or a key without delete permission); it stays until its lock passes, and the next push tries again (--json shows the server's answer).`,
            );
          if (t.error) continue;
          const what =
            t.pushed.length === 0
              ? 'nothing new to push'
              : `pushed ${t.pushed.length} snapshot${t.pushed.length > 1 ? 's' : ''} (${t.pushed.join(', ')})`;
          io.out(
            `${t.describe}: ${what}; ${t.uploaded.files} file(s), ${formatBytes(t.uploaded.bytes)} uploaded, ${t.skippedFiles} already there; newest complete: ${t.newestComplete ?? 'none'}`,
          );
          if (r)
            io.out(
              `${t.describe}: keep: ${r.kept} kept, ${r.removed.length} deleted${r.removed.length ? ` (${r.removed.join(', ')})` : ''}` +
                `${r.waiting.length ? `, ${r.waiting.length} due but locked until ${r.waiting.map((w) => w.until).sort()[0]}` : ''}` +
                `${r.refused.length ? `, ${r.refused.length} refused by the lock` : ''}`,
            );
        }
      }
      const failed = pushFailure(result);
      if (failed) throw failed;
    });
}
