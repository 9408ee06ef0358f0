#!/usr/bin/env node
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { VERSION } from '../version.js';
import { examples, type CommandContext } from './context.js';
import { COMMANDS, requestedCommand } from './registry.js';
import { processIo, reportError, tolerateClosedStdStreams, type Io } from './run.js';

/** Builds the CLI; `io` is injected so commands never touch process streams directly. */
export async function buildProgram(io: Io, args: readonly string[] = []): Promise<Command> {
  const program = new Command('permafrost')
    .description('Encrypted, replicated, restore-tested backups for self-hosted Mastodon servers.')
    .version(VERSION)
    .option('-c, --config <file>', 'config file (default: $PERMAFROST_CONFIG, ./permafrost.yaml, /etc/permafrost/permafrost.yaml)')
    .showHelpAfterError()
    // Before any command is added: subcommands copy this, so a bad flag of any command throws
    // (and exits 2 below) instead of commander calling process.exit(1) itself.
    .exitOverride()
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
  let loaded: Config | undefined;
  const ctx: CommandContext = {
    io,
    configFlag: () => program.opts<{ config?: string }>().config,
    config: (overrides) => (loaded ??= loadConfig(program.opts<{ config?: string }>().config, overrides)),
  };
  // Only the requested command's module is loaded; help, `help CMD` and typos get them all.
  const wanted = requestedCommand(args);
  for (const name of wanted ? [wanted] : Object.keys(COMMANDS)) (await COMMANDS[name]!())(program, ctx);
  return program;
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const program = await buildProgram(io, argv.slice(2));
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      return code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help' ? 0 : 2;
    }
    return reportError(err, io);
  }
}

tolerateClosedStdStreams();

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err, processIo);
  },
);
