/**
 * Replication lag on loopback: time from a snapshot's rename (the moment it is complete) to
 * "fully on the receiver", for a ~250 MB snapshot, with permafrost's setup (sync apply + a
 * rescan requested right after the rename, as `backup` does) beside the plain setup admins use
 * today (the same folder with rescanIntervalS 300, no file watcher, no rescan request).
 *
 * Two real Syncthing instances run in one loopback-only network namespace (test/harness/syncthing.ts).
 * Standalone: node --import tsx bench/replication.ts [--mb 250] [--runs 3] [--plain-runs 3] [--plain-cap 90]
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { applySync } from '../src/replicate/apply.js';
import { SNAPSHOTS_FOLDER } from '../src/replicate/plan.js';
import { requestSnapshotRescan } from '../src/replicate/rescan.js';
import { PARTIAL_PREFIX, snapshotIdFor } from '../src/vault/store.js';
import { connected, folderSynced, startSyncthingPair, waitFor, type StPair } from '../test/harness/syncthing.js';
import { readSyncthingKey } from '../src/ops/secrets.js';

export interface ReplicationBenchOptions {
  /** Snapshot size in MB (default 250). */
  mb?: number;
  /** Runs of permafrost's setup (default 3). */
  runs?: number;
  /** Runs of the plain setup (default 3). */
  plainRuns?: number;
  /** Longest wait for one plain run, in seconds (default 90); a run that hits it is reported as capped. */
  plainCapS?: number;
  log?: (line: string) => void;
}

export interface ReplicationBenchResult {
  name: 'replication-lag';
  snapshotBytes: number;
  /** permafrost: rename → fully on the receiver, seconds, per run. */
  permafrostS: number[];
  permafrostMedianS: number;
  /** plain: seconds per run; null when the run hit the cap. */
  plainS: Array<number | null>;
  plainMedianS: number | null;
  plainCapS: number;
  /** Bar from the issue: permafrost median ≤ 15 s. */
  barS: number;
  pass: boolean;
  /** The receiver's copies were hashed after timing and all matched. */
  verified: boolean;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Writes a snapshot folder under its partial name: incompressible bytes (like OpenPGP output) + manifest. */
function writePartialSnapshot(vault: string, id: string, bytes: number): { partial: string; sha256: string } {
  const partial = path.join(vault, `${PARTIAL_PREFIX}${id}-${process.pid}`);
  mkdirSync(partial);
  const file = path.join(partial, 'database.pgdump.gpg');
  const fd = openSync(file, 'w', 0o640);
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (let left = bytes; left > 0; left -= buf.length) {
    const chunk = left >= buf.length ? buf : buf.subarray(0, left);
    randomFillSync(chunk);
    hash.update(chunk);
    writeSync(fd, chunk);
  }
  fsyncSync(fd);
  closeSync(fd);
  const sha256 = hash.digest('hex');
  writeFileSync(
    path.join(partial, 'manifest.json'),
    `${JSON.stringify({ id, files: [{ name: 'database.pgdump.gpg', bytes, sha256 }] }, null, 2)}\n`,
  );
  return { partial, sha256 };
}

function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) h.update(buf.subarray(0, n));
  closeSync(fd);
  return h.digest('hex');
}

/** Fully on the receiver: the reference's sync conditions, and the file complete on B's disk. */
async function onReceiver(pair: StPair, rcvVault: string, id: string, bytes: number): Promise<boolean> {
  try {
    if (statSync(path.join(rcvVault, id, 'database.pgdump.gpg')).size !== bytes) return false;
    statSync(path.join(rcvVault, id, 'manifest.json'));
  } catch {
    return false;
  }
  return folderSynced(pair.a, pair.b, SNAPSHOTS_FOLDER);
}

