/**
 * `npm run bench`: the benchmark of issue 2 on a generated Mastodon-shaped database.
 *
 *   BENCH_SIZE_MB  database size on disk (default 1024); generated once into .bench-cache/
 *   BENCH_RUNS     rounds (default 3); every round runs a, b, c, d, e, f in turn so noise hits all alike
 *   BENCH_FLAT     0 skips the check that permafrost's peak RSS stays flat at half the size
 *
 * (a) pg_dump DB | gzip > f.sql.gz; gpg -c --batch --passphrase-file P f.sql.gz   (what admins do)
 * (b) pg_dump -Fc -Z0 DB > f                                                      (the floor)
 * (c) permafrost backup
 * (d) gpg -d --batch --passphrase-file P --output db.pgdump SNAPSHOT/database.pgdump.gpg;
 *     pg_restore --clean --if-exists --dbname T db.pgdump                          (stock, one job)
 * (e) permafrost restore SNAPSHOT --database T --jobs 2
 * (f) permafrost backup with vault.recipients (a Curve25519 key) instead of the passphrase
 *
 * Results: a table on stdout and bench/results/latest.{json,md}. Medians of the rounds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import * as openpgp from 'openpgp';
import { stringify } from 'yaml';
import { CACHE, openDataset, REPO, type BenchCluster } from './dataset.js';
import { fmt, machine, median, sampleTree, serverCpuS, timed, type ProcStat, type TreeProfile } from './measure.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 1024);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const FLAT = process.env.BENCH_FLAT !== '0';
const CLI = path.join(REPO, 'dist/bin/permafrost.js');
const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

interface Sample {
  wallS: number;
  /** user+sys of our processes (children included). */
  cpuS: number;
  /** The PostgreSQL server's CPU during the run. */
  serverCpuS: number;
  peakRssMiB: number;
  bytes?: number;
  extra?: Record<string, number>;
}

function combine(stats: ProcStat[], wallS: number, serverS: number, bytes?: number, extra?: Record<string, number>): Sample {
  return {
    wallS,
    cpuS: stats.reduce((t, s) => t + s.userS + s.sysS, 0),
    serverCpuS: serverS,
    peakRssMiB: Math.max(...stats.map((s) => s.peakRssMiB)),
    bytes,
    extra,
  };
}

class Bench {
  readonly work: string;
  readonly pass: string;
  readonly gnupg: string;
  readonly vault: string;
  readonly config: string;
  /** The same backup encrypted to a Curve25519 recipient (vault.recipients) instead of the passphrase. */
  readonly recipientsConfig: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(readonly b: BenchCluster) {
    this.work = mkdtempSync(path.join(CACHE, 'work-'));
    this.pass = path.join(this.work, 'passphrase');
    writeFileSync(this.pass, 'bench passphrase: correct horse battery staple\n', { mode: 0o600 });
    this.gnupg = path.join(this.work, 'gnupg');
    mkdirSync(this.gnupg, { mode: 0o700 });
    this.vault = path.join(this.work, 'vault');
    mkdirSync(this.vault);
    const c = b.cluster;
    this.config = path.join(this.work, 'permafrost.yaml');
    writeFileSync(
      this.config,
      stringify({
        database: { name: b.db, host: c.socketDir, port: c.port, user: c.user, binDir: c.binDir },
        vault: { dir: this.vault, passphraseFile: this.pass, tempDir: this.work },
      }),
    );
    this.recipientsConfig = path.join(this.work, 'permafrost-recipients.yaml');
    this.env = { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user, GNUPGHOME: this.gnupg };
  }

  bin(tool: string): string {
    return path.join(this.b.cluster.binDir, tool);
  }

  server(): number {
    return serverCpuS(this.b.cluster.dataDir);
  }

  file(name: string): string {
    return path.join(this.work, name);
  }

  dispose(): void {
    spawnSync('gpgconf', ['--homedir', this.gnupg, '--kill', 'all'], { stdio: 'ignore' });
    rmSync(this.work, { recursive: true, force: true });
  }

