/**
 * A private vault and config for a benchmark database, and the permafrost commands run on it
 * through the built CLI (dist/bin/permafrost.js), measured: backup, restore, verify. Shared by
 * bench/delta.ts and bench/curve.ts. Only the CLI and the vault's manifests are used, never the
 * internals of backup or restore, so the benches measure whatever those become.
 */
import type { StdioOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { MANIFEST_NAME, manifestSchema, type Manifest } from '../src/vault/manifest.js';
import type { PgCluster } from '../test/harness/postgres.js';
import { REPO } from './dataset.js';
import { sampleTree, serverCpuS, timed, type ProcStat } from './measure.js';

export const CLI = path.join(REPO, 'dist/bin/permafrost.js');

/** The database a vault backs up: a running cluster and the database in it. */
export interface BenchSource {
  cluster: PgCluster;
  db: string;
}

/** What one measured command cost. */
export interface Cost {
  wallS: number;
  /** user+sys of the command and its children (pg_dump, gpg, igzip, pg_restore, psql). */
  cpuS: number;
  /** CPU the PostgreSQL server spent meanwhile. */
  serverCpuS: number;
  /** Peak RSS of the node process (VmHWM, sampled); NaN for a command without one. */
  nodePeakRssMiB: number;
  /** Largest peak RSS of any process of the tree. */
  peakRssMiB: number;
}

export interface Backup extends Cost {
  id: string;
  dir: string;
  kind: 'full' | 'base' | 'delta';
  depth: number;
  /** Sum of the snapshot folder's files. */
  bytes: number;
  /** Bytes Syncthing sent to the device for this snapshot (null: not replicated). */
  sentBytes: number | null;
}

/** Runs argv under /usr/bin/time with the tree sampled and the server's CPU counted. */
export async function measured(
  argv: string[],
  opts: { env: NodeJS.ProcessEnv; server: PgCluster; name?: string; stdio?: StdioOptions },
): Promise<Cost & { stat: ProcStat }> {
  const s0 = serverCpuS(opts.server.dataDir);
  const run = timed(argv, { env: opts.env, name: opts.name, stdio: opts.stdio });
  const sampler = sampleTree(run.child.pid!);
  const [st, profile] = await run.done.then(
    (stat) => [stat, sampler.stop()] as const,
    (err: unknown) => {
      sampler.stop();
      throw err;
    },
  );
  return {
    stat: st,
    wallS: st.wallS,
    cpuS: st.userS + st.sysS,
    serverCpuS: serverCpuS(opts.server.dataDir) - s0,
    nodePeakRssMiB: profile.node?.peakRssMiB ?? Number.NaN,
    peakRssMiB: Math.max(st.peakRssMiB, ...Object.values(profile).map((p) => p.peakRssMiB)),
  };
}

/** A private vault and config next to the cluster; `delta` switches on database.delta. */
export class BenchVault {
  readonly dir: string;
  readonly config: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly work: string,
    readonly name: string,
    readonly copy: BenchSource,
    pass: string,
    delta: boolean,
    extra: Record<string, unknown> = {},
  ) {
    this.dir = path.join(work, name);
    mkdirSync(this.dir, { recursive: true });
    const c = copy.cluster;
    this.config = path.join(work, `${name}.yaml`);
    writeFileSync(
      this.config,
      stringify({
        database: {
          name: copy.db,
          host: c.socketDir,
          port: c.port,
          user: c.user,
          binDir: c.binDir,
          ...(delta ? { delta: { fullEvery: '24h' } } : {}),
        },
        vault: { dir: this.dir, passphraseFile: pass, tempDir: work },
        ...extra,
      }),
    );
    this.env = { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user };
  }

  manifest(id: string): Manifest {
    return manifestSchema.parse(JSON.parse(readFileSync(path.join(this.dir, id, MANIFEST_NAME), 'utf8')));
  }

  /** `permafrost backup`, measured; returns the new snapshot. */
  async backup(): Promise<Backup> {
    const before = new Set(readdirSync(this.dir));
    const cost = await this.cli(['backup']);
    const id = readdirSync(this.dir).find((n) => !before.has(n) && /^\d{4}-/.test(n));
    if (!id) throw new Error(`permafrost backup made no snapshot in ${this.dir}`);
    const dir = path.join(this.dir, id);
    const m = this.manifest(id);
    return {
      ...cost,
      id,
      dir,
      kind: m.chain?.kind ?? 'full',
      depth: m.chain?.depth ?? 0,
      bytes: readdirSync(dir).reduce((t, f) => t + statSync(path.join(dir, f)).size, 0),
      sentBytes: null,
    };
  }

  /** `permafrost restore ID --database TARGET --jobs 2` (TARGET dropped first, not timed), measured. */
  async restore(id: string, target: string): Promise<Cost> {
    this.copy.cluster.psql('postgres', `SET client_min_messages = warning; DROP DATABASE IF EXISTS ${target}`);
    return this.cli(['restore', id, '--database', target, '--jobs', '2']);
  }

  /** `permafrost verify ID` (a test restore into a scratch database, always dropped), measured. */
  verify(id: string): Promise<Cost> {
    return this.cli(['verify', id]);
  }

  private async cli(args: string[]): Promise<Cost> {
    const { stat, ...cost } = await measured([process.execPath, CLI, ...args, '--config', this.config], {
      env: this.env,
      server: this.copy.cluster,
      name: 'permafrost',
    });
    void stat;
    return cost;
  }
}

/** Row counts of every table and matview plus the index count, as one string to compare. */
export const FINGERPRINT_SQL = `SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM public.' || quote_ident(c.relname), false, true, '')))[1]::text, ',' ORDER BY c.relname)
    || ';indexes=' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')
    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'm')`;

/** Whether database `target` (same cluster) equals the source: row counts of every table and matview, index count. */
export function sameAs(copy: BenchSource, target: string): boolean {
  return copy.cluster.psql(copy.db, FINGERPRINT_SQL) === copy.cluster.psql(target, FINGERPRINT_SQL);
}
