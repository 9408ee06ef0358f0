/**
 * Issue 23 item 3 and the drill: the day the server and its vault are gone and only the bucket,
 * its credentials, the passphrase and the signer's fingerprint are left. A signed source whose
 * database is owned by `mastodon` is backed up and its snapshot put into a real S3 server (s3rver
 * on loopback); the source cluster and vault are destroyed. On a fresh cluster with no roles,
 * `permafrost restore latest --vault s3://… --passphrase-file -` with no config brings the database
 * back equal, owners and grants included; on another, RESTORE.md's rclone lines fetch the snapshot
 * and the runbook and restore.sh restores it. list, check (--read-data) and verify read the bucket
 * too. A hostile bucket (a manifest of another id, a huge manifest, keys permafrost never writes,
 * a snapshot without manifest, a manifest signed by another key) is refused or ignored with one
 * sentence, and nothing is restored.
 *
 * The push is done here with the bucket storage (offsite/bucket.ts), manifest last, as
 * `permafrost offsite push` does (wip-s3push); at merge it becomes that command.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketStorage } from '../../../src/offsite/bucket.js';
import { s3ClientFor } from '../../../src/offsite/client.js';
import { CLI, ClusterFixture, errorSentence, makeWorkspace, runCli, type CliResult, type Workspace } from '../../harness/env.js';
import { fingerprint, ownership } from '../../harness/fingerprint.js';
import { killGpgAgent, makeGpgKey, type GpgKey } from '../../harness/gpg-keys.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import { createOwnedSource, gpg, libpqEnv, plaintextDumps, runSh } from '../../harness/restore-sh.js';
import { S3RVER_KEYS, startS3, type S3Server } from '../../harness/s3.js';
import { waitFor } from '../../harness/wait.js';
import { stringify } from 'yaml';

const BUCKET = 'drill-bucket';
const DB = 'mastodon_production';
const source = new ClusterFixture();
const clusters: PgCluster[] = [];
let s3: S3Server;
let src: Workspace;
let keysDir: string;
let signer: GpgKey;
let intruder: GpgKey;
/** The genuine snapshot, a copy of its folder kept by the test (the server's vault is destroyed), and the runbook files. */
let id: string;
let kept: string;
let passphrase: string;
let wantDb: Record<string, string>;
let wantOwners: Record<string, string>;

/** What a fresh machine has: the bucket's keys in the environment, no config anywhere, libpq's variables. */
const bucketEnv = (pg: PgCluster, tmp: string): NodeJS.ProcessEnv => ({
  PERMAFROST_CONFIG: '',
  AWS_ACCESS_KEY_ID: S3RVER_KEYS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_KEYS.secretAccessKey,
  ...libpqEnv(pg, tmp),
});
const at = (prefix: string): string[] => ['--vault', `s3://${BUCKET}/${prefix}`, '--endpoint', s3.endpoint, '--path-style'];

/** The built CLI with `input` on standard input (`--passphrase-file -`). */
function runWithStdin(args: string[], input: string, env: NodeJS.ProcessEnv, cwd: string): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const storage = (prefix: string) =>
  bucketStorage(
    s3ClientFor({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true }, S3RVER_KEYS),
    { bucket: BUCKET, prefix },
    {
      describe: `s3://${BUCKET}/${prefix}`,
    },
  );

