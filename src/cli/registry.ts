import type { RegisterCommand } from './context.js';

/**
 * Every command, in the order `--help` lists them: name → its module, loaded on demand so that
 * `permafrost backup` does not pay for the daemon's web server or doctor's checks at start-up.
 * Add new command files here.
 */
export const COMMANDS: Record<string, () => Promise<RegisterCommand>> = {
  init: async () => (await import('./commands/init.js')).registerInit,
  doctor: async () => (await import('./commands/doctor.js')).registerDoctor,
  backup: async () => (await import('./commands/backup.js')).registerBackup,
  list: async () => (await import('./commands/list.js')).registerList,
  restore: async () => (await import('./commands/restore.js')).registerRestore,
  verify: async () => (await import('./commands/verify.js')).registerVerify,
  check: async () => (await import('./commands/check.js')).registerCheck,
  rekey: async () => (await import('./commands/rekey.js')).registerRekey,
  metrics: async () => (await import('./commands/metrics.js')).registerMetrics,
  prune: async () => (await import('./commands/prune.js')).registerPrune,
  daemon: async () => (await import('./commands/daemon.js')).registerDaemon,
  systemd: async () => (await import('./commands/systemd.js')).registerSystemd,
  sync: async () => (await import('./commands/sync.js')).registerSync,
  'device-id': async () => (await import('./commands/device-id.js')).registerDeviceId,
  status: async () => (await import('./commands/status.js')).registerStatus,
  offsite: async () => (await import('./commands/offsite.js')).registerOffsite,
};

/** The command named on the command line (skipping global options and --config's value), if any. */
export function requestedCommand(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-c' || a === '--config') {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    return Object.hasOwn(COMMANDS, a) ? a : undefined;
  }
  return undefined;
}
