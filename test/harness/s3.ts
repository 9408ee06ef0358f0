import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** The keys s3rver accepts; any other key is refused with InvalidAccessKeyId. */
export const S3RVER_KEYS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  status: number;
}

/** A real S3-compatible server (s3rver) on 127.0.0.1 in its own process, behind a recording proxy (s3-server.mjs). */
export interface S3Server {
  readonly endpoint: string;
  readonly port: number;
  readonly dir: string;
  readonly proc: ChildProcess;
  /** A client with the accepted keys, path-style, for arranging and inspecting from a test. */
  client(): S3Client;
  createBucket(name: string): Promise<void>;
  /** Every request the server received so far, in order. */
  requests(): RecordedRequest[];
  /** Faults for the next requests: `slowDown` 503s, buckets answering GET ?object-lock as enabled, buckets refusing deletes (403, a lock in force). */
  setFaults(f: { slowDown?: number; lockEnabled?: string[]; refuseDelete?: string[] }): void;
  /** Writes the two key files (0600) a config's offsite.credentials names; returns their paths. */
  keyFiles(dir: string, keys?: { accessKeyId: string; secretAccessKey: string }): { accessKeyIdFile: string; secretAccessKeyFile: string };
  /** kill -9 (a network cut as the client sees it), the data folder kept for restart(). */
  kill(): void;
  /** Starts a new server process on the same data folder (a new port: read endpoint again). */
  restart(): Promise<S3Server>;
  stop(): void;
}

async function spawnServer(dir: string, work: string): Promise<{ proc: ChildProcess; port: number }> {
  const script = path.join(import.meta.dirname, 's3-server.mjs');
  const proc = spawn(process.execPath, [script, dir, path.join(work, 'requests.jsonl'), path.join(work, 'faults.json')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('s3rver did not start within 20 s')), 20_000);
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    proc.on('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)));
  });
  return { proc, port };
}

export async function startS3(existing?: { dir: string; work: string }): Promise<S3Server> {
  const work = existing?.work ?? mkdtempSync(path.join(tmpdir(), 'permafrost-s3-'));
  const dir = existing?.dir ?? path.join(work, 'data');
  const { proc, port } = await spawnServer(dir, work);
  const endpoint = `http://127.0.0.1:${port}`;
  const log = path.join(work, 'requests.jsonl');
  const server: S3Server = {
    endpoint,
    port,
    dir,
    proc,
    client: () => new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { ...S3RVER_KEYS }, maxAttempts: 1 }),
    async createBucket(name) {
      const c = server.client();
      await c.send(new CreateBucketCommand({ Bucket: name }));
      c.destroy();
    },
    requests: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as RecordedRequest)
        : [],
    setFaults: (f) => writeFileSync(path.join(work, 'faults.json'), JSON.stringify(f)),
    keyFiles(at, keys = S3RVER_KEYS) {
      const accessKeyIdFile = path.join(at, 's3-access-key-id');
      const secretAccessKeyFile = path.join(at, 's3-secret-access-key');
      writeFileSync(accessKeyIdFile, `${keys.accessKeyId}\n`, { mode: 0o600 });
      writeFileSync(secretAccessKeyFile, `${keys.secretAccessKey}\n`, { mode: 0o600 });
      return { accessKeyIdFile, secretAccessKeyFile };
    },
    kill: () => void proc.kill('SIGKILL'),
    restart: async () => {
      server.kill();
      return startS3({ dir, work });
    },
    stop() {
      proc.kill('SIGKILL');
      rmSync(work, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * An s3rver with `bucket` in it, for tests that run permafrost's code in this process: the AWS SDK
 * finds s3rver's keys in the environment, as an admin's would be.
 */
export async function startS3Bucket(bucket: string): Promise<S3Server> {
  process.env.AWS_ACCESS_KEY_ID = S3RVER_KEYS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = S3RVER_KEYS.secretAccessKey;
  const s3 = await startS3();
  await s3.createBucket(bucket);
  return s3;
}
