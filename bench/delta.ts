/**
 * `npm run bench:delta`: row-level delta snapshots (issue 13) on a private copy of the bench
 * dataset with the churn tables (bench/churn.ts; the cached dataset itself is never modified).
 *
 *   BENCH_SIZE_MB   database size (default 1024; the dataset of bench/run.ts before the churn tables)
 *   BENCH_RUNS      full backups to compare with (default 3), spread over the simulated day: each is
 *                   taken right after the delta of the same hour, so each pair sees the same database
 *   BENCH_HOURS     simulated hours (default 24: the longest chain, depth 24)
 *   BENCH_FLAT      0 skips the peak-RSS check at half the size
 *   BENCH_SYNCTHING 0 skips replication to a second Syncthing instance (loopback-only netns)
 *
 * With `database.delta: {fullEvery: "24h"}`: a base, then per hour the churn of bench/churn.ts
 * (hour n) and `permafrost backup` (a delta of depth n). Measured: bytes of every snapshot (sum of
 * its files) against a full snapshot (`permafrost backup` without database.delta) of the same
 * database; wall, CPU (ours, user+sys, and the server's) and peak RSS of a delta vs a full backup;
 * `permafrost restore` of the deepest delta vs of the full snapshot taken at the same hour; the
 * bytes Syncthing sent to the device per snapshot (its connection statistics); the vault after
 * 24 hourly + 7 daily snapshots, computed from the measured sizes with the vault's own retention
 * rule (src/vault/retention.ts) and the chain closure (a kept delta keeps its reference back to the
 * base), since 8 real days would take 8 × 24 hours of churn.
 *
 * Results: bench/results/delta.{json,md}.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import { parseConfig } from '../src/config/load.js';
import { applySync } from '../src/replicate/apply.js';
import { SNAPSHOTS_FOLDER } from '../src/replicate/plan.js';
import { HASH_SESSION_SQL, rowHashOf, tableHashSql } from '../src/capture/delta-sql.js';
import { applyRetention } from '../src/vault/retention.js';
import { MANIFEST_NAME, manifestSchema, type Manifest } from '../src/vault/manifest.js';
import { connected, folderSynced, startSyncthingPair, syncthingSection, waitFor, type StPair } from '../test/harness/syncthing.js';
import { churnHour, describeHour, openChurnCopy, type ChurnCopy, type HourResult } from './churn.js';
import { BenchVault as Vault, sameAs, type Backup } from './cli-vault.js';
import { CACHE, REPO } from './dataset.js';
import { fmt, machine, median, serverCpuS, timed, type ProcStat } from './measure.js';
import { readSyncthingKey } from '../src/ops/secrets.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 1024);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const HOURS = Math.min(24, Math.max(1, Number(process.env.BENCH_HOURS ?? 24)));
const FLAT = process.env.BENCH_FLAT !== '0';
const SYNCTHING = process.env.BENCH_SYNCTHING !== '0';
const SEED = 1;
const log = (s: string): void => void process.stderr.write(`[bench:delta] ${s}\n`);

/** What a restore cost. */
interface Restore {
  wallS: number;
  cpuS: number;
  serverCpuS: number;
  /** Equal to the source afterwards (row counts of every table and matview, index count). */
  same: boolean;
  /** A chain: every table's count and hash equal its manifest's (delta-sql.ts's SQL, as restore checks). */
  hashesMatch?: boolean;
}

/** Whether every table of `target` has the count and hash the chain manifest of snapshot `id` records. */
function matchesManifest(v: Vault, id: string, target: string): boolean | undefined {
  const m = manifestSchema.parse(JSON.parse(readFileSync(path.join(v.dir, id, MANIFEST_NAME), 'utf8')));
  if (!m.chain) return undefined;
  return m.chain.tables.every(
    (t) =>
      v.copy.cluster
        .psql(target, `${HASH_SESSION_SQL}\n${tableHashSql(t.schema, t.table, { kind: rowHashOf(m.chain!), record: t.hashRecord })}`)
        .trim() === `${t.rows}|${t.hash}`,
  );
}