/** Puts `files` (name → bytes) as snapshot `sid` under `prefix`, manifest last, as a push does. */
async function putSnapshot(prefix: string, sid: string, files: Record<string, Buffer>): Promise<void> {
  const st = storage(prefix);
  const names = Object.keys(files).sort((a, b) => Number(a === 'manifest.json') - Number(b === 'manifest.json'));
  for (const name of names) {
    const body = files[name]!;
    await st.write(sid, name, Readable.from([body]), { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
  }
}

/** The genuine snapshot's files, and the runbook files, as the kept copy holds them. */
const genuineFiles = (): Record<string, Buffer> =>
  Object.fromEntries(readdirSync(path.join(kept, id)).map((n) => [n, readFileSync(path.join(kept, id, n))]));

/** `files` without the named ones. */
const without = (files: Record<string, Buffer>, ...names: string[]): Record<string, Buffer> =>
  Object.fromEntries(Object.entries(files).filter(([n]) => !names.includes(n)));

async function putGenuine(prefix: string): Promise<void> {
  await putSnapshot(prefix, id, genuineFiles());
  const st = storage(prefix);
  for (const name of ['RESTORE.md', 'restore.sh', 'signer.pub.asc']) {
    const body = readFileSync(path.join(kept, name));
    await st.write(undefined, name, Readable.from([body]), { bytes: body.length });
  }
}

/** A snapshot id `seconds` after the genuine one (still in the past: never "from the future"). */
function idAfter(seconds: number): string {
  const t = new Date(Date.parse(id.replace(/T(\d\d)-(\d\d)-(\d\d)Z$/, 'T$1:$2:$3Z')) + seconds * 1000);
  return t
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/:/g, '-');
}

/** The genuine manifest re-labelled `sid` and signed by `key` with stock gpg (a forgery whoever holds that key can make). */
function forgedManifest(sid: string, key: GpgKey): { manifest: Buffer; sig: Buffer } {
  const dir = mkdtempSync(path.join(keysDir, 'forge-'));
  const m = JSON.parse(readFileSync(path.join(kept, id, 'manifest.json'), 'utf8')) as { id: string };
  const manifest = Buffer.from(`${JSON.stringify({ ...m, id: sid }, null, 2)}\n`);
  writeFileSync(path.join(dir, 'manifest.json'), manifest);
  gpg(
    [
      '--yes',
      '--armor',
      '--local-user',
      key.fingerprint,
      '--detach-sign',
      '--output',
      path.join(dir, 'sig'),
      path.join(dir, 'manifest.json'),
    ],
    key.home,
  );
  killGpgAgent(key.home);
  return { manifest, sig: readFileSync(path.join(dir, 'sig')) };
}

function freshCluster(): PgCluster {
  const pg = startCluster();
  clusters.push(pg);
  return pg;
}

const databases = (pg: PgCluster): string[] =>
  pg.psql('postgres', 'SELECT datname FROM pg_database ORDER BY 1').split('\n').filter(Boolean);

beforeAll(async () => {
  keysDir = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-keys-'));
  signer = makeGpgKey(keysDir, 'signer');
  intruder = makeGpgKey(keysDir, 'intruder');
  createOwnedSource(source.get(), DB);
  s3 = await startS3();
  await s3.createBucket(BUCKET);
  src = makeWorkspace(source.get(), DB);
  const signingKeyFile = path.join(src.dir, 'signing.sec.asc');
  copyFileSync(signer.secretFile, signingKeyFile);
  chmodSync(signingKeyFile, 0o600);
  src.writeConfig({
    vault: { signingKeyFile },
    extra: {
      offsite: [
        { name: 'offsite', endpoint: s3.endpoint, bucket: BUCKET, prefix: 'pf', pathStyle: true, credentials: s3.keyFiles(src.dir) },
      ],
    },
  });
  const b = await runCli(['--config', src.configFile, 'backup', '--json']);
  expect(b.code, b.stderr).toBe(0);
  id = (JSON.parse(b.stdout) as { id: string }).id;
  kept = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-kept-'));
  cpSync(src.vault, kept, { recursive: true });
  passphrase = readFileSync(src.passFile, 'utf8');
  wantDb = fingerprint(source.get(), DB);
  wantOwners = ownership(source.get(), DB);
  await putGenuine('pf/');
  // The server and its vault are gone; the bucket, the passphrase and the signer's fingerprint remain.
  source.destroy();
  rmSync(src.dir, { recursive: true, force: true });
}, 240_000);

afterAll(() => {
  s3?.stop();
  source.destroy();
  for (const pg of clusters) destroyCluster(pg);
  for (const dir of [kept, keysDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the drill: only the bucket and the key are left', () => {
  it('list, check --read-data and verify read the bucket with no config and no copy of the vault', async () => {
    const pg = freshCluster();
    const tmp = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-tmp-'));
    const env = bucketEnv(pg, tmp);
    const list = await runCli(['list', '--tsv', ...at('pf'), '--signer', signer.fingerprint], { env, cwd: tmp });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[1]?.split('\t')[0]).toBe(id);
    const check = await runCli(['check', ...at('pf'), '--read-data', '--signer', signer.fingerprint], { env, cwd: tmp });
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toContain(`✓ ${id}`);
    const verify = await runWithStdin(
      ['verify', 'latest', ...at('pf'), '--passphrase-file', '-', '--signer', signer.fingerprint],
      passphrase,
      env,
      tmp,
    );
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain(`snapshot ${id} verified`);
    // The fetched ciphertext and the decrypted parts went with the run.
    expect(readdirSync(tmp)).toEqual([]);
  }, 240_000);

  it('permafrost restore latest --vault s3://… --passphrase-file - (no config): a fresh cluster equal to the source, owners and grants included; nothing left in TMPDIR', async () => {
    const pg = freshCluster();
    expect(pg.psql('postgres', `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'mastodon%'`).trim()).toBe('0');
    const tmp = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-tmp-'));
    const r = await runWithStdin(
      ['restore', 'latest', ...at('pf'), '--passphrase-file', '-', '--signer', signer.fingerprint],
      passphrase,
      bucketEnv(pg, tmp),
      tmp,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`restored snapshot ${id} into database "${DB}"`);
    expect(fingerprint(pg, DB)).toEqual(wantDb);
    expect(ownership(pg, DB)).toEqual(wantOwners);
    expect(readdirSync(tmp)).toEqual([]);
  }, 240_000);

  it("the stock path: RESTORE.md's rclone lines fetch the snapshot and the runbook, restore.sh (verbatim, dash) restores it equal", async () => {
    const md = readFileSync(path.join(kept, 'RESTORE.md'), 'utf8');
    const lines = md.split('\n').filter((l) => l.trimStart().startsWith('rclone copy '));
    expect(lines).toHaveLength(2);
    const folder = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-stock-'));
    const home = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-home-'));
    for (const line of lines) {
      const r = spawnSync('sh', ['-c', line.trim()], {
        cwd: folder,
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH,
          HOME: home,
          SNAP: id,
          AWS_ACCESS_KEY_ID: S3RVER_KEYS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3RVER_KEYS.secretAccessKey,
        },
      });
      expect(r.status, `${line}\n${r.stderr}`).toBe(0);
    }
    expect(readdirSync(folder).sort()).toEqual(['RESTORE.md', id, 'restore.sh', 'signer.pub.asc'].sort());
    const pg = freshCluster();
    const tmp = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-tmp-'));
    const pass = path.join(tmp, '..', `drill-pass-${process.pid}`);
    writeFileSync(pass, passphrase, { mode: 0o600 });
    try {
      const r = await runSh(
        path.join(folder, 'restore.sh'),
        ['--passphrase-file', pass, '--signer', signer.fingerprint],
        libpqEnv(pg, tmp),
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`restored snapshot ${id} into database "${DB}".`);
    } finally {
      rmSync(pass, { force: true });
    }
    expect(fingerprint(pg, DB)).toEqual(wantDb);
    expect(ownership(pg, DB)).toEqual(wantOwners);
    expect(readdirSync(tmp)).toEqual([]);
    expect(plaintextDumps(folder)).toEqual([]);
    for (const dir of [folder, home]) rmSync(dir, { recursive: true, force: true });
  }, 240_000);
});

describe('the AWS CLI lines of RESTORE.md', () => {
  // Not a Debian package here (rclone is); run where an `aws` works, else say so.
  const aws = spawnSync('aws', ['--version'], { encoding: 'utf8' });
  it.runIf(aws.status === 0)(
    'fetch the snapshot folder and the runbook files byte for byte',
    () => {
      const md = readFileSync(path.join(kept, 'RESTORE.md'), 'utf8');
      const lines = md.split('\n').filter((l) => /^\s+(aws s3 cp|for f in RESTORE\.md)/.test(l));
      expect(lines).toHaveLength(2);
      const folder = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-aws-'));
      const home = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-home-'));
      for (const line of lines) {
        const r = spawnSync('sh', ['-c', line.trim()], {
          cwd: folder,
          encoding: 'utf8',
          env: {
            PATH: process.env.PATH,
            HOME: home,
            SNAP: id,
            AWS_ACCESS_KEY_ID: S3RVER_KEYS.accessKeyId,
            AWS_SECRET_ACCESS_KEY: S3RVER_KEYS.secretAccessKey,
            AWS_DEFAULT_REGION: 'us-east-1',
          },
        });
        expect(r.status, `${line}\n${r.stderr}`).toBe(0);
      }
      for (const name of [...readdirSync(path.join(kept, id)).map((n) => path.join(id, n)), 'RESTORE.md', 'restore.sh', 'signer.pub.asc'])
        expect(readFileSync(path.join(folder, name)).equals(readFileSync(path.join(kept, name))), name).toBe(true);
      for (const dir of [folder, home]) rmSync(dir, { recursive: true, force: true });
    },
    120_000,
  );
  if (aws.status !== 0)
    it('SKIPPED: no aws CLI on this machine', () => console.log('SKIPPED: the AWS CLI lines of RESTORE.md (no aws here)'));
});

describe('a hostile bucket: refused or ignored with one sentence, nothing restored', () => {
  let pg: PgCluster;
  let tmp: string;
  const restore = (prefix: string, ref: string, ...more: string[]): Promise<CliResult> =>
    runWithStdin(
      ['restore', ref, ...at(prefix), '--passphrase-file', '-', '--signer', signer.fingerprint, ...more],
      passphrase,
      bucketEnv(pg, tmp),
      tmp,
    );
  const nothingRestored = (): void => {
    expect(databases(pg)).not.toContain(DB);
    expect(databases(pg).filter((d) => d.includes('incoming'))).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
  };

  beforeAll(() => {
    pg = freshCluster();
    tmp = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-tmp-'));
  });

  it('a manifest of another id as the newest snapshot: list and restore latest refuse it (exit 3, naming both ids)', async () => {
    const other = idAfter(1);
    await putGenuine('h-idmix/');
    await putSnapshot('h-idmix/', other, genuineFiles());
    const list = await runCli(['list', '--tsv', ...at('h-idmix')], { env: bucketEnv(pg, tmp), cwd: tmp });
    expect(list.code).toBe(3);
    expect(errorSentence(list.stderr)).toContain(`belongs to snapshot ${id}, not to its folder ${other}`);
    const r = await restore('h-idmix', 'latest');
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toMatch(
      new RegExp(`^Snapshot ${other} failed its integrity check: .*belongs to snapshot ${id}, not to its folder ${other}`),
    );
    nothingRestored();
  }, 120_000);

  it('a huge manifest: listed as damaged (exit 3) without reading past the bound; restoring it is refused (exit 3)', async () => {
    const big = idAfter(2);
    await putGenuine('h-huge/');
    await putSnapshot('h-huge/', big, { ...genuineFiles(), 'manifest.json': Buffer.alloc(5 * 1024 * 1024, 0x20) });
    const list = await runCli(['list', '--tsv', ...at('h-huge')], { env: bucketEnv(pg, tmp), cwd: tmp });
    expect(list.code).toBe(3);
    expect(errorSentence(list.stderr)).toContain(`manifest.json is larger than any manifest`);
    const r = await restore('h-huge', big);
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toContain(`Snapshot ${big} failed its integrity check`);
    nothingRestored();
  }, 120_000);

  it('keys permafrost never writes and a snapshot without manifest.json: ignored with a warning, never listed; latest is the newest complete one; naming the incomplete one is exit 2', async () => {
    const partial = idAfter(3);
    await putGenuine('h-mixed/');
    const parts = without(genuineFiles(), 'manifest.json', 'manifest.json.sig');
    await putSnapshot('h-mixed/', partial, parts);
    const st = storage('h-mixed/');
    for (const [name, sid] of [
      ['notes.txt', undefined],
      ['evil.sh', 'not-a-snapshot'],
    ] as const)
      await st.write(sid, name, Readable.from([Buffer.from('#!/bin/sh\necho pwned\n')]), { bytes: 21 });
    const c = s3.client();
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: `h-mixed/${id}/sub/deeper.gpg`, Body: 'x' }));
    c.destroy();
    const list = await runCli(['list', '--tsv', ...at('h-mixed')], { env: bucketEnv(pg, tmp), cwd: tmp });
    expect(list.code, list.stderr).toBe(0);
    expect(
      list.stdout
        .split('\n')
        .slice(1)
        .filter(Boolean)
        .map((l) => l.split('\t')[0]),
    ).toEqual([id]);
    expect(list.stderr).toContain('keys that permafrost does not write, ignored (never read, never deleted)');
    expect(list.stderr).toContain(
      `snapshot ${partial} in s3://${BUCKET}/h-mixed/ has no manifest.json (its upload did not finish): not listed, never restored.`,
    );
    const named = await restore('h-mixed', partial);
    expect(named.code, named.stderr).toBe(2);
    expect(errorSentence(named.stderr)).toContain(
      `Snapshot ${partial} in s3://${BUCKET}/h-mixed/ is incomplete (no manifest.json: its upload did not finish)`,
    );
    nothingRestored();
    // latest: the newest complete snapshot, restored as usual.
    const r = await restore('h-mixed', 'latest');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`restored snapshot ${id} into database "${DB}"`);
    expect(fingerprint(pg, DB)).toEqual(wantDb);
    pg.psql('postgres', `DROP DATABASE ${DB}`);
    expect(readdirSync(tmp)).toEqual([]);
  }, 240_000);

  it('a newest snapshot signed by another key, or unsigned: list, check and restore with --signer refuse it (exit 3); without --signer restore asks for it (exit 2)', async () => {
    const forged = idAfter(4);
    await putGenuine('h-forged/');
    const { manifest, sig } = forgedManifest(forged, intruder);
    await putSnapshot('h-forged/', forged, { ...genuineFiles(), 'manifest.json': manifest, 'manifest.json.sig': sig });
    const env = bucketEnv(pg, tmp);
    const list = await runCli(['list', '--tsv', ...at('h-forged'), '--signer', signer.fingerprint], { env, cwd: tmp });
    expect(list.code).toBe(3);
    expect(errorSentence(list.stderr)).toContain(`Snapshot ${forged} failed its integrity check`);
    expect(errorSentence(list.stderr)).toContain(`not by the signer you pinned (--signer) ${signer.fingerprint}`);
    const check = await runCli(['check', forged, ...at('h-forged'), '--signer', signer.fingerprint], { env, cwd: tmp });
    expect(check.code).toBe(3);
    const r = await restore('h-forged', 'latest');
    expect(r.code, r.stderr).toBe(3);
    expect(errorSentence(r.stderr)).toContain(`Snapshot ${forged} failed its signature check`);
    nothingRestored();
    const unpinned = await runWithStdin(['restore', 'latest', ...at('h-forged'), '--passphrase-file', '-'], passphrase, env, tmp);
    expect(unpinned.code, unpinned.stderr).toBe(2);
    expect(errorSentence(unpinned.stderr)).toContain('pass --signer FINGERPRINT');
    nothingRestored();

    const unsigned = idAfter(5);
    const noSig = without(genuineFiles(), 'manifest.json.sig');
    await putSnapshot('h-forged/', unsigned, { ...noSig, 'manifest.json': forgedManifest(unsigned, intruder).manifest });
    const r2 = await restore('h-forged', unsigned);
    expect(r2.code, r2.stderr).toBe(3);
    expect(errorSentence(r2.stderr)).toContain('manifest.json.sig is missing');
    nothingRestored();
  }, 240_000);

  it('a part changed in the bucket: check by sizes passes a same-size change, --read-data names it (exit 3); a part longer than its manifest says is cut off at that size and refused (exit 3); nothing restored', async () => {
    const files = genuineFiles();
    const part = Object.keys(files).find((n) => n.startsWith('database'))!;
    const flipped = Buffer.from(files[part]!);
    const at10 = flipped.length - 10;
    flipped.writeUInt8(flipped.readUInt8(at10) ^ 0xff, at10);
    await putGenuine('h-changed/');
    await putSnapshot('h-changed/', id, { ...files, [part]: flipped });
    const env = bucketEnv(pg, tmp);
    const sizes = await runCli(['check', ...at('h-changed')], { env, cwd: tmp });
    expect(sizes.code, sizes.stderr).toBe(0);
    const read = await runCli(['check', ...at('h-changed'), '--read-data'], { env, cwd: tmp });
    expect(read.code).toBe(3);
    expect(errorSentence(read.stderr)).toContain(`${part} does not match the SHA-256 in the manifest`);
    const r = await restore('h-changed', 'latest');
    expect(r.code, r.stderr).toBe(3);
    nothingRestored();

    await putGenuine('h-long/');
    await putSnapshot('h-long/', id, { ...files, [part]: Buffer.concat([files[part]!, Buffer.alloc(1024 * 1024)]) });
    const long = await runCli(['check', ...at('h-long')], { env, cwd: tmp });
    expect(long.code).toBe(3);
    expect(errorSentence(long.stderr)).toContain(
      `${part} has ${files[part]!.length + 1024 * 1024} bytes, the manifest says ${files[part]!.length} (grown)`,
    );
    const r2 = await restore('h-long', 'latest');
    expect(r2.code, r2.stderr).toBe(3);
    expect(errorSentence(r2.stderr)).toContain(`${part} is longer than the size its manifest lists (${files[part]!.length} bytes)`);
    nothingRestored();
  }, 180_000);

  it('SIGTERM while restoring from the bucket: the fetched folder is removed, nothing restored', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'restore', 'latest', ...at('pf'), '--passphrase-file', '-', '--signer', signer.fingerprint],
      { cwd: tmp, env: { ...process.env, ...bucketEnv(pg, tmp) }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    child.stdin.end(passphrase);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // The private folder appears once the fetch starts; stop the run while it holds the snapshot.
    await waitFor('the private temp folder', () => readdirSync(tmp).some((n) => n.startsWith('permafrost-')), 30_000, 20);
    child.kill('SIGTERM');
    const code = await exited;
    expect(code, stderr).not.toBe(0);
    expect(readdirSync(tmp)).toEqual([]);
    nothingRestored();
  }, 120_000);

  it('--target NAME reads a configured offsite target (its endpoint and key files)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-drill-cfg-'));
    const configFile = path.join(dir, 'permafrost.yaml');
    writeFileSync(
      configFile,
      stringify({
        vault: { dir },
        offsite: [{ name: 'b2', endpoint: s3.endpoint, bucket: BUCKET, prefix: 'pf', pathStyle: true, credentials: s3.keyFiles(dir) }],
      }),
    );
    const r = await runCli(['--config', configFile, 'list', '--tsv', '--target', 'b2'], {
      env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' },
      cwd: tmp,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[1]?.split('\t')[0]).toBe(id);
    const unknown = await runCli(['--config', configFile, 'check', '--target', 'nope'], { cwd: tmp });
    expect(unknown.code).toBe(2);
    expect(errorSentence(unknown.stderr)).toBe('no offsite target is named nope; the config has b2.');
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('flags that make no sense together, or a bucket that does not exist, are one sentence each (exit 2)', async () => {
    const env = bucketEnv(pg, tmp);
    const both = await runCli(['list', ...at('pf'), '--target', 'x'], { env, cwd: tmp });
    expect(both.code).toBe(2);
    expect(errorSentence(both.stderr)).toContain('--target and --vault both name a place to read');
    const missing = await runCli(['list', '--vault', 's3://no-such-bucket/pf', '--endpoint', s3.endpoint, '--path-style'], {
      env,
      cwd: tmp,
    });
    expect(missing.code, missing.stderr).toBe(2);
    expect(errorSentence(missing.stderr)).toContain('the bucket does not exist');
    const stray = await runCli(['list', '--vault', tmp, '--path-style'], { env, cwd: tmp });
    expect(stray.code).toBe(2);
    expect(errorSentence(stray.stderr)).toBe('--endpoint and --path-style go with --vault s3://BUCKET/PREFIX.');
  }, 60_000);
});
