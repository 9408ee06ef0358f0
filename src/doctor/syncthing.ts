import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import type { Secret } from '../config/secret-values.js';
import { errorMessage } from '../errors.js';
import { parseSyncthingUrl } from '../replicate/client.js';
import { applySync } from '../replicate/apply.js';
import { listSnapshots } from '../vault/store.js';
import type { CheckLine } from './checks.js';

/** Who a process runs as: what the kernel checks file access against. */
export interface Identity {
  uid: number;
  gids: number[];
}

export interface FileStat {
  uid: number;
  gid: number;
  mode: number;
}

/** Whether `who` has every one of `need` ('r', 'w', 'x') on a file with `st`, as the kernel decides it. */
export function mayAccess(st: FileStat, who: Identity, need: string): boolean {
  if (who.uid === 0) return true;
  const shift = st.uid === who.uid ? 6 : who.gids.includes(st.gid) ? 3 : 0;
  const bits = (st.mode >> shift) & 0o7;
  const want = (need.includes('r') ? 4 : 0) | (need.includes('w') ? 2 : 0) | (need.includes('x') ? 1 : 0);
  return (bits & want) === want;
}

/** Uid and groups of a process, from /proc/PID/status. */
export function parseProcStatus(text: string): Identity | null {
  const uid = /^Uid:\s+(\d+)/m.exec(text);
  const gid = /^Gid:\s+(\d+)/m.exec(text);
  if (!uid || !gid) return null;
  const groups = /^Groups:\s*([\d ]*)$/m.exec(text)?.[1]?.trim();
  const extra = groups ? groups.split(/\s+/).map(Number) : [];
  return { uid: Number(uid[1]), gids: [Number(gid[1]), ...extra] };
}

/** Socket inodes listening on `port` (any address) in /proc/net/tcp{,6}. */
async function listeningInodes(port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN; column 9 is the inode.
      if (cols.length < 10 || cols[3] !== '0A') continue;
      if (Number.parseInt(cols[1]!.split(':')[1] ?? '', 16) === port) inodes.add(cols[9]!);
    }
  }
  return inodes;
}

/** The process holding one of `inodes` open, found through /proc/PID/fd (needs the right to look). */
async function processOfSocket(inodes: Set<string>): Promise<Identity | null> {
  if (inodes.size === 0) return null;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m && inodes.has(m[1]!)) {
        const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
        return parseProcStatus(status);
      }
    }
  }
  return null;
}

/** Who Syncthing runs as: the owner of its GUI unix socket, or of the process listening on its GUI port. */
export async function syncthingIdentity(url: string): Promise<Identity | null> {
  const target = parseSyncthingUrl(url);
  if ('socketPath' in target) {
    const st = await stat(target.socketPath).catch(() => null);
    return st ? { uid: st.uid, gids: [st.gid] } : null;
  }
  return processOfSocket(await listeningInodes(target.port));
}

/** Paths Syncthing must read: each ancestor needs x, the folder r+x, the sampled entries r (folders r+x). */
export async function accessProblems(dir: string, who: Identity, sample: string[]): Promise<string[]> {
  const problems: string[] = [];
  const resolved = path.resolve(dir);
  const ancestors: string[] = [];
  for (let p = path.dirname(resolved); ; p = path.dirname(p)) {
    ancestors.unshift(p);
    if (p === path.dirname(p)) break;
  }
  for (const a of ancestors) {
    const st = await stat(a).catch(() => null);
    if (st && !mayAccess(st, who, 'x')) problems.push(`${a} (cannot enter: mode 0${(st.mode & 0o777).toString(8)})`);
  }
  const st = await stat(resolved).catch(() => null);
  if (!st) return problems;
  if (!mayAccess(st, who, 'rx')) problems.push(`${resolved} (cannot list: mode 0${(st.mode & 0o777).toString(8)})`);
  for (const p of sample) {
    const s = await stat(p).catch(() => null);
    if (s && !mayAccess(s, who, s.isDirectory() ? 'rx' : 'r')) problems.push(`${p} (cannot read: mode 0${(s.mode & 0o777).toString(8)})`);
  }
  return problems;
}

async function vaultSample(vaultDir: string): Promise<string[]> {
  const newest = (await listSnapshots(vaultDir).catch(() => []))[0];
  if (!newest) return [];
  const names = await readdir(newest.dir).catch(() => [] as string[]);
  return [newest.dir, ...names.map((n) => path.join(newest.dir, n))];
}

async function mediaSample(mediaDir: string): Promise<string[]> {
  const names = await readdir(mediaDir).catch(() => [] as string[]);
  return names.slice(0, 20).map((n) => path.join(mediaDir, n));
}

/**
 * Syncthing's API is reachable and `sync apply` would change nothing; and the user Syncthing runs
 * as can read the vault and the media folder (the chmod/chgrp dance admins otherwise do by hand).
 */
export async function checkSyncthing(config: Config, apiKey: Secret | undefined): Promise<CheckLine[]> {
  const st = config.syncthing;
  if (!st) {
    return [
      {
        check: 'syncthing',
        status: 'warn',
        message: 'not configured: snapshots stay on this server only',
        fix: 'add a syncthing section and run `permafrost sync apply`',
      },
    ];
  }
  const lines: CheckLine[] = [];
  try {
    const plan = await applySync(config, apiKey, { dryRun: true });
    lines.push(
      plan.changes.length === 0
        ? { check: 'syncthing', status: 'ok', message: `${st.url} is reachable and its devices and folders match the config` }
        : {
            check: 'syncthing',
            status: 'fail',
            message: `${st.url} does not match the config (${plan.changes.length} change${plan.changes.length > 1 ? 's' : ''} pending: ${plan.changes.map((c) => c.summary).join('; ')})`,
            fix: 'run `permafrost sync apply`',
          },
    );
    for (const w of plan.warnings) {
      lines.push({ check: 'media', status: 'warn', message: w.message, fix: w.fix });
    }
  } catch (err) {
    lines.push({
      check: 'syncthing',
      status: 'fail',
      message: errorMessage(err),
      fix: 'start Syncthing or fix the syncthing section, then run `permafrost sync apply`',
    });
  }
  if (st.role !== 'source') return lines;
  const who = await syncthingIdentity(st.url).catch(() => null);
  if (!who) {
    lines.push({
      check: 'permissions',
      status: 'warn',
      message: `cannot tell which user runs Syncthing at ${st.url}, so its access to the vault and media was not checked`,
      fix: "run doctor as root, or check by hand that Syncthing's user can read vault.dir and media.dir",
    });
    return lines;
  }
  const problems = [
    ...(await accessProblems(config.vault.dir, who, await vaultSample(config.vault.dir))),
    ...(config.media ? await accessProblems(config.media.dir, who, await mediaSample(config.media.dir)) : []),
  ];
  lines.push(
    problems.length === 0
      ? {
          check: 'permissions',
          status: 'ok',
          message: `Syncthing (uid ${who.uid}) can read the vault${config.media ? ' and the media' : ''}`,
        }
      : {
          check: 'permissions',
          status: 'fail',
          message: `Syncthing (uid ${who.uid}) cannot read: ${problems.slice(0, 5).join(', ')}${problems.length > 5 ? ` and ${problems.length - 5} more` : ''}`,
          fix: `give Syncthing's group read access, e.g. \`chgrp -R GROUP DIR && chmod -R g+rX DIR\` and add Syncthing's user to GROUP`,
        },
  );
  return lines;
}