/**
 * The stock restore of snapshot `id` (what restore.sh does, with 2 jobs where pg_restore can): a
 * chain is pre-data, `gpg -d | psql -1` of the base rows and of each delta in order, post-data; a
 * full snapshot is one pg_restore. Plaintext archives go to `work` (removed after each step).
 */
async function stockRestore(v: Vault, id: string, target: string, gnupg: string, pass: string): Promise<Omit<Restore, 'same'>> {
  const c = v.copy.cluster;
  const env = { ...v.env, GNUPGHOME: gnupg };
  const read = (sid: string): Manifest => manifestSchema.parse(JSON.parse(readFileSync(path.join(v.dir, sid, MANIFEST_NAME), 'utf8')));
  const chain: Manifest[] = [read(id)];
  while (chain[0]!.chain?.reference) chain.unshift(read(chain[0]!.chain.reference));
  c.psql('postgres', `DROP DATABASE IF EXISTS ${target}; CREATE DATABASE ${target};`);
  const archive = path.join(v.work, 'restore.pgdump');
  const decrypt = (file: string): string[] => ['gpg', '-d', '--batch', '--quiet', '--passphrase-file', pass, file];
  const s0 = serverCpuS(c.dataDir);
  const t0 = performance.now();
  const stats = [];
  const pgRestore = (args: string[]): Promise<ProcStat> =>
    timed([path.join(c.binDir, 'pg_restore'), ...args, '--dbname', target, archive], { env }).done;
  const base = chain[0]!;
  const dir = (m: Manifest): string => path.join(v.dir, m.id);
  stats.push(
    await timed(
      [
        'gpg',
        '-d',
        '--batch',
        '--quiet',
        '--passphrase-file',
        pass,
        '--output',
        archive,
        path.join(dir(base), base.chain ? 'schema.pgdump.gpg' : 'database.pgdump.gpg'),
      ],
      { env },
    ).done,
  );
  if (!base.chain) {
    stats.push(await pgRestore(['--jobs', '2']));
  } else {
    stats.push(await pgRestore(['--section=pre-data']));
    for (const m of chain) {
      const gpg = timed(decrypt(path.join(dir(m), m.chain!.kind === 'base' ? 'rows.sql.gpg' : 'delta.sql.gpg')), {
        stdio: ['ignore', 'pipe', 'pipe'],
        env,
      });
      const psql = timed(
        [path.join(c.binDir, 'psql'), '-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-d', target],
        {
          stdio: [gpg.child.stdout!, 'ignore', 'pipe'],
          env,
        },
      );
      gpg.child.stdout!.destroy(); // psql holds the read end now
      stats.push(...(await Promise.all([gpg.done, psql.done])));
    }
    stats.push(await pgRestore(['--section=post-data', '--jobs', '2']));
  }
  rmSync(archive, { force: true });
  return {
    wallS: (performance.now() - t0) / 1000,
    cpuS: stats.reduce((t, x) => t + x.userS + x.sysS, 0),
    serverCpuS: serverCpuS(c.dataDir) - s0,
  };
}

const connectionsSchema = z.object({
  connections: z.record(z.string(), z.object({ connected: z.boolean(), outBytesTotal: z.number() })),
});

/** The delta vault replicated to a second Syncthing instance; measures what each snapshot cost on the wire. */
class Replica {
  private constructor(
    readonly pair: StPair,
    readonly receiverVault: string,
    private sent: number,
  ) {}

  /** Connects the pair (already named in `source`'s config) with permafrost's own `sync apply`. */
  static async start(pair: StPair, work: string, source: Vault, pass: string): Promise<Replica> {
    const receiverVault = path.join(pair.root, 'receiver/snapshots');
    mkdirSync(receiverVault, { recursive: true });
    const receiverConfig = path.join(work, 'receiver.yaml');
    writeFileSync(
      receiverConfig,
      stringify({ vault: { dir: receiverVault, passphraseFile: pass }, syncthing: syncthingSection(pair, 'receiver') }),
    );
    for (const file of [source.config, receiverConfig]) {
      const cfg = parseConfig(readFileSync(file, 'utf8'), file);
      await applySync(cfg, readSyncthingKey(cfg));
    }
    await waitFor('the two Syncthing instances to connect', () => connected(pair.a, pair.b), 60_000);
    const r = new Replica(pair, receiverVault, 0);
    r.sent = await r.outBytes();
    return r;
  }

