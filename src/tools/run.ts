/**
 * The one way permafrost starts an outside program. Never through a shell; the argv holds no
 * secrets (they travel in env, files or fd 3), so it can be shown in errors. Every failure — not
 * started, non-zero exit, killed by a signal, stopped by an AbortSignal — rejects with a ToolError
 * that names the program and what it was doing, with its exit status or signal and stderr tail.
 *
 * Streaming: stdout is a Readable the caller consumes, or is wired to a file descriptor or to
 * another program's stdin as an OS pipe (no byte passes through this process).
 *
 * Lifetime: every program is started through util-linux `setpriv --pdeathsig KILL`, so the kernel
 * kills it when permafrost dies, even by SIGKILL (the OOM killer): no orphan gpg or pg_restore
 * keeps writing plaintext or into a database. Without setpriv the program is started directly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ToolError } from '../errors.js';

/** What to run and why. */
export interface ToolRun {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** What the program is doing, for messages: `capturing database "x"`, `restoring snapshot S`. */
  doing: string;
  /** Aborting it ends the program (SIGTERM); `done` then rejects. */
  signal?: AbortSignal;
}

/** Where stdout goes: a pipe the caller reads, nowhere, a file descriptor, or another program's stdin. */
export type StdoutTo = 'pipe' | 'ignore' | number | Writable;

export interface ToolIo<O extends StdoutTo = StdoutTo> {
  /** 'pipe': the caller writes `stdin`; default 'ignore'. */
  stdin?: 'ignore' | 'pipe';
  /** Default 'pipe'. A Writable must be another child's stdin: this process's copy is closed once handed over. */
  stdout?: O;
  /** Written to fd 3, which is then closed: a secret the program reads from there (never argv or env). */
  fd3?: string;
}

export interface RunningTool<O extends StdoutTo = 'pipe'> {
  argv: readonly string[];
  child: ChildProcess;
  stdin: Writable | null;
  stdout: O extends 'pipe' ? Readable : null;
  /** Resolves once the program exited 0; rejects with a ToolError. Never counts as unhandled. */
  done: Promise<void>;
  /** What the program printed on stderr so far (the last 8 KiB). */
  stderr(): string;
  /** Ends the program (SIGTERM) when it still runs; its failure then does not explain a broken pipeline. */
  stop(): void;
  /** Whether `stop()` or the AbortSignal ended it while it ran (some programs exit 1 on SIGTERM, e.g. pg_dump). */
  readonly stopped: boolean;
}

const STDERR_KEEP = 8192;

/** The kernel's flag of a task that is exiting (include/linux/sched.h). */
const PF_EXITING = 0x4;

/**
 * Whether the process has exited (or is exiting) but Node has not seen it yet (Linux /proc): its
 * own exit status then tells why it ended, and a SIGTERM now would not make its failure ours.
 */
function exitedUnreported(pid: number | undefined): boolean {
  if (pid === undefined) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command: state, ppid, pgrp, session, tty_nr, tpgid, flags. A zombie has exited; so
    // has a process in do_exit (PF_EXITING), which has already closed its pipes, so its reader saw
    // EOF, but is not a zombie yet: a SIGTERM now would not change its exit status, only hide it.
    const [state, , , , , , flags] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return state === 'Z' || state === 'X' || (Number(flags) & PF_EXITING) !== 0;
  } catch {
    return false;
  }
}

/** The executable `bin` names, looked up on `PATH` as execvp does; null when there is none. */
function executable(bin: string, pathVar: string | undefined): string | null {
  const candidates = bin.includes('/') ? [bin] : (pathVar ?? '').split(':').map((dir) => path.join(dir || '.', bin));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return path.resolve(file);
    } catch {
      // not this one
    }
  }
  return null;
}

let setpriv: string | null | undefined;

/**
 * The command line that starts `bin` with the parent-death signal set (see the file comment).
 * A program that is not on PATH is started directly, so its absence is reported as before.
 */
function dyingWithUs(bin: string, args: string[], env: NodeJS.ProcessEnv | undefined): [string, string[]] {
  setpriv ??= executable('setpriv', process.env.PATH) ?? executable('/usr/bin/setpriv', undefined);
  const resolved = executable(bin, (env ?? process.env).PATH);
  if (!setpriv || !resolved) return [bin, args];
  return [setpriv, ['--pdeathsig', 'KILL', '--', resolved, ...args]];
}

