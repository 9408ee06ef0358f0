/**
 * `npm run bench:rto`: the recovery time of the bench instance onto a fresh machine (issue 10).
 *
 *   BENCH_SIZE_MB  database size on disk (default 1024; the cached dataset of bench/run.ts)
 *   BENCH_RUNS     rounds (default 3); every round runs every variant, each onto a new cluster
 *
 * One backup of the dataset (owned by a `mastodon` role, as on a real server) is copied to a
 * "device" folder, as Syncthing would hold it. Then, per round and variant, a new PostgreSQL
 * cluster with no roles is started (not timed) and the variant is timed from nothing to a
 * database Mastodon can use:
 *
 * (s) the stock sequence a careful admin types: gpg -d --output db.pgdump; createuser mastodon;
 *     createdb -O mastodon -T template0 -E UTF8; pg_restore --dbname … db.pgdump (one job)
 * (ss) the same with the decrypt streamed into pg_restore (one job: a stream cannot be seeked), which
 *     is what restoring into a new database makes safe, to show what streaming would move
 * (p1, p2, p4) permafrost restore latest --vault COPY --passphrase-file P --jobs N, with no config
 * (sh) sh COPY/restore.sh --passphrase-file P   (stock tools only)
 *
 * (p1, p2, p4) are the --jobs profile of issue 10.
 * Every restored database is compared with the source (row counts, index count, table owners).
 * Results: a table on stdout and bench/results/rto.{json,md}. Medians of the rounds.
 */
