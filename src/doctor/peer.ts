/**
 * Peer authentication (PostgreSQL's `local … peer` lines: Debian's default, and Mastodon's guide):
 * over the unix socket, an OS user connects only as the database role of its own name, unless a
 * map in pg_ident.conf says otherwise. What to do about "Peer authentication failed", for this machine.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { userInfo } from 'node:os';
import { findAccount } from '../tools/getent.js';

/** The role named in libpq's "Peer authentication failed for user "X"", or null for any other error. */
export function peerFailedRole(message: string): string | null {
  const m = /Peer authentication failed for user "([^"]+)"/i.exec(message);
  return m ? m[1]! : null;
}

/** Debian's pg_ident.conf of each cluster (/etc/postgresql/VERSION/NAME/pg_ident.conf). */
export function debianIdentFiles(etc = '/etc/postgresql'): string[] {
  const found: string[] = [];
  try {
    for (const version of readdirSync(etc))
      for (const cluster of readdirSync(path.join(etc, version))) {
        const names = readdirSync(path.join(etc, version, cluster));
        if (names.includes('pg_ident.conf')) found.push(path.join(etc, version, cluster, 'pg_ident.conf'));
      }
  } catch {
    // No Debian layout (or not readable): the fix then says how to find the file.
  }
  return found.sort();
}

export interface PeerFixFacts {
  /** The database role peer authentication refused. */
  role: string;
  /** The OS user running permafrost. */
  osUser: string;
  /** Whether an OS user named like the role exists here. */
  roleAccountExists: boolean;
  database: string;
  configPath: string;
  identFiles: string[];
}

/** The two lines that let OS user `osUser` connect as `role` to `database` over the socket, and where they go. */
export function peerMapLines(f: Pick<PeerFixFacts, 'osUser' | 'role' | 'database' | 'identFiles'>): {
  ident: string;
  identFile: string;
  hba: string;
} {
  return {
    ident: `permafrost ${f.osUser} ${f.role}`,
    identFile: f.identFiles.length === 1 ? f.identFiles[0]! : 'pg_ident.conf',
    hba: `local ${f.database} ${f.role} peer map=permafrost`,
  };
}

/** The fix, one paragraph: run as the OS user of the role's name, or map this OS user to the role. */
export function peerFix(f: PeerFixFacts): string {
  const lines = peerMapLines(f);
  const where =
    f.identFiles.length === 1
      ? lines.identFile
      : 'pg_ident.conf (`runuser -u postgres -- psql -XAtc "SHOW ident_file"` names it; pg_hba.conf is beside it)';
  const map =
    `or let OS user ${f.osUser} connect as ${f.role}: add the line \`${lines.ident}\` to ${where}, and above the ` +
    `first \`local\` line of pg_hba.conf the line \`${lines.hba}\`, then \`systemctl reload postgresql\``;
  const runAs = f.roleAccountExists
    ? `run permafrost as the OS user ${f.role} (peer authentication lets only it connect as the role ${f.role}): ` +
      `\`runuser -u ${f.role} -- permafrost --config ${f.configPath} doctor\`, and \`permafrost --config ${f.configPath} systemd --install --user ${f.role}\` for the timers; `
    : `there is no OS user ${f.role} here to run permafrost as; `;
  return runAs + map;
}

/** peerFix for this machine, when `message` is a peer authentication failure; else null. */
export async function peerFixHere(message: string, database: string, configPath: string): Promise<string | null> {
  const role = peerFailedRole(message);
  if (role === null) return null;
  return peerFix({
    role,
    osUser: userInfo().username,
    roleAccountExists: (await findAccount(role)) !== null,
    database,
    configPath,
    identFiles: debianIdentFiles(),
  });
}