  /** (a) pg_dump | gzip > f.sql.gz, then gpg -c. */
  async plain(): Promise<Sample> {
    const gz = this.file('f.sql.gz');
    rmSync(gz, { force: true });
    rmSync(`${gz}.gpg`, { force: true });
    const s0 = this.server();
    const t0 = performance.now();
    const out = openSync(gz, 'w');
    const dump = timed([this.bin('pg_dump'), this.b.db], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
    const gzip = timed(['gzip'], { stdio: [dump.child.stdout!, out, 'pipe'], env: this.env });
    dump.child.stdout!.destroy(); // gzip holds the read end now
    const st = await Promise.all([dump.done, gzip.done]);
    closeSync(out);
    const gpg = await timed(['gpg', '-c', '--batch', '--passphrase-file', this.pass, gz], { env: this.env }).done;
    const wall = (performance.now() - t0) / 1000;
    const bytes = statSync(gz).size;
    return combine([...st, gpg], wall, this.server() - s0, bytes, {
      gpgBytes: statSync(`${gz}.gpg`).size,
      dumpGzipWallS: Math.max(st[0].wallS, st[1].wallS),
      gpgWallS: gpg.wallS,
    });
  }

  /** (b) pg_dump -Fc -Z0 > f. */
  async floor(): Promise<Sample> {
    const f = this.file('floor.pgdump');
    const s0 = this.server();
    const out = openSync(f, 'w');
    const st = await timed([this.bin('pg_dump'), '-Fc', '-Z0', this.b.db], { stdio: ['ignore', out, 'pipe'], env: this.env }).done;
    closeSync(out);
    const bytes = statSync(f).size;
    rmSync(f, { force: true });
    return combine([st], st.wallS, this.server() - s0, bytes);
  }

  /** Writes the recipients config with a fresh Curve25519 key (v4, as gpg 2.2 reads it). */
  async prepareRecipients(): Promise<void> {
    const { publicKey } = await openpgp.generateKey({
      type: 'ecc',
      curve: 'curve25519Legacy',
      userIDs: [{ name: 'bench', email: 'bench@example.invalid' }],
      format: 'armored',
      config: { aeadProtect: false, v6Keys: false },
    });
    const pub = path.join(this.work, 'recipient.pub.asc');
    writeFileSync(pub, publicKey);
    const c = this.b.cluster;
    writeFileSync(
      this.recipientsConfig,
      stringify({
        database: { name: this.b.db, host: c.socketDir, port: c.port, user: c.user, binDir: c.binDir },
        vault: { dir: this.vault, recipients: [pub], tempDir: this.work },
      }),
    );
  }

  /** (c) permafrost backup, or (f) with `config` = recipientsConfig; returns the snapshot folder too. */
  async backup(config = this.config): Promise<{ sample: Sample; snapshot: string; profile: TreeProfile }> {
    const before = new Set(readdirSync(this.vault));
    const s0 = this.server();
    const run = timed([process.execPath, CLI, 'backup', '--config', config], { env: this.env, name: 'permafrost' });
    const sampler = sampleTree(run.child.pid!);
    const st = await run.done;
    const profile = sampler.stop();
    const serverS = this.server() - s0;
    const id = readdirSync(this.vault).find((n) => !before.has(n) && /^\d{4}-/.test(n));
    if (!id) throw new Error('permafrost backup made no snapshot');
    const snapshot = path.join(this.vault, id);
    const bytes = statSync(path.join(snapshot, 'database.pgdump.gpg')).size;
    const sample = combine([st], st.wallS, serverS, bytes, {
      nodePeakRssMiB: profile.node?.peakRssMiB ?? NaN,
      nodeCpuS: profile.node?.cpuS ?? NaN,
      pgDumpPeakRssMiB: profile.pg_dump?.peakRssMiB ?? NaN,
      pgDumpCpuS: profile.pg_dump?.cpuS ?? NaN,
      igzipCpuS: profile.igzip?.cpuS ?? 0,
      igzipPeakRssMiB: profile.igzip?.peakRssMiB ?? 0,
    });
    return { sample, snapshot, profile };
  }

  createDb(name: string): void {
    this.b.cluster.psql('postgres', `DROP DATABASE IF EXISTS ${name}; CREATE DATABASE ${name};`);
  }

  dropDb(name: string): void {
    this.b.cluster.psql('postgres', `DROP DATABASE IF EXISTS ${name};`);
  }

  /** (d) the stock commands from the README, one pg_restore job. */
  async stockRestore(snapshot: string, target: string): Promise<Sample> {
    this.createDb(target);
    const archive = this.file('db.pgdump');
    rmSync(archive, { force: true });
    const s0 = this.server();
    const t0 = performance.now();
    const gpg = await timed(
      ['gpg', '-d', '--batch', '--passphrase-file', this.pass, '--output', archive, path.join(snapshot, 'database.pgdump.gpg')],
      {
        env: this.env,
      },
    ).done;
    const restore = await timed([this.bin('pg_restore'), '--clean', '--if-exists', '--dbname', target, archive], { env: this.env }).done;
    const wall = (performance.now() - t0) / 1000;
    rmSync(archive, { force: true });
    return combine([gpg, restore], wall, this.server() - s0, undefined, { gpgWallS: gpg.wallS, pgRestoreWallS: restore.wallS });
  }

  /** (e) permafrost restore --jobs 2; it creates the database itself (as the source had it), so none is made first. */
  async permafrostRestore(snapshot: string, target: string): Promise<Sample> {
    this.dropDb(target);
    const s0 = this.server();
    const run = timed(
      [process.execPath, CLI, 'restore', path.basename(snapshot), '--database', target, '--jobs', '2', '--config', this.config],
      {
        env: this.env,
        name: 'permafrost',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    run.child.stdout!.setEncoding('utf8');
    run.child.stdout!.on('data', (s: string) => (stdout += s));
    const st = await run.done;
    const m = /verified in ([\d.]+)s, restored and checked in ([\d.]+)s/.exec(stdout);
    return combine([st], st.wallS, this.server() - s0, undefined, m ? { decryptVerifyS: Number(m[1]), pgRestoreS: Number(m[2]) } : {});
  }

  /** Row counts of every table plus the index count: equal to the source's? */
  sameAsSource(target: string): boolean {
    const q = `SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM public.' || quote_ident(c.relname), false, true, '')))[1]::text, ',' ORDER BY c.relname)
      || ';indexes=' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')
      FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'm')`;
    return this.b.cluster.psql(this.b.db, q) === this.b.cluster.psql(target, q);
  }
}

function tool(argv: string[]): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

const mb = (n: number | undefined): string => (n === undefined ? '' : (n / 1e6).toFixed(1));

async function main(): Promise<void> {
  const env = machine();
  log(`size ${SIZE} MB, ${RUNS} rounds; preparing the database (cached under .bench-cache/)`);
  const ds = openDataset(SIZE, { port: 5434, log });
  process.once('exit', () => ds.stop());
  const bench = new Bench(ds);
  const versions = { postgres: tool([bench.bin('postgres'), '--version']), gpg: tool(['gpg', '--version']) };
  const rounds: Array<Record<'a' | 'b' | 'c' | 'd' | 'e' | 'f', Sample>> = [];
  const profiles: TreeProfile[] = [];
  let verified = false;
  try {
    // Warm the page cache, as on a server that is running: one untimed dump.
    const devnull = openSync('/dev/null', 'w');
    await timed([bench.bin('pg_dump'), '-Fc', '-Z0', ds.db], { stdio: ['ignore', devnull, 'pipe'], env: bench.env }).done;
    closeSync(devnull);
    await bench.prepareRecipients();
    for (let r = 1; r <= RUNS; r++) {
      log(`round ${r}/${RUNS}: (a) pg_dump | gzip; gpg -c`);
      const a = await bench.plain();
      log(`  a ${fmt(a.wallS)} s; (b) pg_dump -Fc -Z0`);
      const b = await bench.floor();
      log(`  b ${fmt(b.wallS)} s; (c) permafrost backup`);
      const { sample: c, snapshot, profile } = await bench.backup();
      profiles.push(profile);
      log(`  c ${fmt(c.wallS)} s; (d) gpg -d + pg_restore`);
      const d = await bench.stockRestore(snapshot, 'bench_restore_d');
      log(`  d ${fmt(d.wallS)} s; (e) permafrost restore --jobs 2`);
      const e = await bench.permafrostRestore(snapshot, 'bench_restore_e');
      log(`  e ${fmt(e.wallS)} s; (f) permafrost backup to a recipient`);
      const { sample: f, snapshot: fSnapshot } = await bench.backup(bench.recipientsConfig);
      rmSync(fSnapshot, { recursive: true, force: true });
      log(`  f ${fmt(f.wallS)} s`);
      if (r === 1) {
        verified = bench.sameAsSource('bench_restore_d') && bench.sameAsSource('bench_restore_e');
        log(`  restored databases match the source (row counts, index count): ${verified}`);
      }
      bench.dropDb('bench_restore_d');
      bench.dropDb('bench_restore_e');
      rmSync(snapshot, { recursive: true, force: true });
      rounds.push({ a, b, c, d, e, f });
    }
  } finally {
    bench.dispose();
    ds.stop();
  }

  // Peak RSS when the database is half as big: flat means the memory does not follow the data.
  let flat: { sizeMb: number; nodePeakRssMiB: number } | null = null;
  if (FLAT && SIZE >= 64) {
    const half = Math.round(SIZE / 2);
    log(`flatness check: permafrost backup at ${half} MB`);
    const hs = openDataset(half, { port: 5435, log });
    const hb = new Bench(hs);
    try {
      const { sample } = await hb.backup();
      flat = { sizeMb: half, nodePeakRssMiB: sample.extra?.nodePeakRssMiB ?? NaN };
    } finally {
      hb.dispose();
      hs.stop();
    }
  }

  const med = (k: 'a' | 'b' | 'c' | 'd' | 'e' | 'f', f: (s: Sample) => number | undefined): number =>
    median(rounds.map((r) => f(r[k]) ?? NaN));
  const summary = Object.fromEntries(
    (['a', 'b', 'c', 'd', 'e', 'f'] as const).map((k) => [
      k,
      {
        wallS: med(k, (s) => s.wallS),
        cpuS: med(k, (s) => s.cpuS),
        serverCpuS: med(k, (s) => s.serverCpuS),
        peakRssMiB: med(k, (s) => s.peakRssMiB),
        bytes: med(k, (s) => s.bytes),
        ...Object.fromEntries(Object.keys(rounds[0]![k].extra ?? {}).map((x) => [x, med(k, (s) => s.extra?.[x])])),
      },
    ]),
  ) as unknown as Record<'a' | 'b' | 'c' | 'd' | 'e' | 'f', Record<string, number>>;
  const S = summary;
  // Each round measures a–e back to back, so per-round ratios cancel most of the machine's drift;
  // the bars use the median of those (the ratio of the medians is printed beside it).
  const perRound = (x: 'a' | 'b' | 'c' | 'd', y: 'c' | 'e' | 'f'): number[] => rounds.map((r) => r[y].wallS / r[x].wallS);
  const ratios = {
    cOverA: median(perRound('a', 'c')),
    snapshotOverGzip: S.c.bytes! / S.a.bytes!,
    cOverB: median(perRound('b', 'c')),
    nodePeakRssMiB: S.c.nodePeakRssMiB!,
    pgDumpPeakRssMiB: S.c.pgDumpPeakRssMiB!,
    eOverD: median(perRound('d', 'e')),
    fOverC: median(perRound('c', 'f')),
    perRound: { cOverA: perRound('a', 'c'), cOverB: perRound('b', 'c'), eOverD: perRound('d', 'e'), fOverC: perRound('c', 'f') },
    ofMedians: {
      cOverA: S.c.wallS! / S.a.wallS!,
      cOverB: S.c.wallS! / S.b.wallS!,
      eOverD: S.e.wallS! / S.d.wallS!,
      fOverC: S.f.wallS! / S.c.wallS!,
    },
  };
  const rr = (k: 'cOverA' | 'cOverB' | 'eOverD' | 'fOverC'): string =>
    `${fmt(ratios[k])} (rounds: ${ratios.perRound[k].map((x) => fmt(x)).join(', ')}; ratio of medians ${fmt(ratios.ofMedians[k])})`;
  const flatOk = flat ? ratios.nodePeakRssMiB <= flat.nodePeakRssMiB * 1.2 + 8 : null;
  const bars = [
    { bar: '(c)/(a) wall ≤ 0.35', value: rr('cOverA'), pass: ratios.cOverA <= 0.35 },
    { bar: 'snapshot ≤ 1.15 × gzip dump', value: fmt(ratios.snapshotOverGzip, 3), pass: ratios.snapshotOverGzip <= 1.15 },
    { bar: '(c)/(b) wall ≤ 1.6', value: rr('cOverB'), pass: ratios.cOverB <= 1.6 },
    {
      bar: 'peak RSS of (c) ≤ 150 MiB (node)',
      value: `${fmt(ratios.nodePeakRssMiB, 0)} MiB (pg_dump ${fmt(ratios.pgDumpPeakRssMiB, 0)} MiB)`,
      pass: ratios.nodePeakRssMiB <= 150,
    },
    {
      bar: 'peak RSS flat when the database doubles',
      value: flat
        ? `${fmt(flat.nodePeakRssMiB, 0)} MiB at ${flat.sizeMb} MB → ${fmt(ratios.nodePeakRssMiB, 0)} MiB at ${SIZE} MB`
        : 'not run',
      pass: flatOk,
    },
    { bar: '(e)/(d) wall ≤ 0.6', value: rr('eOverD'), pass: ratios.eOverD <= 0.6 },
    // Identical runs differ by 10–20 % (shared/reference/pipeline.md): the recipient path must stay within that noise.
    { bar: '(f)/(c) wall ≤ 1.1 (recipient vs passphrase)', value: rr('fOverC'), pass: ratios.fOverC <= 1.1 },
  ];
  const labels: Record<string, string> = {
    a: '(a) pg_dump \\| gzip; gpg -c',
    b: '(b) pg_dump -Fc -Z0 (floor)',
    c: '(c) permafrost backup',
    d: '(d) gpg -d; pg_restore (1 job)',
    e: '(e) permafrost restore --jobs 2',
    f: '(f) permafrost backup, vault.recipients',
  };
  const lines: string[] = [];
  lines.push(`# permafrost benchmark — ${env.date}`);
  lines.push('');
  lines.push(
    `Database: ${(ds.info.bytes / 2 ** 20).toFixed(0)} MiB on disk (${Object.entries(ds.info.rows)
      .map(([t, n]) => `${t} ${n}`)
      .join(', ')}); ` +
      `${env.cpus} × ${env.cpuModel}; ${versions.postgres}; ${versions.gpg}; node ${env.node}. Medians of ${RUNS} rounds; load average at start ${env.loadAvgStart.map((x) => x.toFixed(1)).join(' ')}.`,
  );
  lines.push('');
  lines.push('| variant | wall s | CPU s (ours, user+sys) | server CPU s | peak RSS MiB | output MB |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const k of ['a', 'b', 'c', 'd', 'e', 'f'] as const) {
    const s = S[k];
    lines.push(
      `| ${labels[k]} | ${fmt(s.wallS!)} | ${fmt(s.cpuS!)} | ${fmt(s.serverCpuS!)} | ${fmt(s.peakRssMiB!, 0)} | ${Number.isFinite(s.bytes) ? mb(s.bytes) : ''} |`,
    );
  }
  lines.push('');
  lines.push('| bar (ratios: median of the per-round ratios) | measured | pass |');
  lines.push('| --- | --- | --- |');
  for (const b of bars) lines.push(`| ${b.bar} | ${b.value} | ${b.pass === null ? 'n/a' : b.pass ? 'yes' : 'NO'} |`);
  lines.push('');
  lines.push('Where the time goes (medians):');
  lines.push(`- (a): pg_dump | gzip ${fmt(S.a.dumpGzipWallS!)} s, then gpg -c ${fmt(S.a.gpgWallS!)} s; gzip dump ${mb(S.a.bytes)} MB.`);
  lines.push(
    `- (c): node ${fmt(S.c.nodeCpuS!)} CPU-s (startup, AES-CFB, SHA-1 MDC, SHA-256), igzip ${fmt(S.c.igzipCpuS!)} CPU-s, pg_dump ${fmt(S.c.pgDumpCpuS!)} CPU-s, server ${fmt(S.c.serverCpuS!)} CPU-s: ${fmt(S.c.nodeCpuS! + S.c.igzipCpuS! + S.c.pgDumpCpuS! + S.c.serverCpuS!)} CPU-s over ${fmt(S.c.wallS!)} s wall on ${env.cpus} cores (the floor: ${fmt(S.b.cpuS! + S.b.serverCpuS!)} CPU-s over ${fmt(S.b.wallS!)} s); snapshot ${mb(S.c.bytes)} MB.`,
  );
  lines.push(`- (d): gpg -d ${fmt(S.d.gpgWallS!)} s + pg_restore ${fmt(S.d.pgRestoreWallS!)} s; server ${fmt(S.d.serverCpuS!)} CPU-s.`);
  lines.push(
    `- (e): decrypt + verify ${fmt(S.e.decryptVerifyS!)} s + pg_restore -j2 ${fmt(S.e.pgRestoreS!)} s; server ${fmt(S.e.serverCpuS!)} CPU-s.`,
  );
  lines.push(`- Restored databases equal the source (row counts of every table, index count): ${verified ? 'yes' : 'NO'}.`);
  lines.push('');
  lines.push(`Reproduce: \`BENCH_SIZE_MB=${SIZE} BENCH_RUNS=${RUNS} npm run bench\``);
  const md = lines.join('\n');
  process.stdout.write(`${md}\n`);
  const resultsDir = path.join(REPO, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(
    path.join(resultsDir, 'latest.json'),
    `${JSON.stringify({ env: { ...env, loadAvgEnd: loadavg(), ...versions }, dataset: ds.info, runs: RUNS, summary, ratios, bars, flat, verified, rounds }, null, 2)}\n`,
  );
  writeFileSync(path.join(resultsDir, 'latest.md'), `${md}\n`);
}

await main();
