import { InvalidArgumentError, type Command } from 'commander';
import type { ConfigOverrides } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Io } from './run.js';

/** What every command gets: where to print, and the config (loaded on first use, from --config). */
export interface CommandContext {
  io: Io;
  /** `overrides` (e.g. --vault) apply to the first load; every command loads the config once. */
  config: (overrides?: ConfigOverrides) => Config;
  /** The --config path given on the command line, if any (init writes there). */
  configFlag: () => string | undefined;
}

/** Each command file exports one of these; main.ts registers them all. */
export type RegisterCommand = (program: Command, ctx: CommandContext) => void;

/**
 * The --vault flag for commands that work on a vault copy alone (`.option(...VAULT_OPTION)`, then
 * `config({ vault: opts.vault })`): over vault.dir, or with no config file the whole config.
 */
export const VAULT_OPTION = [
  '--vault <dir>',
  "the vault folder or a copy of it (the device's Syncthing folder, a USB disk); overrides vault.dir, and needs no config file",
] as const;

export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

/** An option parser for a count such as --jobs: a whole number of at least 1, else commander's bad-flag error (exit 2). */
export function positiveInt(example: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`expected a whole number of at least 1, e.g. ${example}.`);
    }
    return n;
  };
}
