import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { makeWorkspace, type Workspace } from '../../harness/env.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import type { S3Server } from '../../harness/s3.js';
import type { Manifest } from '../../../src/vault/manifest.js';

/** A vault-only workspace (no database) whose config has one offsite target on the harness's s3rver. */
export function offsiteWorkspace(
  s3: S3Server,
  target: Record<string, unknown> = {},
  keys?: { accessKeyId: string; secretAccessKey: string },
): Workspace & { target: (over?: Record<string, unknown>) => void } {
  const ws = makeWorkspace(null, '');
  const credentials = s3.keyFiles(ws.dir, keys);
  const write = (over: Record<string, unknown> = {}): void => {
    ws.writeConfig({
      extra: {
        offsite: [{ name: 't1', endpoint: s3.endpoint, bucket: 'bkt', prefix: 'pf/', pathStyle: true, credentials, ...target, ...over }],
      },
    });
  };
  write();
  writeFileSync(path.join(ws.vault, 'RESTORE.md'), '# Restore\nrun restore.sh\n');
  return Object.assign(ws, { target: write });
}

/** A full snapshot whose database part is `bytes` of random data (a real multipart upload above 16 MiB). */
export function bigSnapshot(vault: string, iso: string, bytes: number): Manifest {
  const m = fakeSnapshot(vault, iso);
  const data = randomBytes(bytes);
  const file = path.join(vault, m.id, 'database.pgdump.gpg');
  writeFileSync(file, data);
  const f = { ...m.files[0]!, bytes, plainBytes: bytes, sha256: createHash('sha256').update(data).digest('hex') };
  const manifest = { ...m, files: [f] };
  writeFileSync(path.join(vault, m.id, 'manifest.json'), JSON.stringify(manifest));
  return manifest;
}

/** Every key in the bucket with its size. */
export async function bucketKeys(s3: S3Server, bucket = 'bkt'): Promise<Record<string, number>> {
  const c = s3.client();
  const out: Record<string, number> = {};
  let token: string | undefined;
  do {
    const page = await c.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out[o.Key!] = o.Size!;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  c.destroy();
  return out;
}

/** Every file of the vault folder with its SHA-256 (the local vault untouched: compare before and after). */
export function vaultDigest(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.permafrost')) continue;
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p, path.join(rel, name));
      else out[path.join(rel, name)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir, '');
  return out;
}
