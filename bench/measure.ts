/**
 * Measuring processes for the benchmark: wall time, CPU (user+sys, children included) and peak RSS
 * of each process via `/usr/bin/time -f`, a /proc sampler that splits a process tree per program
 * (node vs pg_dump vs gpg), and the PostgreSQL server's own CPU (the backends serving pg_dump and
 * pg_restore are the postmaster's children, not ours).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';

export const TIME_BIN = '/usr/bin/time';
const CLK_TCK = 100;

export interface ProcStat {
  /** What ran (program name). */
  name: string;
  wallS: number;
  userS: number;
  sysS: number;
  /** Peak resident set size in MiB (for /usr/bin/time: the largest of the process and its waited-for children). */
  peakRssMiB: number;
}

export interface Timed {
  child: ChildProcess;
  /** Resolves when the process exited; rejects if it failed. */
  done: Promise<ProcStat>;
}

let seq = 0;
const scratch = mkdtempSync(path.join(tmpdir(), 'permafrost-bench-time-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/** Spawns argv under /usr/bin/time; stdio as for spawn. */
export function timed(argv: string[], opts: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv; name?: string } = {}): Timed {
  const out = path.join(scratch, `t${++seq}`);
  const t0 = process.hrtime.bigint();
  const child = spawn(TIME_BIN, ['-f', '%e %U %S %M', '-o', out, '--', ...argv], {
    stdio: opts.stdio ?? ['ignore', 'ignore', 'pipe'],
    env: opts.env ?? process.env,
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => (stderr = (stderr + s).slice(-4000)));
  const done = new Promise<ProcStat>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.trim()}`));
      const line = readFileSync(out, 'utf8').trim().split('\n').pop() ?? '';
      const [, u, s, m] = line.split(' ').map(Number);
      resolve({ name: opts.name ?? path.basename(argv[0]!), wallS, userS: u ?? NaN, sysS: s ?? NaN, peakRssMiB: (m ?? NaN) / 1024 });
    });
  });
  return { child, done };
}

function readStat(pid: number): { comm: string; cpuTicks: number; children: number[] } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    // fields after comm: state(0) … utime(11) stime(12) cutime(13) cstime(14)
    const cpuTicks = Number(f[11]) + Number(f[12]);
    let children: number[] = [];
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (c) children = children.concat(c.split(' ').map(Number));
    }
    return { comm, cpuTicks, children };
  } catch {
    return null;
  }
}

function readHwmMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export interface TreeProfile {
  /** Per program name: peak RSS (MiB, VmHWM) and CPU seconds seen (last sample before exit). */
  [name: string]: { peakRssMiB: number; cpuS: number };
}

/** Samples a process tree every `ms` until stopped: per-program peak RSS and CPU. */
export function sampleTree(rootPid: number, ms = 50): { stop(): TreeProfile } {
  const seen = new Map<number, { comm: string; hwm: number; cpu: number }>();
  const tick = (): void => {
    const stack = [rootPid];
    while (stack.length) {
      const pid = stack.pop()!;
      const st = readStat(pid);
      if (!st) continue;
      const prev = seen.get(pid);
      seen.set(pid, { comm: st.comm, hwm: Math.max(prev?.hwm ?? 0, readHwmMiB(pid)), cpu: st.cpuTicks / CLK_TCK });
      stack.push(...st.children);
    }
  };
  tick();
  const timer = setInterval(tick, ms);
  return {
    stop() {
      clearInterval(timer);
      const out: TreeProfile = {};
      for (const { comm, hwm, cpu } of seen.values()) {
        const name = comm === 'MainThread' ? 'node' : comm;
        const cur = out[name] ?? { peakRssMiB: 0, cpuS: 0 };
        out[name] = { peakRssMiB: Math.max(cur.peakRssMiB, hwm), cpuS: cur.cpuS + cpu };
      }
      return out;
    },
  };
}

/** Total CPU seconds the PostgreSQL server has used (postmaster, its live children, and reaped ones). */
export function serverCpuS(dataDir: string): number {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return NaN;
  const pm = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    const stat = readFileSync(`/proc/${pm}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    for (const child of readStat(pm)?.children ?? []) ticks += readStat(child)?.cpuTicks ?? 0;
    return ticks / CLK_TCK;
  } catch {
    return NaN;
  }
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A number for the tables: `d` decimals, "n/a" when it is not finite. */
export const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/** The machine a benchmark ran on, recorded with its results. */
export function machine(): { date: string; cpus: number; cpuModel: string; node: string; loadAvgStart: number[] } {
  return {
    date: new Date().toISOString(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    loadAvgStart: loadavg(),
  };
}
