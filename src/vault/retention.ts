/**
 * GFS retention, as restic `forget` (≥ 0.17) and borg/borgmatic `prune` define it. Pure: no I/O.
 *
 * Snapshots are walked newest first. Each rule (last, hourly, daily, weekly, monthly, yearly) keeps
 * the newest snapshot of each of its periods until its count is used up; a period counts only where a
 * snapshot exists (three snapshots on Mon, Wed, Fri make three "daily" periods, not five). When a rule
 * other than `last` runs out of snapshots before its count is used up, the oldest snapshot is kept
 * too (restic: "the oldest snapshot in the group is kept additionally").
 *
 * Periods are calendar periods in one IANA timezone: a day is a local calendar day (23 or 25 hours
 * on DST change days), a week an ISO 8601 week (Monday start; week-numbering year), a month and a
 * year the local calendar's. An hour is a local clock hour *with its UTC offset*: the hour that
 * occurs twice when DST ends counts as two hours (restic, keying by clock time alone, merges them).
 *
 * Two departures from restic, both to keep a restorable snapshot: within a period the newest
 * snapshot that passed `verify` stands for the period (the newest one otherwise), and the newest
 * verified-good snapshot is never removed. Snapshots dated in the future (a clock that ran ahead)
 * are kept and counted by no rule, so they can never push every real snapshot out of the "last N".
 *
 * Delta snapshots (database.delta) restore only on top of their chain: a kept snapshot also keeps
 * every snapshot its restore reads (its reference, that one's reference, … back to the base), as
 * `needed`, so no rule can ever leave a kept snapshot without its base.
 */
import { UserError } from '../errors.js';

export const KEEP_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type KeepRule = (typeof KEEP_RULES)[number];
export type KeepPolicy = Partial<Record<KeepRule, number>>;

export interface KeepReason {
  /**
   * The rule that keeps the snapshot; `newest` is the safety net that never lets the newest go,
   * `verified` the one that never lets the newest verified-good snapshot go, `future` marks a
   * snapshot dated in the future (kept, never counted), `needed` one that a kept delta's restore reads.
   */
  rule: KeepRule | 'newest' | 'verified' | 'future' | 'needed';
  /**
   * The period the snapshot is the newest of (`2026-W13`, `2026-03-29`, …), or `#n` for `last`; the
   * snapshot's own id for newest, verified and future; for `needed`, the id of the kept snapshot that needs it.
   */
  period: string;
  /** Kept as the oldest snapshot because the rule had fewer periods than its count. */
  oldest?: true;
}

/** A delta-mode snapshot's place in its chain (the manifest's `chain`, as far as retention needs it). */
export interface ChainLink {
  base: string;
  /** The snapshot this one applies on top of; null for a base. */
  reference: string | null;
  depth: number;
}

export interface Dated {
  id: string;
  time: Date;
  /** Absent or null: a full snapshot, which restores alone. */
  chain?: ChainLink | null;
  /** Passed `verify` (its last recorded result is good). */
  verified?: boolean;
  /** Dated in the future as seen now (store.ts isFuture). */
  future?: boolean;
}

export interface RetentionResult<T extends Dated> {
  /** Newest first, each with why it is kept. */
  keep: Array<T & { reasons: KeepReason[] }>;
  /** Newest first. */
  remove: T[];
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  /** "+02:00", "-03:30", "+00:00". */
  offset: string;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone,
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        hourCycle: 'h23',
        timeZoneName: 'longOffset',
      });
    } catch (err) {
      throw new UserError(`schedule.timezone: "${timeZone}" is not an IANA timezone name; use one like "Europe/Berlin" or "UTC".`, {
        cause: err,
      });
    }
    formatters.set(timeZone, f);
  }
  return f;
}

/** The wall-clock parts of an instant in `timeZone`. */
export function localParts(time: Date, timeZone: string): LocalParts {
  const parts: Record<string, string> = {};
  for (const p of formatterFor(timeZone).formatToParts(time)) parts[p.type] = p.value;
  // longOffset gives "GMT+02:00", or plain "GMT" for a zero offset.
  const offset = (parts.timeZoneName ?? 'GMT').replace(/^GMT/, '') || '+00:00';
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    offset,
  };
}

/** ISO 8601 week of a calendar date: the week-numbering year and the week (1–53). */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = (date.getUTCDay() + 6) % 7; // Monday = 0
  // The Thursday of this week decides which year the week belongs to.
  const thursday = new Date(date.getTime() + (3 - weekday) * 86_400_000);
  const isoYear = thursday.getUTCFullYear();
  const jan1 = Date.UTC(isoYear, 0, 1);
  return { year: isoYear, week: 1 + Math.floor((thursday.getTime() - jan1) / (7 * 86_400_000)) };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** The period key of `time` for a rule, in `timeZone` (`last` has no periods: every snapshot is its own). */
export function periodOf(rule: Exclude<KeepRule, 'last'>, time: Date, timeZone: string): string {
  const p = localParts(time, timeZone);
  const date = `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}`;
  switch (rule) {
    case 'hourly':
      return `${date}T${pad(p.hour)}${p.offset}`;
    case 'daily':
      return date;
    case 'weekly': {
      const w = isoWeek(p.year, p.month, p.day);
      return `${pad(w.year, 4)}-W${pad(w.week)}`;
    }
    case 'monthly':
      return `${pad(p.year, 4)}-${pad(p.month)}`;
    case 'yearly':
      return pad(p.year, 4);
  }
}

/** True when the policy keeps anything by itself. */
export function hasKeepRule(policy: KeepPolicy): boolean {
  return KEEP_RULES.some((r) => (policy[r] ?? 0) > 0);
}