export async function benchReplication(opts: ReplicationBenchOptions = {}): Promise<ReplicationBenchResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const bytes = Math.round((opts.mb ?? 250) * 1024 * 1024);
  const runs = opts.runs ?? 3;
  const plainRuns = opts.plainRuns ?? 3;
  const plainCapS = opts.plainCapS ?? 90;
  const pair = await startSyncthingPair();
  try {
    const srcVault = path.join(pair.root, 'source/snapshots');
    const rcvVault = path.join(pair.root, 'receiver/snapshots');
    mkdirSync(srcVault, { recursive: true });
    const pass = path.join(pair.root, 'passphrase');
    writeFileSync(pass, 'unused\n', { mode: 0o600 });
    const mk = (role: 'source' | 'receiver'): Config => {
      const [me, other] = role === 'source' ? [pair.a, pair.b] : [pair.b, pair.a];
      const file = path.join(pair.root, `${role}.yaml`);
      const text = stringify({
        ...(role === 'source' ? { database: { name: 'unused' } } : {}),
        vault: { dir: role === 'source' ? srcVault : rcvVault, passphraseFile: pass },
        syncthing: {
          url: me.socket,
          apiKeyFile: me.apiKeyFile,
          role,
          devices: [{ name: other.name, id: other.id, addresses: [other.listen] }],
        },
      });
      writeFileSync(file, text);
      return parseConfig(text, file);
    };
    const source = mk('source');
    const receiver = mk('receiver');
    await applySync(source, readSyncthingKey(source));
    await applySync(receiver, readSyncthingKey(receiver));
    await waitFor('the two instances to connect', () => connected(pair.a, pair.b), 30_000);
    await waitFor('the empty folder in sync', () => folderSynced(pair.a, pair.b, SNAPSHOTS_FOLDER), 30_000, 100);

    let clock = Date.parse('2026-01-01T00:00:00Z');
    const nextId = (): string => snapshotIdFor(new Date((clock += 3600_000)));
    const made: Array<{ id: string; sha256: string }> = [];

    const one = async (kind: 'permafrost' | 'plain', capS: number): Promise<number | null> => {
      const id = nextId();
      const { partial, sha256 } = writePartialSnapshot(srcVault, id, bytes);
      made.push({ id, sha256 });
      const t0 = performance.now();
      renameSync(partial, path.join(srcVault, id));
      if (kind === 'permafrost') {
        const warning = await requestSnapshotRescan(source, readSyncthingKey(source));
        if (warning) throw new Error(warning);
      }
      try {
        await waitFor(`${id} on the receiver`, () => onReceiver(pair, rcvVault, id, bytes), capS * 1000, 100);
      } catch {
        // Capped: bring it across now (untimed) so the next run starts clean.
        await pair.a.api.post(`/rest/db/scan?folder=${SNAPSHOTS_FOLDER}`);
        await waitFor(`${id} on the receiver after the cap`, () => onReceiver(pair, rcvVault, id, bytes), 300_000, 200);
        log(`  ${kind} run: not on the receiver within the ${capS} s cap`);
        return null;
      }
      const s = (performance.now() - t0) / 1000;
      log(`  ${kind} run: ${s.toFixed(2)} s`);
      return s;
    };

    log(`replication lag, ${(bytes / 1024 / 1024).toFixed(0)} MiB snapshot, loopback, two Syncthing instances`);
    const ours: number[] = [];
    for (let i = 0; i < runs; i++) ours.push((await one('permafrost', 120))!);

    // The plain setup: the same folder, scanned every 300 s, no watcher, no rescan request.
    await pair.a.api.patch(`/rest/config/folders/${SNAPSHOTS_FOLDER}`, { rescanIntervalS: 300, fsWatcherEnabled: false });
    // The PATCH restarts the folder, which scans once; let that settle so it does not count.
    await waitFor('folder idle after the change', () => folderSynced(pair.a, pair.b, SNAPSHOTS_FOLDER), 30_000, 100);
    await new Promise((r) => setTimeout(r, 2000));
    const plain: Array<number | null> = [];
    for (let i = 0; i < plainRuns; i++) plain.push(await one('plain', plainCapS));

    let verified = true;
    for (const m of made) if (sha256File(path.join(rcvVault, m.id, 'database.pgdump.gpg')) !== m.sha256) verified = false;
    const measured = plain.filter((x): x is number => x !== null);
    const result: ReplicationBenchResult = {
      name: 'replication-lag',
      snapshotBytes: bytes,
      permafrostS: ours,
      permafrostMedianS: median(ours),
      plainS: plain,
      plainMedianS: measured.length === plain.length && plain.length > 0 ? median(measured) : null,
      plainCapS,
      barS: 15,
      pass: median(ours) <= 15 && verified,
      verified,
    };
    const plainText =
      result.plainMedianS !== null
        ? `median ${result.plainMedianS.toFixed(1)} s`
        : `${plain.filter((x) => x === null).length} of ${plain.length} runs over the ${plainCapS} s cap (${measured.map((x) => `${x.toFixed(1)} s`).join(', ') || 'none measured'})`;
    log(
      `permafrost (rescan requested): median ${result.permafrostMedianS.toFixed(2)} s [${ours.map((x) => x.toFixed(2)).join(', ')}] — bar ≤ 15 s: ${result.pass ? 'PASS' : 'FAIL'}`,
    );
    log(`plain (rescanIntervalS 300, no request): ${plainText}`);
    log(`receiver copies hashed after timing: ${verified ? 'all match' : 'MISMATCH'}`);
    return result;
  } finally {
    await pair.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  benchReplication({ mb: arg('mb'), runs: arg('runs'), plainRuns: arg('plain-runs'), plainCapS: arg('plain-cap') }).then(
    (r) => {
      console.log(JSON.stringify(r));
      process.exitCode = r.pass ? 0 : 1;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
