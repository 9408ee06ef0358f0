#!/usr/bin/env node
import { Command, Option } from 'commander';
import { loadConfig } from '../config/load.js';
import { runBackup } from '../jobs/backup.js';
import { runRestore } from '../jobs/restore.js';
import { listSnapshots } from '../vault/store.js';
import { VERSION } from '../version.js';
import { formatAge, formatBytes, processIo, reportError, type Io } from './run.js';

interface GlobalOpts {
  config?: string;
}

function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

/** Builds the CLI; `io` is injected so commands never touch process streams directly. */
export function buildProgram(io: Io): Command {
  const program = new Command('permafrost')
    .description('Encrypted, replicated, restore-tested backups for self-hosted Mastodon servers.')
    .version(VERSION)
    .option('-c, --config <file>', 'config file (default: $PERMAFROST_CONFIG, ./permafrost.yaml, /etc/permafrost/permafrost.yaml)')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .addHelpText(
      'after',
      examples([
        'permafrost backup                      # one snapshot now',
        'permafrost list                        # snapshots, newest first',
        'permafrost restore latest --database mastodon_restored',
        'permafrost --config /etc/permafrost/permafrost.yaml backup --json',
      ]),
    );
  const cfg = (): ReturnType<typeof loadConfig> => loadConfig(program.opts<GlobalOpts>().config);

  program
    .command('backup')
    .description('Capture the database into a new encrypted snapshot in vault.dir.')
    .option('--json', 'print the manifest as JSON')
    .addHelpText('after', examples(['permafrost backup', 'permafrost backup --json | jq .files']))
    .action(async (opts: { json?: boolean }) => {
      const config = cfg();
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const result = await runBackup(config, {
          signal: ac.signal,
          events: { phase: (p) => (!opts.json ? io.err(`backup: ${p}…`) : undefined) },
        });
        for (const w of result.warnings) io.err(`warning: ${w}`);
        if (opts.json) {
          io.out(JSON.stringify(result.manifest, null, 2));
        } else {
          const size = result.manifest.files.reduce((s, f) => s + f.bytes, 0);
          const secs = (Date.parse(result.manifest.finishedAt) - Date.parse(result.manifest.startedAt)) / 1000;
          io.out(`snapshot ${result.manifest.id} written to ${result.dir} (${formatBytes(size)} in ${secs.toFixed(1)}s)`);
        }
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  program
    .command('list')
    .description('List snapshots, newest first.')
    .option('--json', 'print the snapshots as JSON')
    .addHelpText('after', examples(['permafrost list', 'permafrost list --json | jq ".[0].id"']))
    .action(async (opts: { json?: boolean }) => {
      const config = cfg();
      const snaps = await listSnapshots(config.vault.dir);
      const now = Date.now();
      const rows = snaps.map((s) => ({
        id: s.id,
        ageSeconds: Math.round((now - s.time.getTime()) / 1000),
        bytes: s.manifest?.files.reduce((sum, f) => sum + f.bytes, 0) ?? null,
        parts: s.manifest?.files.map((f) => f.part) ?? [],
        database: s.manifest?.database.name ?? null,
        problem: s.problem ?? null,
      }));
      if (opts.json) return io.out(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return io.out(`no snapshots in ${config.vault.dir}`);
      io.out(['SNAPSHOT', 'AGE', 'SIZE', 'CONTENTS'].join('\t'));
      for (const r of rows) {
        io.out(
          [r.id, formatAge(r.ageSeconds * 1000), r.bytes === null ? '?' : formatBytes(r.bytes), r.problem ?? r.parts.join(',')].join(
            '\t',
          ),
        );
      }
    });

  program
    .command('restore')
    .description('Verify a snapshot completely, then restore its database with pg_restore --clean --if-exists.')
    .argument('[snapshot]', 'snapshot id, or "latest"', 'latest')
    .requiredOption('--database <name>', 'target database (created when missing)')
    .option('--force', 'replace the contents of a database that already holds tables')
    .addOption(new Option('-j, --jobs <n>', 'parallel pg_restore jobs').argParser((v) => Number.parseInt(v, 10)))
    .option('--no-owner', 'do not restore object ownership (when the original roles do not exist here)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      examples([
        'permafrost restore latest --database mastodon_restored',
        'permafrost restore 2026-11-26T07-40-00Z --database mastodon_production --force --jobs 2',
      ]),
    )
    .action(async (snapshot: string, opts: { database: string; force?: boolean; jobs?: number; owner: boolean; json?: boolean }) => {
      const config = cfg();
      const result = await runRestore(config, {
        snapshot,
        database: opts.database,
        force: opts.force,
        jobs: opts.jobs,
        noOwner: !opts.owner,
        events: { phase: (p) => (!opts.json ? io.err(`restore: ${p}…`) : undefined) },
      });
      if (opts.json) return io.out(JSON.stringify(result, null, 2));
      io.out(
        `restored snapshot ${result.snapshot} into database "${result.database}"${result.created ? ' (created)' : ''}: ` +
          `${formatBytes(result.bytes)} archive, verified in ${(result.decryptMs / 1000).toFixed(1)}s, restored in ${(result.restoreMs / 1000).toFixed(1)}s`,
      );
    });

  return program;
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const program = buildProgram(io).exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    const code = (err as { code?: string; exitCode?: number }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      const exitCode = (err as { exitCode: number }).exitCode;
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : exitCode === 0 ? 0 : 2;
    }
    return reportError(err, io);
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err, processIo);
  },
);
