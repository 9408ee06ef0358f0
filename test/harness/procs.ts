import { readdirSync, readFileSync } from 'node:fs';

/** The state letter and parent pid of a process from /proc/PID/stat; null when there is no such process. */
function stat(pid: number): { state: string; ppid: number; comm: string } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const [state, ppid] = s.slice(close + 2).split(' ');
    return { state: state!, ppid: Number(ppid), comm: s.slice(s.indexOf('(') + 1, close) };
  } catch {
    return null;
  }
}

/** Whether `pid` has ended: gone, or a zombie nobody has reaped yet (in a container without init). */
export function processGone(pid: number): boolean {
  const s = stat(pid);
  return s === null || s.state === 'Z';
}

/** The live descendants of `pid` with their program names (from /proc). */
export function descendants(pid: number): { pid: number; comm: string }[] {
  const all = readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map((n) => ({ pid: Number(n), s: stat(Number(n)) }))
    .filter((p) => p.s !== null && p.s.state !== 'Z');
  const found: { pid: number; comm: string }[] = [];
  const parents = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!parents.has(p.pid) && parents.has(p.s!.ppid)) {
        parents.add(p.pid);
        found.push({ pid: p.pid, comm: p.s!.comm });
        grew = true;
      }
    }
  }
  return found;
}
