/**
 * Runs a capture tool (pg_dump) and writes its output as one encrypted part of a snapshot.
 *
 * With igzip installed (and a compression level of 1–3) the tool's stdout is an OS pipe straight
 * into igzip, so the plaintext never passes through this process; only the compressed stream
 * (a quarter of the size) is encrypted here. Measured on the benchmark database this removes a
 * hop that cost ~0.5 s per 200 MB (see bench/ and README, Performance). Otherwise the tool's
 * stdout flows through writeEncryptedPart and Node's zlib.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ToolError } from '../errors.js';
import { chooseCompressor, findIgzip, GzipToRawDeflate, startIgzip } from '../tools/igzip.js';
import { pipelineFailure, startTool, type RunningTool, type StdoutTo } from '../tools/run.js';
import { HashCounter } from './hash.js';
import { messageKeysFor } from './keys.js';
import { fsyncFile } from '../vault/fs-durable.js';
import { PART_FILE, type ManifestFile } from '../vault/manifest.js';
import { encryptPreDeflated } from './openpgp-stream.js';
import { vaultWriteCode } from '../vault/store.js';
import { writeEncryptedPart, type PartTarget } from './write-part.js';

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

/** igzip's output that is no gzip stream (or a cut one) is igzip's failure, named as such. */
function igzipOutputError(err: unknown, raw: GzipToRawDeflate, gz: RunningTool, doing: string): unknown {
  if (err !== raw.errored || err instanceof ToolError) return err;
  return new ToolError(`${gz.argv[0]} failed while ${doing}: ${(err as Error).message}`, {
    argv: gz.argv,
    exitStatus: gz.child.exitCode,
    stderr: gz.stderr(),
    cause: err,
  });
}

/**
 * The failure that explains a broken capture: a failed write (a full or read-only vault) explains
 * more than the programs it broke; otherwise the program that failed on its own (see pipelineFailure).
 */
export async function captureFailure(err: unknown, tools: readonly RunningTool<StdoutTo>[]): Promise<unknown> {
  const cause = await pipelineFailure(err, tools);
  return vaultWriteCode(err) ? err : cause;
}

/**
 * Captures `tool`'s stdout into the part's file, encrypted (and compressed per `target.encrypt`),
 * fsynced; resolves with the manifest entry once the tool exited 0 and the file is complete,
 * rejects otherwise (the caller discards the partial snapshot).
 */
export async function writeEncryptedCapture(target: PartTarget, tool: CaptureTool): Promise<ManifestFile> {
  const capture = { argv: tool.argv, env: tool.env, doing: `capturing ${tool.what}`, signal: tool.signal };
  return writeCompressed(target, tool.what, {
    plain: () => startTool(capture),
    intoIgzip: (gz) => startTool(capture, { stdout: gz.stdin! }),
  });
}

/**
 * Writes a stream this process makes (delta mode's rows) as the part's file the same way: through
 * igzip when it is there (compression on another core), else through Node's zlib.
 */
export async function writeEncryptedStream(target: PartTarget, plain: Readable, what: string): Promise<ManifestFile> {
  return writeCompressed(target, what, { stream: plain });
}

type Source = { plain(): RunningTool; intoIgzip(gz: RunningTool): RunningTool<StdoutTo> } | { stream: Readable };

async function writeCompressed(target: PartTarget, what: string, source: Source): Promise<ManifestFile> {
  const { dir, part, keys, progress, encrypt: opts = {} } = target;
  const name = PART_FILE[part];
  const igzip = chooseCompressor(opts) === 'igzip' ? findIgzip() : null;
  if (!igzip) {
    if ('stream' in source) return writeEncryptedPart(target, source.stream);
    const run = source.plain();
    try {
      const file = await writeEncryptedPart(target, run.stdout);
      await run.done;
      return file;
    } catch (err) {
      throw await captureFailure(err, [run]);
    }
  }

  const started = Date.now();
  const doing = `compressing ${what}`;
  // igzip first: the tool's stdout is igzip's stdin pipe, so its bytes never enter this process.
  const gz = startIgzip(igzip, opts.compressLevel ?? 1, doing);
  const dump = 'stream' in source ? null : source.intoIgzip(gz);
  // The key derivation (a passphrase's S2K hashes 16 MiB) runs while the tool already writes: its output waits in the pipes.
  const keysFor = messageKeysFor(keys);
  let estimate = 0;
  const counted = 'stream' in source ? countInto(source.stream, gz, (n) => progress?.((estimate = n))) : null;
  const poll = setInterval(() => {
    const n = dump ? bytesWritten(dump.child.pid) : null;
    if (n !== null && n > estimate) {
      estimate = n;
      progress?.(n);
    }
  }, 250);
  const raw = new GzipToRawDeflate();
  const hasher = new HashCounter();
  const file = path.join(dir, name);
  const tools = dump ? [dump, gz] : [gz];
  try {
    await Promise.all([
      ...(counted ? [counted] : []),
      pipeline(gz.stdout, raw),
      keysFor.then(({ message }) =>
        pipeline(encryptPreDeflated(raw, message), hasher, createWriteStream(file, { mode: 0o640, flags: 'wx' })),
      ),
    ]);
    await dump?.done;
    await gz.done;
  } catch (err) {
    // When igzip dies first, the tool gets SIGPIPE: igzip's failure is the one to report.
    const cause = counted && !(err instanceof ToolError) && err !== raw.errored ? err : igzipOutputError(err, raw, gz, doing);
    throw await captureFailure(cause, tools);
  } finally {
    clearInterval(poll);
  }
  await fsyncFile(file);
  const plainBytes = sizeFromIsize(raw.isize ?? 0, Math.max(estimate, dump ? (bytesWritten(dump.child.pid) ?? 0) : 0));
  progress?.(plainBytes);
  return {
    name,
    part,
    bytes: hasher.bytes,
    sha256: hasher.sha256(),
    plainBytes,
    durationMs: Date.now() - started,
    keys: (await keysFor).facts,
  };
}

/** Pipes a stream into igzip's stdin, telling the bytes so far; a failing stream stops igzip. */
async function countInto(stream: Readable, gz: RunningTool, onBytes: (n: number) => void): Promise<void> {
  let n = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onBytes(n);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(stream, counter, gz.stdin!);
  } catch (err) {
    gz.stop();
    throw err;
  }
}