  private async outBytes(): Promise<number> {
    const c = await this.pair.a.api.get('/rest/system/connections', connectionsSchema);
    return c.connections[this.pair.b.id]?.outBytesTotal ?? Number.NaN;
  }

  /** Waits until `id` is complete on the device; returns the bytes sent since the last call. */
  async replicated(id: string): Promise<number> {
    await waitFor(
      `${id} on the device`,
      async () => {
        try {
          statSync(path.join(this.receiverVault, id, MANIFEST_NAME));
        } catch {
          return false;
        }
        return folderSynced(this.pair.a, this.pair.b, SNAPSHOTS_FOLDER);
      },
      600_000,
      200,
    );
    const now = await this.outBytes();
    const sent = now - this.sent;
    this.sent = now;
    return sent;
  }

  destroy(): Promise<void> {
    return this.pair.destroy();
  }
}

/** Hours (1…HOURS) after whose delta a full backup is taken too: RUNS of them, spread evenly, the last one at HOURS. */
function fullHours(): Set<number> {
  const hs = new Set<number>();
  for (let k = 1; k <= RUNS; k++) hs.add(Math.max(1, Math.round((k * HOURS) / RUNS)));
  return hs;
}

/**
 * The vault after 8 days of hourly snapshots with `keep: {hourly: 24, daily: 7}`, from measured
 * sizes: every day a base at 00:00 (fullEvery 24h) and deltas at 01:00…23:00 sized as the measured
 * hours (hour h of the day = the measured delta of depth h; past the measured hours, their
 * average). A kept delta keeps its chain back to its base. Full mode: every kept snapshot is a full one.
 */
function vaultAfterAWeek(
  baseBytes: number,
  deltaBytes: number[],
  fullBytes: number,
): { keptSnapshots: number; storedSnapshotsDelta: number; deltaBytes: number; fullBytes: number; ratio: number } {
  const avg = deltaBytes.reduce((t, x) => t + x, 0) / deltaBytes.length;
  const size = (h: number): number => (h === 0 ? baseBytes : (deltaBytes[h - 1] ?? avg));
  const snaps: Array<{ id: string; time: Date; day: number; hour: number }> = [];
  const start = Date.parse('2026-03-02T00:00:00Z');
  for (let day = 0; day < 8; day++)
    for (let hour = 0; hour < 24; hour++) {
      const time = new Date(start + (day * 24 + hour) * 3600_000);
      snaps.push({ id: time.toISOString(), time, day, hour });
    }
  const kept = applyRetention(snaps, { hourly: 24, daily: 7 }, 'UTC').keep;
  const closure = new Set<string>();
  for (const k of kept) for (let h = 0; h <= k.hour; h++) closure.add(`${k.day}/${h}`);
  let deltaTotal = 0;
  for (const key of closure) deltaTotal += size(Number(key.split('/')[1]));
  return {
    keptSnapshots: kept.length,
    storedSnapshotsDelta: closure.size,
    deltaBytes: deltaTotal,
    fullBytes: kept.length * fullBytes,
    ratio: deltaTotal / (kept.length * fullBytes),
  };
}