/**
 * Decides which snapshots a policy keeps and why. Never removes the newest snapshot, the newest
 * verified-good one, one dated in the future, or anything a kept snapshot's chain needs. Throws UserError for a policy that keeps nothing
 * (as restic refuses to forget everything).
 */
export function applyRetention<T extends Dated>(snapshots: readonly T[], policy: KeepPolicy, timeZone: string): RetentionResult<T> {
  if (!hasKeepRule(policy)) {
    throw new UserError('vault.keep keeps nothing: set at least one of last, hourly, daily, weekly, monthly, yearly above 0.');
  }
  formatterFor(timeZone); // validate the zone even for an empty vault
  const all = [...snapshots].sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));
  const sorted = all.filter((s) => !s.future);
  const reasons = new Map<T, KeepReason[]>(all.map((s) => [s, s.future ? [{ rule: 'future', period: s.id }] : []]));
  const why = (s: T): KeepReason[] => reasons.get(s)!;
  for (const rule of KEEP_RULES) {
    let left = policy[rule] ?? 0;
    if (left <= 0) continue;
    if (rule === 'last') {
      sorted.slice(0, left).forEach((snap, i) => why(snap).push({ rule, period: `#${i + 1}` }));
      continue;
    }
    // Periods are contiguous runs in time order; each run is represented by its newest verified-good snapshot, else its newest.
    for (let i = 0; i < sorted.length && left > 0; ) {
      const period = periodOf(rule, sorted[i]!.time, timeZone);
      let end = i;
      while (end < sorted.length && periodOf(rule, sorted[end]!.time, timeZone) === period) end++;
      const group = sorted.slice(i, end);
      why(group.find((s) => s.verified) ?? group[0]!).push({ rule, period });
      left--;
      i = end;
    }
    const oldest = sorted.at(-1);
    if (left > 0 && oldest && !why(oldest).some((r) => r.rule === rule)) {
      why(oldest).push({ rule, period: periodOf(rule, oldest.time, timeZone), oldest: true });
    }
  }
  const newestGood = sorted.find((s) => s.verified);
  if (newestGood && why(newestGood).length === 0) why(newestGood).push({ rule: 'verified', period: newestGood.id });
  const newest = sorted[0];
  if (newest && why(newest).length === 0) why(newest).push({ rule: 'newest', period: newest.id });
  keepChains(all, why);
  const result: RetentionResult<T> = { keep: [], remove: [] };
  for (const snap of all) {
    const r = why(snap);
    if (r.length > 0) result.keep.push({ ...snap, reasons: r });
    else result.remove.push(snap);
  }
  return result;
}

/**
 * The other snapshots `snap`'s restore reads, nearest first: its reference, that one's reference, …
 * back to the base. Where a link is not among `all` (pruned, or its manifest unreadable and so not
 * listed), every snapshot of the same base below that depth, since any of them may be what the
 * chain needs once the link is repaired from another copy. Empty for a full snapshot or a base.
 */
export function chainNeeds<T extends Dated>(snap: T, all: readonly T[]): T[] {
  const byId = new Map(all.map((s) => [s.id, s]));
  const needs: T[] = [];
  const seen = new Set<string>([snap.id]);
  for (let link = snap.chain; link?.reference; ) {
    const ref = byId.get(link.reference);
    if (!ref || seen.has(ref.id)) {
      const { base, depth } = link;
      needs.push(
        ...all
          .filter((s) => !seen.has(s.id) && s.chain?.base === base && s.chain.depth < depth)
          .sort((a, b) => b.chain!.depth - a.chain!.depth),
      );
      break;
    }
    needs.push(ref);
    seen.add(ref.id);
    link = ref.chain;
  }
  return needs;
}

/** For each snapshot that some other snapshot's restore reads: those readers' ids, newest first (`list`). */
export function neededBy<T extends Dated>(all: readonly T[]): Map<string, string[]> {
  const by = new Map<string, string[]>();
  const newestFirst = [...all].sort((a, b) => b.time.getTime() - a.time.getTime() || b.id.localeCompare(a.id));
  for (const s of newestFirst) for (const n of chainNeeds(s, all)) by.set(n.id, [...(by.get(n.id) ?? []), s.id]);
  return by;
}

/**
 * Marks what each kept snapshot's chain needs as kept (`needed` by it). Kept snapshots are walked
 * oldest first and a snapshot already kept is left as it is, so each needed snapshot names the
 * nearest kept snapshot that reads it.
 */
function keepChains<T extends Dated>(all: readonly T[], why: (s: T) => KeepReason[]): void {
  const kept = all.filter((s) => why(s).length > 0).reverse();
  for (const snap of kept) {
    for (const need of chainNeeds(snap, all)) {
      if (why(need).length === 0) why(need).push({ rule: 'needed', period: snap.id });
    }
  }
}

/** A policy in words: "last 6, hourly 24, daily 7, weekly 4, monthly 12". */
export function describePolicy(policy: KeepPolicy): string {
  return KEEP_RULES.filter((r) => (policy[r] ?? 0) > 0)
    .map((r) => `${r} ${policy[r]}`)
    .join(', ');
}

/** One line per reason: "daily 2026-03-29", "last #1", "monthly 2026-01 (oldest)". */
export function describeReason(r: KeepReason): string {
  if (r.rule === 'verified') return 'newest verified-good';
  if (r.rule === 'future') return 'dated in the future (never counted)';
  if (r.rule === 'needed') return `needed by ${r.period}`;
  return `${r.rule} ${r.period}${r.oldest ? ' (oldest)' : ''}`;
}
