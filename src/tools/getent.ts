/** getent: account lookups through NSS (LDAP, systemd-homed, … as well as /etc/passwd). */
import { runTool } from './run.js';

/** getent argv for the passwd entry of an account name or uid. */
export function getentPasswdArgv(key: string | number): string[] {
  return ['getent', 'passwd', String(key)];
}

/** The passwd line of an account (`name:x:uid:…`); rejects with a ToolError when getent fails or knows none. */
export async function getentPasswd(key: string | number): Promise<string> {
  const { stdout } = await runTool({ argv: getentPasswdArgv(key), doing: `looking up account ${key}` }, { timeoutMs: 10_000 });
  return stdout.split('\n')[0] ?? '';
}

/** An account as passwd knows it. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Parses a passwd line (`name:x:uid:gid:gecos:home:shell`); null when it is not one. */
export function parsePasswdLine(line: string): Account | null {
  const [name, , uid, gid, , home] = line.split(':');
  if (!name || !uid || !gid || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) return null;
  return { name, uid: Number(uid), gid: Number(gid), home: home ?? '' };
}

/** The account of a name or uid, or null when there is none (getent knows none, or is missing). */
export async function findAccount(key: string | number): Promise<Account | null> {
  try {
    return parsePasswdLine(await getentPasswd(key));
  } catch {
    return null;
  }
}
