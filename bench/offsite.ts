/**
 * Offsite push benchmark (issue 23): `permafrost offsite push` of a 1 GiB snapshot to a loopback
 * s3rver (test/harness/s3.ts, the server the tests use), beside `rclone copy` of the same folder to
 * the same server, alternated round by round so the shared machine's noise hits both alike; wall,
 * CPU (user+sys) and peak RSS per run via /usr/bin/time, medians, load average at start and end.
 * The same push of a 0.5 GiB snapshot shows whether memory stays flat when the snapshot doubles;
 * then an hourly delta (a small snapshot on top of what the bucket holds) shows a backup's own push.
 *
 * The snapshot is synthetic: random bytes shaped as a real one (a large database part, small
 * roles/Redis/secrets parts, a manifest with their SHA-256). Encrypted parts are incompressible, so
 * to an upload they are the same bytes as a real backup's; it spares the shared machine a 1 GiB
 * pg_dump. Usage: node --import tsx bench/offsite.ts [--rounds 3]
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import { startS3, S3RVER_KEYS, type S3Server } from '../test/harness/s3.js';
import { fmt, machine, median, timed, type ProcStat } from './measure.js';
import { REPO } from './dataset.js';

const CLI = path.join(REPO, 'dist/bin/permafrost.js');
const ROUNDS = Number(process.argv[process.argv.indexOf('--rounds') + 1] || 3) || 3;
const MiB = 1024 * 1024;

/** Writes `bytes` random bytes to `file` in 4 MiB chunks; returns the SHA-256. */
async function randomFile(file: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let left = bytes; left > 0; ) {
    const chunk = randomBytes(Math.min(left, 4 * MiB));
    hash.update(chunk);
    left -= chunk.length;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest('hex');
}

/** A snapshot folder of `total` bytes shaped like a real one (database part + roles, redis, secrets); `delta`: one part only, an hour's worth. */
async function snapshot(vault: string, iso: string, total: number, part: 'database' | 'delta' = 'database'): Promise<string> {
  const id = iso.replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
  const dir = path.join(vault, id);
  mkdirSync(dir, { recursive: true });
  const small: Record<string, number> =
    part === 'database' ? { 'roles.sql.gpg': 2048, 'redis.rdb.gpg': 8 * MiB, 'env.production.gpg': 1536 } : {};
  const main = 'database.pgdump.gpg';
  const sizes: Record<string, number> = { [main]: total - Object.values(small).reduce((a, b) => a + b, 0), ...small };
  const files = [];
  for (const [name, bytes] of Object.entries(sizes)) {
    const sha256 = await randomFile(path.join(dir, name), bytes);
    const p = { env: 'secrets', redis: 'redis', roles: 'roles', database: 'database' }[name.split('.')[0]!]!;
    files.push({ name, part: p, bytes, sha256, plainBytes: bytes, durationMs: 1 });
  }
  const manifest = {
    formatVersion: 1,
    id,
    startedAt: iso,
    finishedAt: iso,
    tool: { name: 'permafrost', version: 'bench' },
    host: 'bench',
    database: { name: 'mastodon_production', serverVersion: '16', pgDumpVersion: '16', compression: '1' },
    mastodon: null,
    files,
  };
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(path.join(vault, 'RESTORE.md'), '# Restore\n');
  return id;
}

async function emptyBucket(s3: S3Server, bucket: string): Promise<void> {
  const c = s3.client();
  // One DeleteObject per key: s3rver fails DeleteObjects as the current SDK sends it (InternalError).
  for (;;) {
    const page = await c.send(new ListObjectsV2Command({ Bucket: bucket }));
    const keys = (page.Contents ?? []).map((o) => o.Key!);
    if (keys.length === 0) break;
    for (const Key of keys) await c.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
  }
  c.destroy();
}

function configFor(work: string, vault: string, s3: S3Server, bucket: string): string {
  const credentials = s3.keyFiles(work);
  const file = path.join(work, `permafrost-${path.basename(vault)}.yaml`);
  writeFileSync(
    file,
    stringify({ vault: { dir: vault }, offsite: [{ name: 'bench', endpoint: s3.endpoint, bucket, pathStyle: true, credentials }] }),
  );
  return file;
}

const push = (config: string, args: string[] = []): Promise<ProcStat> =>
  timed([process.execPath, CLI, '--config', config, 'offsite', 'push', ...args], { name: 'permafrost' }).done;

/** rclone copy through an on-the-fly remote from the environment (keys never in argv). */
function rclone(vault: string, s3: S3Server, bucket: string): Promise<ProcStat> {
  // rclone 1.60 cannot combine a custom CA bundle with its transport; plain http on loopback needs none.
  const inherited = { ...process.env };
  delete inherited.AWS_CA_BUNDLE;
  const env = {
    ...inherited,
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: s3.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: S3RVER_KEYS.accessKeyId,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: S3RVER_KEYS.secretAccessKey,
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  };
  return timed(['rclone', 'copy', '--s3-no-check-bucket', '--exclude', '.permafrost*', vault, `bench:${bucket}/rclone`], {
    name: 'rclone',
    env,
  }).done;
}

