/**
 * The CLI run in process (src/cli/program.ts main): the commander program with every command, a
 * captured Io, the exit code main() maps. For the unit tests of cli/commands/*: the config loader
 * and the operations are replaced there with vi.mock, so a test sees what an action passes on.
 */
import { main } from '../../src/cli/program.js';
import type { Io } from '../../src/cli/run.js';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';

export interface InProcessResult {
  code: number;
  out: string[];
  err: string[];
}

/** `permafrost ARGS` in this process: exit code and the lines written to stdout and stderr. */
export async function runInProcess(args: string[], over: Partial<Io> = {}): Promise<InProcessResult> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t), isTTY: false, ...over };
  const code = await main(['node', 'permafrost', ...args], io);
  return { code, out, err };
}

/**
 * A config file in a fresh temp folder (a source: database mastodon, vault.dir <tmp>/vault, a
 * 0600 passphrase file), `over` merged over its top-level sections; pass `--config file`.
 */
export function tempConfig(over: Record<string, unknown> = {}): { file: string; dir: string; vault: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-cli-'));
  const vault = path.join(dir, 'vault');
  mkdirSync(vault);
  writeFileSync(path.join(dir, 'passphrase'), 'correct horse battery staple\n', { mode: 0o600 });
  const file = path.join(dir, 'permafrost.yaml');
  const config = { database: { name: 'mastodon' }, vault: { dir: vault, passphraseFile: path.join(dir, 'passphrase') }, ...over };
  writeFileSync(file, stringify(config));
  return { file, dir, vault };
}
