/**
 * Runs a capture tool (pg_dump) and writes its output as one encrypted part of a snapshot.
 *
 * With igzip installed (and a compression level of 1–3) the tool's stdout is an OS pipe straight
 * into igzip, so the plaintext never passes through this process; only the compressed stream
 * (a quarter of the size) is encrypted here. Measured on the benchmark database this removes a
 * hop that cost ~0.5 s per 200 MB (see bench/ and README, Performance). Otherwise the tool's
 * stdout flows through writeEncryptedPart as before.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { firstError, spawnStreaming } from '../capture/spawn-stream.js';
import { ToolError } from '../errors.js';
import { HashCounter } from './crypto.js';
import { fsyncFile } from './fs-durable.js';
import type { ManifestFile } from './manifest.js';
import { chooseCompressor, encryptPreDeflated, findIgzip, GzipToRawDeflate, type EncryptOptions } from './openpgp-stream.js';
import { vaultWriteCode } from './store.js';
import { writeEncryptedPart } from './write-part.js';

export interface CaptureTool {
  argv: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** What is captured, for messages ("database \"mastodon\""). */
  what: string;
  signal?: AbortSignal;
}

/** Bytes a process has written so far (Linux /proc), or null when unknown. */
function bytesWritten(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /^wchar:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The exact size from gzip's ISIZE (size mod 2^32) and an estimate good to ±2 GiB. */
export function sizeFromIsize(isize: number, estimate: number): number {
  const k = Math.max(0, Math.round((estimate - isize) / 2 ** 32));
  return isize + k * 2 ** 32;
}

function waitTool(child: ChildProcess, tool: CaptureTool, stderr: () => string): Promise<void> {
  const bin = tool.argv[0]!;
  return new Promise<void>((resolve, reject) => {
    child.once('error', (err) =>
      reject(
        new ToolError(`Cannot start ${bin} for ${tool.what}: ${err.message}; check it is installed and on PATH.`, {
          argv: tool.argv,
          exitStatus: null,
          stderr: stderr(),
          cause: err,
        }),
      ),
    );
    child.once('close', (code, signal) => {
      if (code === 0) return resolve();
      reject(
        new ToolError(`${bin} failed while capturing ${tool.what}: ${firstError(stderr()) ?? `exit ${code ?? signal}`}`, {
          argv: tool.argv,
          exitStatus: code,
          stderr: stderr(),
        }),
      );
    });
  });
}

/**
 * Captures `tool`'s stdout into `dir/name`, encrypted (and compressed per `opts`), fsynced; resolves
 * with the manifest entry once the tool exited 0 and the file is complete, rejects otherwise (the
 * caller discards the partial snapshot).
 */
export async function writeEncryptedCapture(
  dir: string,
  name: ManifestFile['name'],
  part: ManifestFile['part'],
  tool: CaptureTool,
  passphrase: string,
  progress?: (plainBytes: number) => void,
  opts: EncryptOptions = {},
): Promise<ManifestFile> {
  const igzip = chooseCompressor(opts) === 'igzip' ? findIgzip() : null;
  if (!igzip) {
    const run = spawnStreaming(tool.argv, { env: tool.env, what: tool.what, signal: tool.signal });
    try {
      const file = await writeEncryptedPart(dir, name, part, run.stdout, passphrase, progress, opts);
      await run.done;
      return file;
    } catch (err) {
      run.child.kill('SIGTERM');
      await run.done.catch(() => undefined);
      throw err;
    }
  }

  const started = Date.now();
  const level = Math.min(3, Math.max(1, opts.compressLevel ?? 1));
  const gz = spawn(igzip, [`-${level}`, '-c', '-n'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let gzErr = '';
  gz.stderr.setEncoding('utf8');
  gz.stderr.on('data', (d: string) => (gzErr = (gzErr + d).slice(-2000)));
  const [bin, ...args] = tool.argv;
  const child = spawn(bin!, args, { env: tool.env, stdio: ['ignore', gz.stdin, 'pipe'] });
  gz.stdin.destroy(); // the tool holds the pipe's write end now; igzip sees EOF when it exits
  let toolErr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (toolErr = (toolErr + d).slice(-8192)));
  const onAbort = (): void => void child.kill('SIGTERM');
  tool.signal?.addEventListener('abort', onAbort, { once: true });
  const toolDone = waitTool(child, tool, () => toolErr);
  toolDone.catch(() => undefined);
  const gzDone = new Promise<void>((resolve, reject) => {
    gz.once('error', (err) => reject(new Error(`Cannot start igzip: ${err.message}`)));
    gz.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`igzip failed (${code ?? signal}): ${gzErr.trim()}`))));
  });
  gzDone.catch(() => undefined);

  let estimate = 0;
  const poll = setInterval(() => {
    const n = bytesWritten(child.pid);
    if (n !== null && n > estimate) {
      estimate = n;
      progress?.(n);
    }
  }, 250);
  const raw = new GzipToRawDeflate();
  const hasher = new HashCounter();
  const file = path.join(dir, name);
  try {
    await Promise.all([
      pipeline(gz.stdout, raw),
      pipeline(encryptPreDeflated(raw, passphrase), hasher, createWriteStream(file, { mode: 0o640, flags: 'wx' })),
    ]);
    await toolDone;
    await gzDone;
  } catch (err) {
    child.kill('SIGTERM');
    gz.kill('SIGTERM');
    // A failed tool explains more than a broken pipe further down; a failed write (full disk) more than the tool it killed.
    if (!vaultWriteCode(err)) await toolDone;
    throw err;
  } finally {
    clearInterval(poll);
    tool.signal?.removeEventListener('abort', onAbort);
  }
  await fsyncFile(file);
  const plainBytes = sizeFromIsize(raw.isize ?? 0, Math.max(estimate, bytesWritten(child.pid) ?? 0));
  progress?.(plainBytes);
  return { name, part, bytes: hasher.bytes, sha256: hasher.sha256(), plainBytes, durationMs: Date.now() - started };
}
