import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A throwaway PostgreSQL cluster on a private unix socket (no TCP). */
export interface PgCluster {
  /** Folder holding the unix socket: use as database.host / PGHOST. */
  socketDir: string;
  port: number;
  /** Superuser to connect as. */
  user: string;
  binDir: string;
  dataDir: string;
  root: string;
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  /** Runs SQL through psql against `db`; returns stdout. */
  psql(db: string, sql: string): string;
}

/** The newest installed PostgreSQL server's bin folder (Debian keeps them versioned). */
export function findPgBinDir(): string {
  if (process.env.PERMAFROST_TEST_PG_BIN) return process.env.PERMAFROST_TEST_PG_BIN;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(path.join(base, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error('No PostgreSQL server found under /usr/lib/postgresql: apt-get install postgresql');
  return path.join(base, versions[0], 'bin');
}

const isRoot = process.getuid?.() === 0;

/** As root, initdb and pg_ctl refuse to run: they run as the postgres system user. */
function asServerUser(argv: string[]): string[] {
  return isRoot ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
}

function run(argv: string[]): void {
  const [bin, ...args] = argv;
  const r = spawnSync(bin!, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

/**
 * The folder of initdb results a test run shares (test/harness/global-setup.ts makes it, and removes
 * it after the run): a cluster copies the pristine data directory initdb made once for the same
 * arguments instead of running initdb again (about a second of CPU each on these machines).
 */
export const TEMPLATES_ENV = 'PERMAFROST_TEST_PG_TEMPLATES';

/** `dataDir` as `initdb` (argv without -D) makes it: copied from the run's template of the same arguments, made first if missing. */
function initDataDir(initdb: string[], dataDir: string): void {
  const templates = process.env[TEMPLATES_ENV];
  if (!templates || !existsSync(templates)) {
    run(asServerUser([...initdb, '-D', dataDir]));
    return;
  }
  const template = path.join(templates, createHash('sha256').update(initdb.join('\0')).digest('hex').slice(0, 16));
  if (!existsSync(template)) {
    // Made aside and renamed into place: another worker may be making the same one meanwhile.
    const making = mkdtempSync(`${template}.making-`);
    chmodSync(making, 0o755);
    const data = path.join(making, 'data');
    mkdirSync(data);
    if (isRoot) execFileSync('chown', ['postgres:postgres', data]);
    run(asServerUser([...initdb, '-D', data]));
    try {
      renameSync(making, template);
    } catch {
      rmSync(making, { recursive: true, force: true });
    }
  }
  // -a keeps the postgres owner and the 0700 modes initdb gave.
  run(['cp', '-a', `${path.join(template, 'data')}/.`, dataDir]);
}

export interface ClusterOptions {
  /** Keep the cluster in this folder (created if missing) instead of a fresh temp folder; an existing cluster there is reused. */
  root?: string;
  /** Keep fsync on, as on a production server (default off: tests want speed, not durability). */
  fsync?: boolean;
  /**
   * Debian's and Mastodon's default: local (unix socket) connections use peer authentication, so an
   * OS user connects only as the database role of its own name. Needs root (initdb runs as postgres);
   * the cluster's own psql() then runs as the postgres OS user.
   */
  peer?: boolean;
}

export function startCluster(port = 5432, opts: ClusterOptions = {}): PgCluster {
  const binDir = findPgBinDir();
  const root = opts.root ?? mkdtempSync(path.join(tmpdir(), 'permafrost-pg-'));
  execFileSync('mkdir', ['-p', root]);
  chmodSync(root, 0o755);
  const reuse = existsSync(path.join(root, 'data', 'PG_VERSION'));
  const dataDir = path.join(root, 'data');
  const socketDir = path.join(root, 'sock');
  const logFile = path.join(root, 'server.log');
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    for (const d of [dataDir, socketDir]) {
      execFileSync('mkdir', ['-p', d]);
      chownSync(d, uid, gid);
    }
    if (!existsSync(logFile)) writeFileSync(logFile, '');
    chownSync(logFile, uid, gid);
  }
  const user = isRoot ? 'postgres' : (process.env.USER ?? 'postgres');
  if (opts.peer && (!isRoot || user !== 'postgres')) throw new Error('startCluster({ peer: true }) needs root (initdb runs as postgres)');
  const auth = opts.peer ? ['--auth-local=peer', '--auth-host=scram-sha-256'] : ['--auth=trust'];
  const initdb = [path.join(binDir, 'initdb'), '-U', user, ...auth, '-E', 'UTF8', '--locale=C.UTF-8', '-N'];
  if (!reuse) initDataDir(initdb, dataDir);
  const cluster: PgCluster = {
    socketDir,
    port,
    user,
    binDir,
    dataDir,
    root,
    start() {
      execFileSync('mkdir', ['-p', socketDir]);
      run(
        asServerUser([
          path.join(binDir, 'pg_ctl'),
          '-D',
          dataDir,
          '-l',
          logFile,
          '-w',
          '-o',
          `-p ${port} -k ${socketDir} -c listen_addresses='' -c fsync=${opts.fsync ? 'on' : 'off'} -c max_connections=50`,
          'start',
        ]),
      );
    },
    stop(mode = 'fast') {
      spawnSync(
        asServerUser([path.join(binDir, 'pg_ctl'), '-D', dataDir, '-m', mode, '-w', 'stop'])[0]!,
        asServerUser([path.join(binDir, 'pg_ctl'), '-D', dataDir, '-m', mode, '-w', 'stop']).slice(1),
        { encoding: 'utf8' },
      );
    },
    psql(db, sql) {
      // With peer authentication only the postgres OS user connects as postgres.
      const [bin, ...args] = (opts.peer ? asServerUser : (a: string[]) => a)([
        path.join(binDir, 'psql'),
        ...['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-U', user, '-d', db],
      ]);
      return execFileSync(bin!, args, { input: sql, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, cwd: '/' });
    },
  };
  cluster.start();
  return cluster;
}

export function destroyCluster(c: PgCluster): void {
  c.stop('immediate');
  rmSync(c.root, { recursive: true, force: true });
}
