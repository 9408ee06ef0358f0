import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { ToolError } from '../errors.js';

export interface StreamingTool {
  child: ChildProcessByStdio<null, Readable, Readable>;
  stdout: Readable;
  /** Resolves when the tool exited 0; rejects with a ToolError (argv, exit status, stderr tail) otherwise. */
  done: Promise<void>;
}

/**
 * Starts a tool whose stdout is the byte stream to capture. Never through a shell; the argv
 * holds no secrets (they travel in env or files), so it can be shown in errors.
 */
export function spawnStreaming(
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; what: string; signal?: AbortSignal },
): StreamingTool {
  const [bin, ...args] = argv;
  if (!bin) throw new Error('empty argv');
  const child = spawn(bin, args, { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    stderr = (stderr + s).slice(-8192);
  });
  const onAbort = (): void => {
    child.kill('SIGTERM');
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => {
      reject(
        new ToolError(`Cannot start ${bin} for ${opts.what}: ${err.message}; check it is installed and on PATH.`, {
          argv,
          exitStatus: null,
          stderr,
          cause: err,
        }),
      );
    });
    child.once('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (code === 0) return resolve();
      reject(
        new ToolError(`${bin} failed while capturing ${opts.what}: ${firstError(stderr) ?? `exit ${code ?? signal}`}`, {
          argv,
          exitStatus: code,
          stderr,
        }),
      );
    });
  });
  // The caller awaits `done` only after the stream is consumed; until then a failure must not count as unhandled.
  done.catch(() => undefined);
  return { child, stdout: child.stdout, done };
}

/** The tool's own reason: its first "error:" line (libpq tools), else its last line, without the program prefix. */
export function firstError(stderr: string): string | undefined {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /(^|: )(error|fatal):/i.test(l)) ?? lines.at(-1);
  return line?.replace(/^\S+: (error: |fatal: )?/i, '').replace(/\s+/g, ' ');
}
