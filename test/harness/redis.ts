import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A throwaway redis-server on a private unix socket (port 0: no TCP at all). */
export interface RedisServer {
  socket: string;
  /** unix:// URL for redis.url. */
  url: string;
  dir: string;
  password: string | undefined;
  pid: number;
  /** Runs redis-cli against this server (password through REDISCLI_AUTH); returns stdout. */
  cli(...args: string[]): string;
  stop(): void;
}

let counter = 0;

function waitFor(check: () => boolean, what: string, ms = 10_000): void {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    spawnSync('sleep', ['0.05']);
  }
}

/**
 * Starts redis-server in a temp folder: `--save ''` (nothing on disk unless asked), a unix socket,
 * optionally `--requirepass`. With `rdb` it loads that file at start (--dir/--dbfilename); `args` are appended.
 */
export function startRedis(opts: { password?: string; rdb?: string; args?: string[] } = {}): RedisServer {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-redis-'));
  const socket = path.join(dir, `redis-${process.pid}-${++counter}.sock`);
  const pidFile = path.join(dir, 'redis.pid');
  const args = [
    '--port',
    '0',
    '--unixsocket',
    socket,
    '--unixsocketperm',
    '700',
    '--save',
    '',
    '--appendonly',
    'no',
    // Redis waits repl-diskless-sync-delay (default 5 s) for more replicas before streaming an RDB;
    // production servers keep that default, tests need not wait.
    '--repl-diskless-sync-delay',
    '0',
    '--daemonize',
    'yes',
    '--pidfile',
    pidFile,
    '--logfile',
    path.join(dir, 'redis.log'),
    '--dir',
    opts.rdb ? path.dirname(opts.rdb) : dir,
    '--dbfilename',
    opts.rdb ? path.basename(opts.rdb) : 'dump.rdb',
  ];
  if (opts.password) args.push('--requirepass', opts.password);
  if (opts.args) args.push(...opts.args);
  execFileSync('redis-server', args);
  // The pid file can exist before redis has written its number: an empty read would be pid 0,
  // and stop()'s process.kill(0, 'SIGTERM') would then signal this whole process group.
  let pid = 0;
  waitFor(() => {
    if (!existsSync(socket) || !existsSync(pidFile)) return false;
    pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0;
  }, 'redis-server to start and write its pid file');
  const env = { ...process.env, ...(opts.password ? { REDISCLI_AUTH: opts.password } : {}) };
  const server: RedisServer = {
    socket,
    url: `unix://${socket}`,
    dir,
    password: opts.password,
    pid,
    cli(...cmd) {
      return execFileSync('redis-cli', ['-s', socket, '--no-auth-warning', ...cmd], { env, encoding: 'utf8' });
    },
    stop() {
      if (!(pid > 0)) throw new Error(`redis harness: refusing to signal pid ${pid}`);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      waitFor(() => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }, 'redis-server to stop');
    },
  };
  waitFor(() => {
    try {
      return server.cli('PING').trim() === 'PONG';
    } catch {
      return false;
    }
  }, 'redis-server to answer PING');
  return server;
}

/** Stops the server and removes its folder. */
export function destroyRedis(server: RedisServer): void {
  server.stop();
  rmSync(server.dir, { recursive: true, force: true });
}
