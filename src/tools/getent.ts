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