import { chmodSync, cpSync, mkdtempSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { destroyCluster, startCluster, type PgCluster } from '../test/harness/postgres.js';
import { CACHE, openDataset, REPO } from './dataset.js';
import { fmt, machine, median, serverCpuS, timed, type ProcStat } from './measure.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 1024);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const CLI = path.join(REPO, 'dist/bin/permafrost.js');
const OWNER = 'mastodon';
const log = (s: string): void => void process.stderr.write(`[bench:rto] ${s}\n`);

type Variant = 's' | 'ss' | 'p1' | 'p2' | 'p4' | 'sh';
const VARIANTS: Variant[] = ['s', 'ss', 'p1', 'p2', 'p4', 'sh'];
const LABELS: Record<Variant, string> = {
  s: '(s) stock: gpg -d; createuser; createdb -T template0; pg_restore',
  ss: '(ss) stock, streamed: createuser; createdb; gpg -d \\| pg_restore',
  p1: '(p1) permafrost restore --vault --jobs 1',
  p2: '(p2) permafrost restore --vault --jobs 2',
  p4: '(p4) permafrost restore --vault --jobs 4',
  sh: '(sh) sh restore.sh',
};

interface Sample {
  wallS: number;
  cpuS: number;
  serverCpuS: number;
  peakRssMiB: number;
}

/** What "equal to the source" means here: row counts of every table, index count, owners. */
const FINGERPRINT = `SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM public.' || quote_ident(c.relname), false, true, '')))[1]::text || '@' || pg_get_userbyid(c.relowner), ',' ORDER BY c.relname)
  || ';indexes=' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')
  || ';dbowner=' || (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'm')`;

/** Gives the cached dataset a `mastodon` owner, as on a real server (idempotent). */
function ownByMastodon(c: PgCluster, db: string): void {
  c.psql(
    db,
    `DO $$ BEGIN
       IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${OWNER}') THEN CREATE ROLE ${OWNER} LOGIN; END IF;
     END $$;
     ALTER DATABASE ${db} OWNER TO ${OWNER};
     DO $$ DECLARE r record; BEGIN
       FOR r IN SELECT c.relname, c.relkind FROM pg_class c
                WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'S', 'v', 'm', 'p')
                  AND pg_get_userbyid(c.relowner) <> '${OWNER}'
                  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
       LOOP
         EXECUTE format('ALTER %s public.%I OWNER TO ${OWNER}',
           CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, r.relname);
       END LOOP;
     END $$;`,
  );
}

function combine(stats: ProcStat[], wallS: number, serverS: number): Sample {
  return {
    wallS,
    cpuS: stats.reduce((t, s) => t + s.userS + s.sysS, 0),
    serverCpuS: serverS,
    peakRssMiB: Math.max(...stats.map((s) => s.peakRssMiB)),
  };
}

async function main(): Promise<void> {
  const env = machine();
  log(`size ${SIZE} MB, ${RUNS} rounds`);
  const ds = openDataset(SIZE, { port: 5434, log });
  const work = mkdtempSync(path.join(CACHE, 'rto-'));
  chmodSync(work, 0o755); // the postgres user keeps the fresh clusters in here
  const stop = (): void => {
    ds.stop();
    rmSync(work, { recursive: true, force: true });
  };
  process.once('exit', stop);
  const pass = path.join(work, 'passphrase');
  writeFileSync(pass, 'bench passphrase: correct horse battery staple\n', { mode: 0o600 });
  const vault = path.join(work, 'vault');
  mkdirSync(vault);
  const gnupg = path.join(work, 'gnupg');
  mkdirSync(gnupg, { mode: 0o700 });
  const src = ds.cluster;
  ownByMastodon(src, ds.db);
  const config = path.join(work, 'permafrost.yaml');
  writeFileSync(
    config,
    stringify({
      database: { name: ds.db, host: src.socketDir, port: src.port, user: src.user, binDir: src.binDir },
      vault: { dir: vault, passphraseFile: pass, tempDir: work },
    }),
  );
  log('backup of the source');
  await timed([process.execPath, CLI, 'backup', '--config', config], { env: { ...process.env, GNUPGHOME: gnupg } }).done;
  const sourceFingerprint = src.psql(ds.db, FINGERPRINT);
  // The device's copy: what Syncthing holds (snapshots, RESTORE.md, restore.sh).
  const device = path.join(work, 'device');
  cpSync(vault, device, { recursive: true });
  const snapshot = readdirSync(device).find((n) => /^\d{4}-/.test(n))!;
  const archiveBytes = statSync(path.join(device, snapshot, 'database.pgdump.gpg')).size;
  // No config anywhere: PERMAFROST_CONFIG unset (and no permafrost.yaml in the repo or /etc).
  const baseEnv = { ...process.env };
  delete baseEnv.PERMAFROST_CONFIG;

  const rounds: Array<Record<Variant, Sample>> = [];
  const equal: Partial<Record<Variant, boolean>> = {};
  let port = 5440;
  try {
    for (let r = 1; r <= RUNS; r++) {
      const round = {} as Record<Variant, Sample>;
      for (const v of VARIANTS) {
        const fresh = startCluster(port++, { root: path.join(work, `cluster-${r}-${v}`), fsync: true });
        const pgEnv = { ...baseEnv, PGHOST: fresh.socketDir, PGPORT: String(fresh.port), PGUSER: fresh.user, GNUPGHOME: gnupg };
        const bin = (t: string): string => path.join(fresh.binDir, t);
        try {
          const s0 = serverCpuS(fresh.dataDir);
          const t0 = performance.now();
          const stats: ProcStat[] = [];
          if (v === 's') {
            const dump = path.join(work, 'db.pgdump');
            stats.push(
              await timed(
                ['gpg', '-d', '--batch', '--passphrase-file', pass, '--output', dump, path.join(device, snapshot, 'database.pgdump.gpg')],
                { env: pgEnv },
              ).done,
            );
            stats.push(await timed([bin('createuser'), OWNER], { env: pgEnv }).done);
            stats.push(await timed([bin('createdb'), '-O', OWNER, '-T', 'template0', '-E', 'UTF8', ds.db], { env: pgEnv }).done);
            stats.push(await timed([bin('pg_restore'), '--dbname', ds.db, dump], { env: pgEnv }).done);
            rmSync(dump, { force: true });
          } else if (v === 'ss') {
            stats.push(await timed([bin('createuser'), OWNER], { env: pgEnv }).done);
            stats.push(await timed([bin('createdb'), '-O', OWNER, '-T', 'template0', '-E', 'UTF8', ds.db], { env: pgEnv }).done);
            const gpg = timed(['gpg', '-d', '--batch', '--passphrase-file', pass, path.join(device, snapshot, 'database.pgdump.gpg')], {
              env: pgEnv,
              stdio: ['ignore', 'pipe', 'pipe'],
            });
            const restore = timed([bin('pg_restore'), '--dbname', ds.db], { env: pgEnv, stdio: [gpg.child.stdout!, 'ignore', 'pipe'] });
            gpg.child.stdout!.destroy(); // pg_restore holds the read end now
            stats.push(...(await Promise.all([gpg.done, restore.done])));
          } else if (v === 'sh') {
            stats.push(await timed(['sh', path.join(device, 'restore.sh'), '--passphrase-file', pass], { env: pgEnv }).done);
          } else {
            const jobs = v.slice(1);
            const argv = [process.execPath, CLI, 'restore', 'latest', '--vault', device, '--passphrase-file', pass, '--jobs', jobs];
            stats.push(await timed(argv, { env: pgEnv, name: 'permafrost', stdio: ['ignore', 'ignore', 'pipe'] }).done);
          }
          round[v] = combine(stats, (performance.now() - t0) / 1000, serverCpuS(fresh.dataDir) - s0);
          if (r === 1) {
            equal[v] = fresh.psql(ds.db, FINGERPRINT) === sourceFingerprint;
            log(`  ${v}: equal to the source (rows, indexes, owners): ${equal[v]}`);
          }
          log(`round ${r}/${RUNS} ${v}: ${fmt(round[v].wallS)} s`);
        } finally {
          destroyCluster(fresh);
        }
      }
      rounds.push(round);
    }
  } finally {
    stop();
  }

  const med = (v: Variant, f: (s: Sample) => number): number => median(rounds.map((r) => f(r[v])));
  const perRound = (v: Variant): number[] => rounds.map((r) => r[v].wallS / r.s.wallS);
  const summary = Object.fromEntries(
    VARIANTS.map((v) => [
      v,
      {
        wallS: med(v, (s) => s.wallS),
        cpuS: med(v, (s) => s.cpuS),
        serverCpuS: med(v, (s) => s.serverCpuS),
        peakRssMiB: med(v, (s) => s.peakRssMiB),
        overStock: median(perRound(v)),
      },
    ]),
  ) as Record<Variant, Sample & { overStock: number }>;
  const lines = [
    `# permafrost RTO benchmark — ${env.date}`,
    '',
    `Database ${(ds.info.bytes / 2 ** 20).toFixed(0)} MiB on disk, owned by \`${OWNER}\`; snapshot part ${(archiveBytes / 1e6).toFixed(1)} MB. Each variant restores from a copy of the vault onto a new cluster with no roles. ${env.cpus} × ${env.cpuModel}; node ${env.node}. Medians of ${RUNS} rounds; load average at start ${env.loadAvgStart.map((x) => x.toFixed(1)).join(' ')}.`,
    '',
    '| variant | wall s | × stock (median of per-round ratios) | CPU s (ours) | server CPU s | peak RSS MiB | equal to source |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...VARIANTS.map((v) => {
      const s = summary[v];
      return `| ${LABELS[v]} | ${fmt(s.wallS)} | ${fmt(s.overStock)} | ${fmt(s.cpuS)} | ${fmt(s.serverCpuS)} | ${fmt(s.peakRssMiB, 0)} | ${equal[v] ? 'yes' : 'NO'} |`;
    }),
    '',
    `Reproduce: \`BENCH_SIZE_MB=${SIZE} BENCH_RUNS=${RUNS} npm run bench:rto\``,
  ];
  const md = lines.join('\n');
  process.stdout.write(`${md}\n`);
  const dir = path.join(REPO, 'bench/results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'rto.json'),
    `${JSON.stringify({ env: { ...env, loadAvgEnd: loadavg() }, dataset: ds.info, runs: RUNS, summary, equal, rounds }, null, 2)}\n`,
  );
  writeFileSync(path.join(dir, 'rto.md'), `${md}\n`);
}

await main();
