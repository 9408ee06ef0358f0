#!/usr/bin/env node
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { VERSION } from '../version.js';
import { registerBackup } from './commands/backup.js';
import { registerInit } from './commands/init.js';
import { registerDoctor } from './commands/doctor.js';
import { registerList } from './commands/list.js';
import { registerRestore } from './commands/restore.js';
import { registerPrune } from './commands/prune.js';
import { registerDaemon } from './commands/daemon.js';
import { registerSystemd } from './commands/systemd.js';
import { registerVerify } from './commands/verify.js';
import { registerMetrics } from './commands/metrics.js';
import { registerSync } from './commands/sync.js';
import { registerDeviceId } from './commands/device-id.js';
import { registerStatus } from './commands/status.js';
import { examples, type CommandContext, type RegisterCommand } from './context.js';
import { processIo, reportError, type Io } from './run.js';

/** Every command, in the order `--help` lists them. Add new command files here. */
const COMMANDS: RegisterCommand[] = [registerInit, registerDoctor, registerBackup, registerList, registerRestore, registerVerify, registerMetrics, registerPrune, registerDaemon, registerSystemd, registerSync, registerDeviceId, registerStatus];

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
  let loaded: Config | undefined;
  const ctx: CommandContext = {
    io,
    configFlag: () => program.opts<{ config?: string }>().config,
    config: () => (loaded ??= loadConfig(program.opts<{ config?: string }>().config)),
  };
  for (const register of COMMANDS) register(program, ctx);
  return program;
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const program = buildProgram(io).exitOverride();
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

// `permafrost list | head`: a reader that goes away early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err, processIo);
  },
);