/** The tool's own reason: its first "error:" line (libpq tools), else its last line, without the program prefix. */
export function firstError(stderr: string): string | undefined {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines.find((l) => /(^|: )(error|fatal):/i.test(l)) ?? lines.at(-1);
  return line
    ?.replace(/^\S+: (error: |fatal: )?/i, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Starts a program; see the file comment. `stdout` defaults to a pipe the caller must consume. */
export function startTool<O extends StdoutTo = 'pipe'>(run: ToolRun, io: ToolIo<O> = {}): RunningTool<O> {
  const [bin, ...args] = run.argv;
  if (!bin) throw new Error('empty argv');
  const stdout = io.stdout ?? 'pipe';
  const stdio: (string | number | Writable)[] = [io.stdin ?? 'ignore', stdout, 'pipe'];
  if (io.fd3 !== undefined) stdio.push('pipe');
  const [file, fileArgs] = dyingWithUs(bin, args, run.env);
  const child = spawn(file, fileArgs, { env: run.env, stdio: stdio as ('pipe' | 'ignore' | number | Writable)[] });
  // The other program holds the pipe's write end now; it sees EOF once this one exits.
  if (typeof stdout === 'object') stdout.destroy();
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => {
    stderr = (stderr + s).slice(-STDERR_KEEP);
  });
  if (io.fd3 !== undefined) {
    const fd3 = child.stdio[3] as Writable;
    // A program that exits without reading fd 3 shows in its exit status.
    fd3.on('error', () => undefined);
    fd3.end(io.fd3);
  }
  // An early exit of the program shows in its exit status, not as an EPIPE here.
  child.stdin?.on('error', () => undefined);
  let stopped = false;
  const stop = (): void => {
    if (child.exitCode !== null || child.signalCode !== null || exitedUnreported(child.pid)) return;
    stopped = true;
    child.kill('SIGTERM');
  };
  run.signal?.addEventListener('abort', stop, { once: true });
  if (run.signal?.aborted) stop();
  const fail = (message: string, exitStatus: number | null, signal: NodeJS.Signals | null, cause?: unknown): ToolError =>
    new ToolError(message, { argv: run.argv, exitStatus, signal, stderr, cause });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      run.signal?.removeEventListener('abort', stop);
      reject(fail(`Cannot start ${bin} for ${run.doing}: ${err.code ?? err.message}; check it is installed and on PATH.`, null, null, err));
    });
    // 'close': the exit status and all of stdout and stderr are in.
    child.once('close', (code, signal) => {
      run.signal?.removeEventListener('abort', stop);
      if (code === 0) return resolve();
      if (code === null && signal === null) return; // not started: 'error' rejected already
      if (stopped) return reject(fail(`${bin} was stopped while ${run.doing}.`, code, signal, run.signal?.reason));
      const why = firstError(stderr) ?? (signal ? `killed by ${signal}` : `exit ${code}`);
      reject(fail(`${bin} failed while ${run.doing}: ${why}`, code, signal));
    });
  });
  // The caller awaits `done` only after consuming the stream; until then a failure must not count as unhandled.
  done.catch(() => undefined);
  return {
    argv: run.argv,
    child,
    stdin: child.stdin,
    stdout: child.stdout as RunningTool<O>['stdout'],
    done,
    stderr: () => stderr,
    stop,
    get stopped() {
      return stopped;
    },
  };
}

/** Runs a program to its end and returns what it printed (e.g. `--version`, `pg_restore --list`). */
export async function runTool(
  run: ToolRun,
  opts: { timeoutMs?: number; maxBuffer?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  // Not AbortSignal.timeout: inside AbortSignal.any, Node 20-24 may collect it before it fires
  // (nodejs/node#57736), and a hung program then ran on. This timer is held until the program ends.
  const timeout = new AbortController();
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => timeout.abort(new Error(`timed out after ${opts.timeoutMs} ms`)), opts.timeoutMs);
  const signal = timer === undefined ? run.signal : AbortSignal.any([timeout.signal, ...(run.signal ? [run.signal] : [])]);
  const tool = startTool({ ...run, signal });
  const max = opts.maxBuffer ?? 64 * 1024 * 1024;
  const chunks: Buffer[] = [];
  let size = 0;
  tool.stdout.on('data', (b: Buffer) => {
    size += b.length;
    if (size > max) tool.stop();
    else chunks.push(b);
  });
  try {
    await tool.done;
  } finally {
    clearTimeout(timer);
  }
  return { stdout: Buffer.concat(chunks).toString('utf8'), stderr: tool.stderr() };
}

/**
 * A program that died because the next one in the pipeline stopped reading: SIGPIPE, or (Node's
 * stdio pipes are socket pairs) EPIPE / ECONNRESET reported by a program that handles the error.
 */
function brokenPipe(e: ToolError): boolean {
  return e.signal === 'SIGPIPE' || /broken pipe|connection reset by peer/i.test(e.stderrTail);
}

/**
 * The failure that explains a broken pipeline of programs (listed producer first): the first one
 * that failed on its own — not one stopped by us, nor one killed by SIGPIPE because the next one
 * died — else `err` (e.g. the vault's disk is full). Stops every program first.
 */
export async function pipelineFailure(err: unknown, tools: readonly RunningTool<StdoutTo>[]): Promise<unknown> {
  for (const t of tools) t.stop();
  const failures = await Promise.all(
    tools.map((t) =>
      t.done.then(
        () => null,
        (e: unknown) => e,
      ),
    ),
  );
  const own = failures.filter((e, i): e is ToolError => e instanceof ToolError && !tools[i]!.stopped);
  return own.find((e) => !brokenPipe(e)) ?? own[0] ?? err;
}