async function main(): Promise<void> {
  const env = machine();
  const work = mkdtempSync(path.join(tmpdir(), 'permafrost-bench-offsite-'));
  const s3 = await startS3();
  try {
    await s3.createBucket('bench');
    const v1 = path.join(work, 'vault-1g');
    const vHalf = path.join(work, 'vault-half');
    await snapshot(v1, '2026-12-01T10:40:00.000Z', 1024 * MiB);
    await snapshot(vHalf, '2026-12-01T10:40:00.000Z', 512 * MiB);
    const c1 = configFor(work, v1, s3, 'bench');
    const cHalf = configFor(work, vHalf, s3, 'bench');
    const ours: ProcStat[] = [];
    const theirs: ProcStat[] = [];
    const half: ProcStat[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Alternate who goes first, so neither always meets a warmer page cache or a quieter machine.
      const order = i % 2 === 0 ? (['ours', 'rclone'] as const) : (['rclone', 'ours'] as const);
      for (const who of order) {
        await emptyBucket(s3, 'bench');
        if (who === 'ours') ours.push(await push(c1));
        else theirs.push(await rclone(v1, s3, 'bench'));
        console.error(`round ${i + 1}: ${who} ${fmt((who === 'ours' ? ours : theirs).at(-1)!.wallS)} s`);
      }
      await emptyBucket(s3, 'bench');
      half.push(await push(cHalf));
    }
    // An hourly delta: the bucket holds the 1 GiB snapshot; the next hour adds a small snapshot.
    await emptyBucket(s3, 'bench');
    await push(c1);
    const deltas: ProcStat[] = [];
    for (let h = 0; h < ROUNDS; h++) {
      await snapshot(v1, `2026-12-01T${String(11 + h).padStart(2, '0')}:40:00.000Z`, 24 * MiB, 'delta');
      deltas.push(await push(c1));
    }
    await emptyBucket(s3, 'bench');

    const mbps = (s: ProcStat[], bytes: number): number => bytes / MiB / median(s.map((x) => x.wallS));
    const row = (name: string, s: ProcStat[], bytes: number): string =>
      `| ${name} | ${fmt(median(s.map((x) => x.wallS)))} | ${fmt(median(s.map((x) => x.userS + x.sysS)))} | ${fmt(median(s.map((x) => x.peakRssMiB)), 0)} | ${fmt(mbps(s, bytes), 0)} |`;
    const rssOurs = Math.max(...ours.map((x) => x.peakRssMiB));
    const rssHalf = Math.max(...half.map((x) => x.peakRssMiB));
    const lines = [
      `# Offsite push — ${env.date}, ${ROUNDS} alternated rounds, medians`,
      '',
      `${env.cpus} × ${env.cpuModel}, Node ${env.node}, shared with other jobs: load average ${env.loadAvgStart.map((x) => x.toFixed(1)).join(' ')} at the start, ${loadavg()
        .map((x) => x.toFixed(1))
        .join(
          ' ',
        )} at the end. Target: s3rver on 127.0.0.1 behind the tests' recording proxy (it hashes and writes every byte too, on the same two cores).`,
      '',
      '| upload | wall s | CPU s (user+sys) | peak RSS MiB | MiB/s |',
      '| --- | --- | --- | --- | --- |',
      row('permafrost offsite push, 1 GiB snapshot', ours, 1024 * MiB),
      row('rclone copy, same folder', theirs, 1024 * MiB),
      row('permafrost offsite push, 0.5 GiB snapshot', half, 512 * MiB),
      row('permafrost offsite push, an hourly delta (24 MiB) on top', deltas, 24 * MiB),
      '',
      `Bars: peak RSS ≤ 150 MiB at 1 GiB: ${rssOurs <= 150 ? 'met' : 'MISSED'} (${fmt(rssOurs, 0)} MiB); flat when the snapshot doubles (0.5 → 1 GiB, within 15 %): ${
        rssOurs <= rssHalf * 1.15 ? 'met' : 'MISSED'
      } (${fmt(rssHalf, 0)} → ${fmt(rssOurs, 0)} MiB).`,
    ];
    const md = `${lines.join('\n')}\n`;
    mkdirSync(path.join(REPO, 'bench/results'), { recursive: true });
    writeFileSync(path.join(REPO, 'bench/results/offsite.md'), md);
    writeFileSync(
      path.join(REPO, 'bench/results/offsite.json'),
      `${JSON.stringify({ env: { ...env, loadAvgEnd: loadavg() }, ours, rclone: theirs, half, deltas }, null, 2)}\n`,
    );
    process.stdout.write(md);
  } finally {
    s3.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
