/**
 * Real OS users, as a stock Mastodon server has them (mastodon, postgres), and the CLI run as one
 * of them with runuser, the way an admin runs it from a root shell.
 */
import { spawn, spawnSync } from 'node:child_process';
import { CLI, type CliResult } from './env.js';

/**
 * Creates the OS user `name` (a system account, no login shell) unless it exists, as a stock
 * Mastodon server has it; returns its uid. Root only.
 */
export function ensureOsUser(name: string): { uid: number; gid: number } {
  const id = (flag: string) => spawnSync('id', [flag, name], { encoding: 'utf8' });
  if (id('-u').status !== 0) {
    const r = spawnSync('useradd', ['--system', '--user-group', '--create-home', '--shell', '/usr/sbin/nologin', name], {
      encoding: 'utf8',
    });
    // Another test file may have created it at the same moment.
    if (r.status !== 0 && id('-u').status !== 0) throw new Error(`useradd ${name} failed (${r.status}): ${r.stderr}`);
  }
  return { uid: Number(id('-u').stdout.trim()), gid: Number(id('-g').stdout.trim()) };
}

/** Runs `argv` as the OS user `user` (runuser, from root), from `/` (which every user may enter). */
export function runAs(user: string, argv: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
  const child = spawn('runuser', ['-u', user, '--', ...argv], {
    cwd: '/',
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The built CLI run as the OS user `user`. */
export function runCliAs(user: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
  return runAs(user, [process.execPath, CLI, ...args], opts);
}