async function main(): Promise<void> {
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(path.join(CACHE, 'delta-'));
  try {
    await measure(work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Everything under `work` (removed by the caller on every exit path). */
async function measure(work: string): Promise<void> {
  const env = machine();
  log(
    `size ${SIZE} MB, ${HOURS} hours, ${RUNS} full backups to compare; load average ${env.loadAvgStart.map((x) => x.toFixed(1)).join(' ')}`,
  );
  const pass = path.join(work, 'passphrase');
  writeFileSync(pass, 'bench passphrase: correct horse battery staple\n', { mode: 0o600 });
  const copy = openChurnCopy(SIZE, { port: 5436, workDir: work, log });
  const notes: string[] = [];
  const hours: Array<{ churn: HourResult; delta: Backup }> = [];
  const fulls: Array<{ hour: number; full: Backup }> = [];
  let base: Backup;
  let full0: Backup;
  let replica: Replica | null = null;
  /** Stock tools (always) and permafrost restore (when it restores this kind), of the deepest delta and of the full snapshot of the same hour. */
  const restores: Partial<Record<'stockDelta' | 'stockFull' | 'permafrostDelta' | 'permafrostFull', Restore>> = {};
  const gnupg = path.join(work, 'gnupg');
  mkdirSync(gnupg, { mode: 0o700 });
  try {
    // The delta vault is the Syncthing source folder (backup requests the rescan itself, as in production).
    let pair: StPair | null = null;
    if (SYNCTHING) {
      try {
        pair = await startSyncthingPair();
      } catch (err) {
        notes.push(`Syncthing replication not measured: ${(err as Error).message.split('\n')[0]}`);
        log(notes.at(-1)!);
      }
    }
    let deltaVault = new Vault(work, 'vault-delta', copy, pass, true, pair ? { syncthing: syncthingSection(pair, 'source') } : {});
    const fullVault = new Vault(work, 'vault-full', copy, pass, false);
    if (pair) {
      try {
        replica = await Replica.start(pair, work, deltaVault, pass);
      } catch (err) {
        await pair.destroy();
        deltaVault = new Vault(work, 'vault-delta', copy, pass, true);
        notes.push(`Syncthing replication not measured: ${(err as Error).message.split('\n')[0]}`);
        log(notes.at(-1)!);
      }
    }
    // Warm the page cache as on a running server: one untimed dump.
    const devnull = openSync('/dev/null', 'w');
    await timed([path.join(copy.cluster.binDir, 'pg_dump'), '-Fc', '-Z0', copy.db], {
      stdio: ['ignore', devnull, 'pipe'],
      env: deltaVault.env,
    }).done;
    closeSync(devnull);

    base = await deltaVault.backup();
    if (base.kind !== 'base') throw new Error(`the first delta-mode backup is a ${base.kind}, not a base`);
    if (replica) base.sentBytes = await replica.replicated(base.id);
    log(
      `base ${base.id}: ${(base.bytes / 1e6).toFixed(1)} MB, ${fmt(base.wallS)} s, node ${fmt(base.nodePeakRssMiB, 0)} MiB; sent ${base.sentBytes ?? 'n/a'}`,
    );
    full0 = await fullVault.backup();
    log(`full: ${(full0.bytes / 1e6).toFixed(1)} MB, ${fmt(full0.wallS)} s`);
    rmSync(full0.dir, { recursive: true, force: true });
    const compareAt = fullHours();
    /** A full backup of the database as the delta of `hour` saw it; only the last one is kept (restored later). */
    const fullNow = async (hour: number): Promise<void> => {
      const prev = fulls.at(-1);
      if (prev) rmSync(prev.full.dir, { recursive: true, force: true });
      const full = await fullVault.backup();
      log(`  full ${(full.bytes / 1e6).toFixed(1)} MB, ${fmt(full.wallS)} s`);
      fulls.push({ hour, full });
    };
    for (let hour = 1; hour <= HOURS; hour++) {
      try {
        const churn = churnHour(copy.cluster, copy.db, hour, SEED);
        const delta = await deltaVault.backup();
        if (delta.kind !== 'delta' || delta.depth !== hour)
          notes.push(`hour ${hour}: a ${delta.kind} of depth ${delta.depth}, expected a delta of depth ${hour}`);
        if (replica) delta.sentBytes = await replica.replicated(delta.id);
        hours.push({ churn, delta });
        log(
          `hour ${hour}: churn ${fmt(churn.churnS)} + ${fmt(churn.maintenanceS)} s; ${delta.kind} ${(delta.bytes / 1e3).toFixed(0)} kB, ${fmt(delta.wallS)} s, node ${fmt(delta.nodePeakRssMiB, 0)} MiB; sent ${delta.sentBytes ?? 'n/a'}`,
        );
        if (compareAt.has(hour)) await fullNow(hour);
      } catch (err) {
        // Report what was measured up to here rather than nothing.
        notes.push(`stopped at hour ${hour}: ${(err as Error).message.split('\n')[0]}`);
        log(notes.at(-1)!);
        break;
      }
    }
    const last = hours.at(-1)?.delta;
    if (!last) throw new Error(`no hourly snapshot was made: ${notes.join('; ')}`);
    if (fulls.at(-1)?.hour !== hours.length) await fullNow(hours.length);
    const lastFull = fulls.at(-1)!.full;

    // Restore of the deepest delta vs of the full snapshot of the same moment.
    const measureRestore = async (
      key: keyof typeof restores,
      v: Vault,
      id: string,
      run: (target: string) => Promise<Omit<Restore, 'same'>>,
    ): Promise<void> => {
      const target = `bench_${key.toLowerCase()}`;
      try {
        const r = await run(target);
        restores[key] = { ...r, same: sameAs(copy, target), hashesMatch: matchesManifest(v, id, target) };
        log(`restore ${key}: ${fmt(r.wallS)} s, equal to the source: ${restores[key].same}`);
      } catch (err) {
        notes.push(`${key} restore not measured: ${(err as Error).message.split('\n')[0]!.replace(/^.* exited (\d+): /, 'exit $1: ')}`);
        log(notes.at(-1)!);
      } finally {
        copy.cluster.psql('postgres', `DROP DATABASE IF EXISTS ${target}`);
      }
    };
    await measureRestore('stockDelta', deltaVault, last.id, (t) => stockRestore(deltaVault, last.id, t, gnupg, pass));
    await measureRestore('stockFull', fullVault, lastFull.id, (t) => stockRestore(fullVault, lastFull.id, t, gnupg, pass));
    await measureRestore('permafrostDelta', deltaVault, last.id, (t) => deltaVault.restore(last.id, t));
    await measureRestore('permafrostFull', fullVault, lastFull.id, (t) => fullVault.restore(lastFull.id, t));
  } finally {
    await replica?.destroy();
    spawnSync('gpgconf', ['--homedir', gnupg, '--kill', 'all'], { stdio: 'ignore' });
    copy.destroy();
  }

  // Peak RSS when the database is half as big: a base and one delta.
  let flat: { sizeMb: number; base: Backup; delta: Backup; full: Backup } | null = null;
  if (FLAT && SIZE >= 64) {
    const half = Math.round(SIZE / 2);
    log(`flatness check at ${half} MB`);
    const hcopy = openChurnCopy(half, { port: 5437, workDir: work, log });
    try {
      const v = new Vault(work, 'vault-half', hcopy, pass, true);
      const f = new Vault(work, 'vault-half-full', hcopy, pass, false);
      const hb = await v.backup();
      churnHour(hcopy.cluster, hcopy.db, 1, SEED);
      const hd = await v.backup();
      const hf = await f.backup();
      flat = { sizeMb: half, base: hb, delta: hd, full: hf };
    } finally {
      hcopy.destroy();
    }
  }
  report({
    env,
    copyBytes: copy.bytes,
    dataset: copy.dataset,
    base: base!,
    full0: full0!,
    hours,
    fulls,
    restores,
    flat,
    replicated: replica !== null,
    notes,
  });
}

function report(r: {
  env: ReturnType<typeof machine>;
  copyBytes: number;
  dataset: ChurnCopy['dataset'];
  base: Backup;
  full0: Backup;
  hours: Array<{ churn: HourResult; delta: Backup }>;
  fulls: Array<{ hour: number; full: Backup }>;
  restores: Partial<Record<'stockDelta' | 'stockFull' | 'permafrostDelta' | 'permafrostFull', Restore>>;
  flat: { sizeMb: number; base: Backup; delta: Backup; full: Backup } | null;
  replicated: boolean;
  notes: string[];
}): void {
  // Full snapshot size at hour h: linear between the measured ones (hour 0 and the compare hours).
  const points = [{ hour: 0, bytes: r.full0.bytes }, ...r.fulls.map((f) => ({ hour: f.hour, bytes: f.full.bytes }))];
  const fullAt = (h: number): number => {
    const after = points.find((p) => p.hour >= h) ?? points.at(-1)!;
    const before = [...points].reverse().find((p) => p.hour <= h) ?? points[0]!;
    if (after.hour === before.hour) return after.bytes;
    return before.bytes + ((after.bytes - before.bytes) * (h - before.hour)) / (after.hour - before.hour);
  };
  const ratios = r.hours.map((x) => x.delta.bytes / fullAt(x.churn.hour));
  const avgRatio = ratios.reduce((t, x) => t + x, 0) / ratios.length;
  const pairs = r.fulls.map((f) => ({ hour: f.hour, delta: r.hours[f.hour - 1]!.delta, full: f.full }));
  const wallRatio = median(pairs.map((p) => p.delta.wallS / p.full.wallS));
  const med = (xs: Backup[], k: keyof Backup): number => median(xs.map((x) => x[k] as number));
  const deltas = pairs.map((p) => p.delta);
  const fullsB = pairs.map((p) => p.full);
  const allDeltas = r.hours.map((h) => h.delta);
  const peakDelta = Math.max(...allDeltas.map((d) => d.nodePeakRssMiB));
  const peakAll = Math.max(peakDelta, r.base.nodePeakRssMiB);
  const week = vaultAfterAWeek(
    r.base.bytes,
    allDeltas.map((d) => d.bytes),
    median(fullsB.map((f) => f.bytes)),
  );
  const sent = allDeltas.map((d) => d.sentBytes).filter((x): x is number => x !== null);
  const flatPeak = r.flat ? Math.max(r.flat.base.nodePeakRssMiB, r.flat.delta.nodePeakRssMiB) : Number.NaN;
  const flatOk = r.flat ? peakAll <= flatPeak * 1.2 + 8 : null;
  const bars = [
    { bar: 'average hourly snapshot ≤ 5 % of a full one (goal 1 %)', value: `${fmt(100 * avgRatio, 2)} %`, pass: avgRatio <= 0.05 },
    {
      bar: 'delta backup wall ≤ 1.2 × full backup (median of the per-round ratios)',
      value: `${fmt(wallRatio)} (rounds: ${pairs.map((p) => fmt(p.delta.wallS / p.full.wallS)).join(', ')})`,
      pass: wallRatio <= 1.2,
    },
    { bar: 'peak RSS ≤ 150 MiB (node; base and every delta)', value: `${fmt(peakAll, 0)} MiB`, pass: peakAll <= 150 },
    {
      bar: 'peak RSS flat when the database doubles',
      value: r.flat ? `${fmt(flatPeak, 0)} MiB at ${r.flat.sizeMb} MB → ${fmt(peakAll, 0)} MiB at ${SIZE} MB` : 'not run',
      pass: flatOk,
    },
  ];
  const MB = (n: number): string => (n / 1e6).toFixed(2);
  const lines: string[] = [];
  lines.push(`# permafrost delta-snapshot benchmark — ${r.env.date}`);
  lines.push('');
  lines.push(
    `Database: the ${SIZE} MB bench dataset (${Object.entries(r.dataset.rows)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ')}) plus the churn tables of bench/churn.ts: ${(r.copyBytes / 2 ** 20).toFixed(0)} MiB on disk. ` +
      `${r.env.cpus} × ${r.env.cpuModel}, shared with other jobs: load average ${r.env.loadAvgStart.map((x) => x.toFixed(1)).join(' ')} at the start, ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')} at the end. \`database.delta: {fullEvery: 24h}\`; ${r.hours.length} simulated hours (seed ${SEED}).`,
  );
  lines.push('');
  lines.push('| bar | measured | pass |');
  lines.push('| --- | --- | --- |');
  for (const b of bars) lines.push(`| ${b.bar} | ${b.value} | ${b.pass === null ? 'n/a' : b.pass ? 'yes' : 'NO'} |`);
  lines.push('');
  lines.push(`| backup (medians of ${pairs.length}) | wall s | CPU s (ours) | server CPU s | node peak RSS MiB | snapshot MB |`);
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
  lines.push(
    `| full (no database.delta) | ${fmt(med(fullsB, 'wallS'))} | ${fmt(med(fullsB, 'cpuS'))} | ${fmt(med(fullsB, 'serverCpuS'))} | ${fmt(med(fullsB, 'nodePeakRssMiB'), 0)} | ${MB(med(fullsB, 'bytes'))} |`,
  );
  lines.push(
    `| delta (same hours) | ${fmt(med(deltas, 'wallS'))} | ${fmt(med(deltas, 'cpuS'))} | ${fmt(med(deltas, 'serverCpuS'))} | ${fmt(med(deltas, 'nodePeakRssMiB'), 0)} | ${MB(med(deltas, 'bytes'))} |`,
  );
  lines.push(
    `| delta (all ${allDeltas.length} hours) | ${fmt(med(allDeltas, 'wallS'))} | ${fmt(med(allDeltas, 'cpuS'))} | ${fmt(med(allDeltas, 'serverCpuS'))} | ${fmt(med(allDeltas, 'nodePeakRssMiB'), 0)} | ${MB(med(allDeltas, 'bytes'))} |`,
  );
  lines.push(
    `| base (once) | ${fmt(r.base.wallS)} | ${fmt(r.base.cpuS)} | ${fmt(r.base.serverCpuS)} | ${fmt(r.base.nodePeakRssMiB, 0)} | ${MB(r.base.bytes)} |`,
  );
  lines.push('');
  lines.push(
    '| hour | kind, depth | snapshot bytes | of a full snapshot | Syncthing sent bytes | backup wall s | churn s (+ vacuum, refresh) |',
  );
  lines.push('| ---: | --- | ---: | ---: | ---: | ---: | ---: |');
  lines.push(
    `| 0 | ${r.base.kind}, 0 | ${r.base.bytes} | ${fmt((100 * r.base.bytes) / r.full0.bytes, 1)} % | ${r.base.sentBytes ?? 'n/a'} | ${fmt(r.base.wallS)} | |`,
  );
  r.hours.forEach((h, i) => {
    lines.push(
      `| ${h.churn.hour} | ${h.delta.kind}, ${h.delta.depth} | ${h.delta.bytes} | ${fmt(100 * ratios[i]!, 2)} % | ${h.delta.sentBytes ?? 'n/a'} | ${fmt(h.delta.wallS)} | ${fmt(h.churn.churnS, 1)} (+ ${fmt(h.churn.maintenanceS, 1)}) |`,
    );
  });
  lines.push(
    `| avg | | ${Math.round(allDeltas.reduce((t, d) => t + d.bytes, 0) / allDeltas.length)} | **${fmt(100 * avgRatio, 2)} %** | ${sent.length ? Math.round(sent.reduce((t, x) => t + x, 0) / sent.length) : 'n/a'} | | |`,
  );
  lines.push('');
  lines.push(
    `Full snapshot: ${MB(r.full0.bytes)} MB at hour 0, ${r.fulls.map((f) => `${MB(f.full.bytes)} MB at hour ${f.hour}`).join(', ')} (ratios use the size interpolated between them).`,
  );
  if (sent.length) {
    const avgSent = sent.reduce((t, x) => t + x, 0) / sent.length;
    const avgBytes = allDeltas.reduce((t, d) => t + d.bytes, 0) / allDeltas.length;
    lines.push(
      `Syncthing (two real instances, loopback-only netns; bytes = the source's outBytesTotal to the device, from /rest/system/connections, per snapshot until the device had it): ${Math.round(avgSent)} bytes per hourly snapshot on average (${fmt(avgSent / avgBytes)} × its size; index and protocol messages included), ${r.base.sentBytes} for the base.`,
    );
  } else lines.push('Syncthing: not measured (BENCH_SYNCTHING=0 or the pair did not start; see notes).');
  const depth = r.hours.at(-1)!.delta.depth;
  const rs = r.restores;
  const restoreLine = (label: string, d: Restore | undefined, f: Restore | undefined): string =>
    d && f
      ? `${label}: the depth-${depth} delta (base + ${depth} deltas) ${fmt(d.wallS)} s (CPU ${fmt(d.cpuS)} s ours, ${fmt(d.serverCpuS)} s server) vs the full snapshot of the same hour ${fmt(f.wallS)} s (CPU ${fmt(f.cpuS)} s, ${fmt(f.serverCpuS)} s): ${fmt(d.wallS / f.wallS)} ×; equal to the source (row counts of every table and matview, index count): ${d.same ? 'yes' : 'NO'} / ${f.same ? 'yes' : 'NO'}; the chain's every table count + hash equal its manifest's: ${d.hashesMatch ? 'yes' : 'NO'}.`
      : `${label}: not measured (see notes).`;
  lines.push(
    restoreLine(
      'Restore with stock tools (as restore.sh: pg_restore pre-data, `gpg -d | psql -1` of the base rows and each delta, pg_restore post-data -j 2; full: pg_restore -j 2; decrypting the archive to a file first)',
      rs.stockDelta,
      rs.stockFull,
    ),
  );
  lines.push(restoreLine('`permafrost restore ID --jobs 2`', rs.permafrostDelta, rs.permafrostFull));
  lines.push(
    `Vault after 24 hourly + 7 daily snapshots (\`keep: {hourly: 24, daily: 7}\`; computed from the measured sizes, not 8 simulated days: a base every day at 00:00, deltas sized as the measured hours, each kept delta keeping its chain back to its base): ${week.storedSnapshotsDelta} snapshots stored for ${week.keptSnapshots} kept, ${MB(week.deltaBytes)} MB vs ${week.keptSnapshots} full snapshots ${MB(week.fullBytes)} MB (${fmt(100 * week.ratio, 1)} %).`,
  );
  if (r.flat)
    lines.push(
      `Half size (${r.flat.sizeMb} MB): node peak RSS base ${fmt(r.flat.base.nodePeakRssMiB, 0)} MiB, delta ${fmt(r.flat.delta.nodePeakRssMiB, 0)} MiB, full ${fmt(r.flat.full.nodePeakRssMiB, 0)} MiB; at ${SIZE} MB base ${fmt(r.base.nodePeakRssMiB, 0)} MiB, deltas up to ${fmt(peakDelta, 0)} MiB.`,
    );
  const h1 = r.hours[0]!.churn;
  const sum = (k: 'inserted' | 'updated' | 'deleted'): number => Object.values(h1.tables).reduce((t, x) => t + x[k], 0);
  lines.push(
    `Hour 1 of the churn (pg_stat_user_tables; cascades included): ${sum('inserted')} rows inserted, ${sum('updated')} row updates, ${sum('deleted')} rows deleted:`,
  );
  for (const l of describeHour(h1)) lines.push(`    ${l}`);
  for (const n of r.notes) lines.push(`- Note: ${n}`);
  lines.push('');
  lines.push(`Reproduce: \`BENCH_SIZE_MB=${SIZE} BENCH_RUNS=${RUNS}${HOURS === 24 ? '' : ` BENCH_HOURS=${HOURS}`} npm run bench:delta\``);
  const md = lines.join('\n');
  process.stdout.write(`${md}\n`);
  const dir = path.join(REPO, 'bench/results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'delta.json'),
    `${JSON.stringify({ env: { ...r.env, loadAvgEnd: loadavg() }, sizeMb: SIZE, copyBytes: r.copyBytes, dataset: r.dataset, bars, avgRatio, ratios, wallRatio, base: r.base, full0: r.full0, fulls: r.fulls, hours: r.hours, restores: r.restores, week, flat: r.flat, notes: r.notes }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, 'delta.md'), `${md}\n`);
}

await main();
