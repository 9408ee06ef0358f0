/** The CLI program: commander with every command of registry.ts, and `main` mapping a run to its exit code (main.ts runs it). */
import type { Command } from 'commander';
import type { ConfigOverrides, loadConfig as LoadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { VERSION } from '../version.js';
import type { CommandContext } from './context.js';
import { processIo, reportError, type Io } from './run.js';

/** Builds the CLI; `io` is injected so commands never touch process streams directly. */
export async function buildProgram(io: Io, args: readonly string[] = []): Promise<Command> {
  const [{ Command }, { examples }, { COMMANDS, requestedCommand }] = await Promise.all([
    import('commander'),
    import('./context.js'),
    import('./registry.js'),
  ]);
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
  // The config code (yaml, zod and every schema) is loaded only once a command is about to run:
  // --help and --version never need it.
  let loadConfig: typeof LoadConfig | undefined;
  program.hook('preAction', async () => {
    loadConfig ??= (await import('../config/load.js')).loadConfig;
  });
  const ctx: CommandContext = {
    io,
    configFlag: () => program.opts<{ config?: string }>().config,
    config: (overrides?: ConfigOverrides) => {
      if (!loadConfig) throw new Error('config() called before the command ran (outside its action)');
      return (loaded ??= loadConfig(program.opts<{ config?: string }>().config, overrides));
    },
  };
  // --version needs no command; otherwise only the requested command's module is loaded (help,
  // `help CMD` and typos get them all). Command modules load their core inside the action, so
  // registering one costs its help text only (test/e2e/setup/startup.test.ts).
  const wanted = requestedCommand(args);
  if (wanted === undefined && isVersionRequest(args)) return program;
  // Loaded together (the loader reads the files in parallel), registered in the registry's order.
  const registers = await Promise.all((wanted ? [wanted] : Object.keys(COMMANDS)).map((name) => COMMANDS[name]!()));
  for (const register of registers) register(program, ctx);
  return program;
}

/** `permafrost --version` / `-V` (global options before it allowed): commander prints the version before any command matters. */
function isVersionRequest(args: readonly string[]): boolean {
  return args.includes('--version') || args.includes('-V');
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const args = argv.slice(2);
  // `permafrost --version` alone (scripts, monitoring, package checks) is answered before commander
  // and the commands are loaded; with anything else beside it, commander answers as usual.
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    io.out(VERSION);
    return 0;
  }
  const program = await buildProgram(io, args);
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
