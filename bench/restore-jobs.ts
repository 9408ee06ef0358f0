/**
 * `npm run build && node --import tsx bench/restore-jobs.ts`: where the restore's time goes, by pg_restore --jobs, and what
 * streaming the decrypt into pg_restore would give (possible now that restore writes into a new
 * `<target>_incoming` and touches the target only in the swap; pg_restore reads a stream with one
 * job only, as parallel jobs need to seek in the archive).
 *
 *   BENCH_SIZE_MB  database size on disk (default 128); generated once into .bench-cache/
 *   BENCH_RUNS     rounds (default 3); every round runs each variant in turn
 *   BENCH_JOBS     pg_restore jobs to profile (default 1,2,4)
 *
 * (d)      gpg -d --output db.pgdump …; pg_restore --dbname T db.pgdump       (stock, one job)
 * (s)      gpg -d … | pg_restore --dbname T                                      (streamed, one job)
 * (e jN)   permafrost restore SNAPSHOT --database T --jobs N                    (file, N jobs, + roles, check, swap)
 *
 * Medians on stdout as a Markdown table.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { CACHE, openDataset, REPO } from './dataset.js';
import { median, timed } from './measure.js';

const SIZE = Number(process.env.BENCH_SIZE_MB ?? 128);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const JOBS = (process.env.BENCH_JOBS ?? '1,2,4').split(',').map(Number);
const CLI = path.join(REPO, 'dist/cli/main.js');
const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const ds = openDataset(SIZE, { port: 5436, log });
  process.once('exit', () => ds.stop());
  const c = ds.cluster;
  const work = mkdtempSync(path.join(CACHE, 'jobs-'));
  const pass = path.join(work, 'passphrase');
  writeFileSync(pass, 'bench passphrase: correct horse battery staple\n', { mode: 0o600 });
  const gnupg = path.join(work, 'gnupg');
  mkdirSync(gnupg, { mode: 0o700 });
  const vault = path.join(work, 'vault');
  mkdirSync(vault);
  const config = path.join(work, 'permafrost.yaml');
  writeFileSync(
    config,
    stringify({
      database: { name: ds.db, host: c.socketDir, port: c.port, user: c.user, binDir: c.binDir },
      vault: { dir: vault, passphraseFile: pass, tempDir: work },
    }),
  );
  const env = { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: c.user, GNUPGHOME: gnupg };
  const bin = (t: string): string => path.join(c.binDir, t);
  const drop = (db: string): void => void c.psql('postgres', `DROP DATABASE IF EXISTS ${db}`);
  const samples: Record<string, Array<{ wall: number; decrypt?: number; restore?: number }>> = {};
  const add = (k: string, v: { wall: number; decrypt?: number; restore?: number }): void => void (samples[k] ??= []).push(v);
  try {
    await timed([process.execPath, CLI, 'backup', '--config', config], { env }).done;
    const id = readdirSync(vault).find((n) => /^\d{4}-/.test(n))!;
    const part = path.join(vault, id, 'database.pgdump.gpg');
    for (let r = 1; r <= RUNS; r++) {
      log(`round ${r}/${RUNS}`);
      // (d) stock: decrypt to a file, then one pg_restore job.
      c.psql('postgres', 'DROP DATABASE IF EXISTS bench_d; CREATE DATABASE bench_d');
      const archive = path.join(work, 'db.pgdump');
      const t0 = performance.now();
      const g = await timed(['gpg', '-d', '--batch', '--passphrase-file', pass, '--output', archive, part], { env }).done;
      const p = await timed([bin('pg_restore'), '--dbname', 'bench_d', archive], { env }).done;
      add('d', { wall: (performance.now() - t0) / 1000, decrypt: g.wallS, restore: p.wallS });
      rmSync(archive, { force: true });
      drop('bench_d');
      // (s) streamed: gpg's stdout is pg_restore's stdin, so decrypt and restore overlap.
      c.psql('postgres', 'DROP DATABASE IF EXISTS bench_s; CREATE DATABASE bench_s');
      const t1 = performance.now();
      const gpg = spawn('gpg', ['-d', '--batch', '--passphrase-file', pass, part], { env, stdio: ['ignore', 'pipe', 'ignore'] });
      const restore = timed([bin('pg_restore'), '--dbname', 'bench_s'], { env, stdio: [gpg.stdout, 'ignore', 'pipe'] });
      await restore.done;
      add('s', { wall: (performance.now() - t1) / 1000 });
      drop('bench_s');
      for (const j of JOBS) {
        drop('bench_e');
        let out = '';
        const run = timed([process.execPath, CLI, 'restore', id, '--database', 'bench_e', '--jobs', String(j), '--config', config], {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        run.child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
        const st = await run.done;
        const m = /verified in ([\d.]+)s, restored and checked in ([\d.]+)s/.exec(out);
        add(`e j${j}`, { wall: st.wallS, decrypt: m ? Number(m[1]) : NaN, restore: m ? Number(m[2]) : NaN });
        drop('bench_e');
      }
      log(
        `  ${Object.entries(samples)
          .map(([k, v]) => `${k} ${v.at(-1)!.wall.toFixed(2)}s`)
          .join(', ')}`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
    ds.stop();
  }
  const d = median(samples.d!.map((x) => x.wall));
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '');
  const lines = [
    `restore profile, ${(ds.info.bytes / 2 ** 20).toFixed(0)} MiB database, medians of ${RUNS} rounds`,
    '',
    '| variant | wall s | decrypt+verify s | pg_restore (+check, swap) s | ratio to (d) |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...Object.entries(samples).map(([k, v]) => {
      const wall = median(v.map((x) => x.wall));
      return `| ${k} | ${f(wall)} | ${f(median(v.map((x) => x.decrypt ?? NaN)))} | ${f(median(v.map((x) => x.restore ?? NaN)))} | ${f(wall / d)} |`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
