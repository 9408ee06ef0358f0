import { describe, expect, it } from 'vitest';
import { UserError } from '../../../src/errors.js';
import {
  applyRetention,
  chainNeeds,
  describeReason,
  isoWeek,
  periodOf,
  type ChainLink,
  type Dated,
  type KeepPolicy,
} from '../../../src/vault/retention.js';

const snap = (iso: string) => ({ id: iso, time: new Date(iso) });

interface Case {
  name: string;
  tz: string;
  policy: KeepPolicy;
  times: string[];
  keep: string[];
}

// Each case: snapshot instants (UTC) → the instants kept. Comments give the local wall clock.
const cases: Case[] = [
  {
    name: 'last keeps the n newest',
    tz: 'UTC',
    policy: { last: 3 },
    times: ['2026-01-01T00:40:00Z', '2026-01-01T01:40:00Z', '2026-01-01T02:40:00Z', '2026-01-01T03:40:00Z'],
    keep: ['2026-01-01T03:40:00Z', '2026-01-01T02:40:00Z', '2026-01-01T01:40:00Z'],
  },
  {
    name: 'daily counts only days that have a snapshot, newest of each day',
    tz: 'UTC',
    policy: { daily: 3 },
    times: ['2026-01-01T10:00:00Z', '2026-01-01T20:00:00Z', '2026-01-03T05:00:00Z', '2026-01-07T12:00:00Z', '2026-01-07T13:00:00Z'],
    keep: ['2026-01-07T13:00:00Z', '2026-01-03T05:00:00Z', '2026-01-01T20:00:00Z'],
  },
  {
    name: 'a rule with fewer periods than its count also keeps the oldest snapshot (restic ≥ 0.17)',
    tz: 'UTC',
    policy: { daily: 4 },
    times: ['2026-01-01T10:00:00Z', '2026-01-01T20:00:00Z', '2026-01-03T05:00:00Z', '2026-01-07T12:00:00Z', '2026-01-07T13:00:00Z'],
    keep: ['2026-01-07T13:00:00Z', '2026-01-03T05:00:00Z', '2026-01-01T20:00:00Z', '2026-01-01T10:00:00Z'],
  },
  {
    name: 'weekly uses ISO weeks across the new year (2026-W01 starts Mon 2025-12-29)',
    tz: 'UTC',
    policy: { weekly: 3 },
    times: [
      '2025-12-28T12:00:00Z', // Sun, 2025-W52
      '2025-12-29T12:00:00Z', // Mon, 2026-W01
      '2026-01-04T23:00:00Z', // Sun, 2026-W01
      '2026-01-05T00:30:00Z', // Mon, 2026-W02
    ],
    keep: ['2026-01-05T00:30:00Z', '2026-01-04T23:00:00Z', '2025-12-28T12:00:00Z'],
  },
  {
    name: 'weekly in Europe/Berlin: Sunday 23:30 UTC is already Monday of the next week',
    tz: 'Europe/Berlin',
    policy: { weekly: 2 },
    times: [
      '2026-01-11T20:00:00Z', // Sun 21:00, 2026-W02
      '2026-01-11T23:30:00Z', // Mon 00:30, 2026-W03
      '2026-01-12T08:00:00Z', // Mon 09:00, 2026-W03
    ],
    keep: ['2026-01-12T08:00:00Z', '2026-01-11T20:00:00Z'],
  },
  {
    name: 'monthly boundary in Europe/Berlin: 31 Jan 23:30 UTC is 1 Feb local',
    tz: 'Europe/Berlin',
    policy: { monthly: 2 },
    times: ['2026-01-31T22:30:00Z', '2026-01-31T23:30:00Z', '2026-02-15T12:00:00Z'],
    keep: ['2026-02-15T12:00:00Z', '2026-01-31T22:30:00Z'],
  },
  {
    name: 'the same monthly boundary in UTC keeps the other January snapshot',
    tz: 'UTC',
    policy: { monthly: 2 },
    times: ['2026-01-31T22:30:00Z', '2026-01-31T23:30:00Z', '2026-02-15T12:00:00Z'],
    keep: ['2026-02-15T12:00:00Z', '2026-01-31T23:30:00Z'],
  },
  {
    name: 'DST starts (Europe/Berlin 2026-03-29): the 23-hour local day is one daily period',
    tz: 'Europe/Berlin',
    policy: { daily: 3 },
    times: [
      '2026-03-28T22:40:00Z', // 03-28 23:40 CET
      '2026-03-28T23:10:00Z', // 03-29 00:10 CET
      '2026-03-29T21:50:00Z', // 03-29 23:50 CEST
      '2026-03-29T22:10:00Z', // 03-30 00:10 CEST
    ],
    keep: ['2026-03-29T22:10:00Z', '2026-03-29T21:50:00Z', '2026-03-28T22:40:00Z'],
  },
  {
    name: 'DST starts: 01:40 CET and 03:40 CEST are two hours (02:xx does not exist)',
    tz: 'Europe/Berlin',
    policy: { hourly: 2 },
    times: ['2026-03-29T00:10:00Z', '2026-03-29T00:40:00Z', '2026-03-29T01:40:00Z'],
    keep: ['2026-03-29T01:40:00Z', '2026-03-29T00:40:00Z'],
  },
  {
    name: 'DST ends (Europe/Berlin 2026-10-25): the repeated 02:xx hour counts twice, once per offset',
    tz: 'Europe/Berlin',
    policy: { hourly: 2 },
    times: [
      '2026-10-25T00:10:00Z', // 02:10 CEST
      '2026-10-25T00:40:00Z', // 02:40 CEST
      '2026-10-25T01:10:00Z', // 02:10 CET
      '2026-10-25T01:40:00Z', // 02:40 CET
    ],
    keep: ['2026-10-25T01:40:00Z', '2026-10-25T00:40:00Z'],
  },
  {
    name: 'DST ends: the 25-hour local day is one daily period',
    tz: 'Europe/Berlin',
    policy: { daily: 2 },
    times: [
      '2026-10-24T21:30:00Z', // 10-24 23:30 CEST
      '2026-10-24T22:30:00Z', // 10-25 00:30 CEST
      '2026-10-25T22:30:00Z', // 10-25 23:30 CET
    ],
    keep: ['2026-10-25T22:30:00Z', '2026-10-24T21:30:00Z'],
  },
  {
    name: 'GFS: last, hourly and daily together keep the union',
    tz: 'UTC',
    policy: { last: 2, hourly: 5, daily: 3 },
    times: Array.from({ length: 72 }, (_, h) => new Date(Date.UTC(2026, 10, 1, h, 40)).toISOString().replace('.000', '')),
    keep: [
      '2026-11-03T23:40:00Z',
      '2026-11-03T22:40:00Z',
      '2026-11-03T21:40:00Z',
      '2026-11-03T20:40:00Z',
      '2026-11-03T19:40:00Z',
      '2026-11-02T23:40:00Z',
      '2026-11-01T23:40:00Z',
    ],
  },
  {
    name: 'yearly across the new year in America/New_York (1 Jan 03:00 UTC is still 31 Dec)',
    tz: 'America/New_York',
    policy: { yearly: 2 },
    times: ['2025-06-01T12:00:00Z', '2026-01-01T03:00:00Z', '2026-01-01T06:00:00Z'],
    keep: ['2026-01-01T06:00:00Z', '2026-01-01T03:00:00Z'],
  },
];

describe('applyRetention', () => {
  it.each(cases)('$name', ({ tz, policy, times, keep }) => {
    // Input order must not matter.
    const shuffled = [...times].reverse().map(snap);
    const result = applyRetention(shuffled, policy, tz);
    expect(result.keep.map((s) => s.id)).toEqual(keep);
    expect(result.remove.map((s) => s.id).sort()).toEqual(times.filter((t) => !keep.includes(t)).sort());
  });

  it('records why each snapshot is kept', () => {
    const times = ['2026-03-28T22:40:00Z', '2026-03-29T00:40:00Z', '2026-03-29T01:40:00Z'];
    const result = applyRetention(times.map(snap), { last: 1, hourly: 2, daily: 5 }, 'Europe/Berlin');
    expect(result.keep.map((s) => [s.id, s.reasons])).toEqual([
      [
        '2026-03-29T01:40:00Z',
        [
          { rule: 'last', period: '#1' },
          { rule: 'hourly', period: '2026-03-29T03+02:00' },
          { rule: 'daily', period: '2026-03-29' },
        ],
      ],
      ['2026-03-29T00:40:00Z', [{ rule: 'hourly', period: '2026-03-29T01+01:00' }]],
      [
        '2026-03-28T22:40:00Z',
        [
          { rule: 'daily', period: '2026-03-28' },
          // daily wanted 5 days and found 2: the oldest is kept as well (it already is, so no extra entry).
        ],
      ],
    ]);
    expect(result.remove).toEqual([]);
  });

  it('marks a snapshot kept only because a rule ran short as the oldest', () => {
    const result = applyRetention(['2026-05-01T10:00:00Z', '2026-05-01T11:00:00Z'].map(snap), { daily: 7 }, 'UTC');
    expect(result.keep.map((s) => [s.id, s.reasons])).toEqual([
      ['2026-05-01T11:00:00Z', [{ rule: 'daily', period: '2026-05-01' }]],
      ['2026-05-01T10:00:00Z', [{ rule: 'daily', period: '2026-05-01', oldest: true }]],
    ]);
  });

  it('always keeps the newest snapshot', () => {
    for (const policy of [{ last: 1 }, { monthly: 1 }, { yearly: 1 }, { hourly: 1, last: 0 }] as KeepPolicy[]) {
      const result = applyRetention(['2024-01-01T00:00:00Z', '2026-11-26T07:40:00Z', '2025-01-01T00:00:00Z'].map(snap), policy, 'UTC');
      expect(result.keep[0]!.id).toBe('2026-11-26T07:40:00Z');
      expect(result.remove.map((s) => s.id)).not.toContain('2026-11-26T07:40:00Z');
    }
  });

  it('handles an empty vault', () => {
    expect(applyRetention([], { last: 3 }, 'UTC')).toEqual({ keep: [], remove: [] });
  });

  it('refuses a policy that keeps nothing, and an unknown timezone', () => {
    expect(() => applyRetention([snap('2026-01-01T00:00:00Z')], {}, 'UTC')).toThrow(UserError);
    expect(() => applyRetention([snap('2026-01-01T00:00:00Z')], { last: 0, daily: 0 }, 'UTC')).toThrow(/keeps nothing/);
    expect(() => applyRetention([], { last: 1 }, 'Mars/Olympus_Mons')).toThrow(/schedule.timezone/);
  });
});

describe('periods', () => {
  it.each([
    [2026, 1, 1, 2026, 1], // Thursday
    [2025, 12, 29, 2026, 1], // Monday of 2026-W01
    [2025, 12, 28, 2025, 52],
    [2024, 12, 30, 2025, 1],
    [2027, 1, 1, 2026, 53], // 2026 has 53 ISO weeks
    [2027, 1, 4, 2027, 1],
    [2021, 1, 3, 2020, 53],
  ])('isoWeek(%i-%i-%i) = %i-W%i', (y, m, d, wy, w) => {
    expect(isoWeek(y, m, d)).toEqual({ year: wy, week: w });
  });

  it('keys hours with their UTC offset, including half-hour zones', () => {
    expect(periodOf('hourly', new Date('2026-11-26T07:40:00Z'), 'UTC')).toBe('2026-11-26T07+00:00');
    expect(periodOf('hourly', new Date('2026-11-26T07:40:00Z'), 'Asia/Kolkata')).toBe('2026-11-26T13+05:30');
    expect(periodOf('hourly', new Date('2026-11-26T07:20:00Z'), 'Asia/Kolkata')).toBe('2026-11-26T12+05:30');
    expect(periodOf('weekly', new Date('2026-11-26T07:40:00Z'), 'UTC')).toBe('2026-W48');
    expect(periodOf('monthly', new Date('2026-11-26T07:40:00Z'), 'Pacific/Kiritimati')).toBe('2026-11');
  });
});

describe('applyRetention with verify results and future-dated snapshots', () => {
  const at = (iso: string, flags: { verified?: boolean; future?: boolean } = {}) => ({ ...snap(iso), ...flags });
  const cases: Array<{ name: string; policy: KeepPolicy; snaps: ReturnType<typeof at>[]; keep: string[] }> = [
    {
      name: 'the newest verified-good snapshot is kept although the policy would drop it',
      policy: { last: 2 },
      snaps: [at('2026-05-01T10:00:00Z', { verified: true }), at('2026-05-02T10:00:00Z'), at('2026-05-03T10:00:00Z')],
      keep: ['2026-05-03T10:00:00Z', '2026-05-02T10:00:00Z', '2026-05-01T10:00:00Z'],
    },
    {
      name: 'only the newest verified-good one is kept that way, older verified ones follow the policy',
      policy: { last: 1 },
      snaps: [at('2026-05-01T10:00:00Z', { verified: true }), at('2026-05-02T10:00:00Z', { verified: true }), at('2026-05-03T10:00:00Z')],
      keep: ['2026-05-03T10:00:00Z', '2026-05-02T10:00:00Z'],
    },
    {
      name: 'within a day the verified-good snapshot stands for the day, not the newer unverified one',
      policy: { daily: 2 },
      snaps: [
        at('2026-05-01T08:00:00Z'),
        at('2026-05-02T08:00:00Z', { verified: true }),
        at('2026-05-02T12:00:00Z'),
        at('2026-05-02T20:00:00Z'),
        at('2026-05-03T08:00:00Z'),
      ],
      keep: ['2026-05-03T08:00:00Z', '2026-05-02T08:00:00Z'],
    },
    {
      name: 'a failed verify is no better than none: the newest of the period stands for it',
      policy: { daily: 1 },
      snaps: [at('2026-05-02T08:00:00Z', { verified: false }), at('2026-05-02T12:00:00Z')],
      keep: ['2026-05-02T12:00:00Z'],
    },
    {
      name: 'future-dated snapshots are kept but never counted as the last N',
      policy: { last: 2 },
      snaps: [
        at('2099-01-01T00:00:00Z', { future: true }),
        at('2099-01-02T00:00:00Z', { future: true }),
        at('2026-05-01T10:00:00Z'),
        at('2026-05-02T10:00:00Z'),
        at('2026-05-03T10:00:00Z'),
      ],
      keep: ['2099-01-02T00:00:00Z', '2099-01-01T00:00:00Z', '2026-05-03T10:00:00Z', '2026-05-02T10:00:00Z'],
    },
    {
      name: 'future-dated snapshots do not fill the daily periods either, and the newest real one is the safety net',
      policy: { monthly: 1 },
      snaps: [at('2099-01-01T00:00:00Z', { future: true }), at('2026-04-01T10:00:00Z'), at('2026-05-03T10:00:00Z')],
      keep: ['2099-01-01T00:00:00Z', '2026-05-03T10:00:00Z'],
    },
  ];
  it.each(cases)('$name', ({ policy, snaps, keep }) => {
    const result = applyRetention([...snaps].reverse(), policy, 'UTC');
    expect(result.keep.map((s) => s.id)).toEqual(keep);
    expect(result.remove.map((s) => s.id).sort()).toEqual(
      snaps
        .map((s) => s.id)
        .filter((id) => !keep.includes(id))
        .sort(),
    );
  });

  it('says why: the verified-good and the future-dated keeps are marked', () => {
    const result = applyRetention(
      [at('2099-01-01T00:00:00Z', { future: true }), at('2026-05-01T10:00:00Z', { verified: true }), at('2026-05-02T10:00:00Z')],
      { last: 1 },
      'UTC',
    );
    expect(result.keep.map((s) => [s.id, s.reasons.map((r) => r.rule)])).toEqual([
      ['2099-01-01T00:00:00Z', ['future']],
      ['2026-05-02T10:00:00Z', ['last']],
      ['2026-05-01T10:00:00Z', ['verified']],
    ]);
  });
});

describe('applyRetention with delta chains', () => {
  /** Hourly snapshots from `start`: a base every `baseEvery` (and at i = 0), else a delta on the one before. */
  function chainRun(start: string, count: number, baseEvery: number): Dated[] {
    const out: Dated[] = [];
    for (let i = 0; i < count; i++) {
      const id = new Date(Date.parse(start) + i * 3_600_000).toISOString().replace('.000', '');
      const prev = out.at(-1);
      const chain: ChainLink =
        i % baseEvery === 0 || !prev?.chain
          ? { base: id, reference: null, depth: 0 }
          : { base: prev.chain.base, reference: prev.id, depth: prev.chain.depth + 1 };
      out.push({ id, time: new Date(id), chain });
    }
    return out;
  }
  const closed = (keep: readonly Dated[], all: readonly Dated[]): string[] =>
    keep.flatMap((k) =>
      chainNeeds(k, all)
        .filter((n) => !keep.some((x) => x.id === n.id))
        .map((n) => `${k.id} needs ${n.id}`),
    );

  it('keeps the chain of every kept delta back to its base, each needed one naming the nearest kept snapshot that reads it', () => {
    // 2026-05-01T00 base, then deltas 01..05 (depth 1..5).
    const snaps = chainRun('2026-05-01T00:00:00Z', 6, 24);
    const result = applyRetention(snaps, { last: 1 }, 'UTC');
    expect(result.keep.map((s) => [s.id, s.reasons])).toEqual([
      ['2026-05-01T05:00:00Z', [{ rule: 'last', period: '#1' }]],
      ['2026-05-01T04:00:00Z', [{ rule: 'needed', period: '2026-05-01T05:00:00Z' }]],
      ['2026-05-01T03:00:00Z', [{ rule: 'needed', period: '2026-05-01T05:00:00Z' }]],
      ['2026-05-01T02:00:00Z', [{ rule: 'needed', period: '2026-05-01T05:00:00Z' }]],
      ['2026-05-01T01:00:00Z', [{ rule: 'needed', period: '2026-05-01T05:00:00Z' }]],
      ['2026-05-01T00:00:00Z', [{ rule: 'needed', period: '2026-05-01T05:00:00Z' }]],
    ]);
    expect(result.remove).toEqual([]);
    expect(describeReason(result.keep[1]!.reasons[0]!)).toBe('needed by 2026-05-01T05:00:00Z');
  });

  it('a snapshot kept by a rule keeps its own chain; what lies between two kept snapshots is needed by the newer one', () => {
    const snaps = chainRun('2026-05-01T00:00:00Z', 6, 24);
    // 02 is verified-good (kept by that rule), 05 is the last.
    snaps[2]!.verified = true;
    const result = applyRetention(snaps, { last: 1 }, 'UTC');
    expect(result.keep.map((s) => [s.id.slice(11, 13), s.reasons.map(describeReason)])).toEqual([
      ['05', ['last #1']],
      ['04', ['needed by 2026-05-01T05:00:00Z']],
      ['03', ['needed by 2026-05-01T05:00:00Z']],
      ['02', ['newest verified-good']],
      ['01', ['needed by 2026-05-01T02:00:00Z']],
      ['00', ['needed by 2026-05-01T02:00:00Z']],
    ]);
  });

  it('a chain whose newer snapshots are all pruned goes entirely, a new base ends what the old chain needs', () => {
    // Two chains: base at 00 (deltas 01–03), base at 04 (deltas 05–07).
    const snaps = chainRun('2026-05-01T00:00:00Z', 8, 4);
    const result = applyRetention(snaps, { last: 2 }, 'UTC');
    expect(result.keep.map((s) => s.id.slice(11, 13))).toEqual(['07', '06', '05', '04']);
    expect(result.remove.map((s) => s.id.slice(11, 13))).toEqual(['03', '02', '01', '00']);
  });

  it('a full snapshot (no chain) and a base need nothing', () => {
    const snaps = [...chainRun('2026-05-01T00:00:00Z', 2, 24), { id: '2026-05-01T02:00:00Z', time: new Date('2026-05-01T02:00:00Z') }];
    expect(chainNeeds(snaps[2]!, snaps)).toEqual([]);
    expect(chainNeeds(snaps[0]!, snaps)).toEqual([]);
    expect(applyRetention(snaps, { last: 1 }, 'UTC').remove.map((s) => s.id)).toEqual(['2026-05-01T01:00:00Z', '2026-05-01T00:00:00Z']);
  });

  it('where a link is not listed (its manifest unreadable), everything of that base below it is kept', () => {
    // 00 base, 01–04 deltas; 02 is not in the list.
    const snaps = chainRun('2026-05-01T00:00:00Z', 5, 24).filter((s) => !s.id.includes('T02'));
    const result = applyRetention(snaps, { last: 1 }, 'UTC');
    expect(result.keep.map((s) => [s.id.slice(11, 13), s.reasons.map(describeReason)])).toEqual([
      ['04', ['last #1']],
      ['03', ['needed by 2026-05-01T04:00:00Z']],
      ['01', ['needed by 2026-05-01T04:00:00Z']],
      ['00', ['needed by 2026-05-01T04:00:00Z']],
    ]);
  });

  it('a hostile reference loop ends', () => {
    const a: Dated = {
      id: '2026-05-01T00:00:00Z',
      time: new Date('2026-05-01T00:00:00Z'),
      chain: { base: 'x', reference: '2026-05-01T01:00:00Z', depth: 2 },
    };
    const b: Dated = {
      id: '2026-05-01T01:00:00Z',
      time: new Date('2026-05-01T01:00:00Z'),
      chain: { base: 'x', reference: a.id, depth: 1 },
    };
    expect(chainNeeds(b, [a, b]).map((s) => s.id)).toEqual([a.id]);
    expect(applyRetention([a, b], { last: 1 }, 'UTC').remove).toEqual([]);
  });

  it.each([
    { last: 2, daily: 3 },
    { hourly: 5 },
    { last: 1, weekly: 2 },
    { daily: 7, monthly: 2 },
    { last: 3, hourly: 24, daily: 7, weekly: 4 },
  ] as KeepPolicy[])('GFS %o over 20 days of hourly deltas never leaves a kept snapshot without its chain', (policy) => {
    for (const baseEvery of [1, 5, 24, 25]) {
      const snaps = chainRun('2026-05-01T00:17:00Z', 20 * 24, baseEvery);
      // Some verified, to move what stands for a period.
      for (let i = 7; i < snaps.length; i += 31) snaps[i]!.verified = true;
      const result = applyRetention(snaps, policy, 'Europe/Berlin');
      expect(closed(result.keep, snaps)).toEqual([]);
      // Only what some kept snapshot reads is kept as needed.
      for (const k of result.keep.filter((s) => s.reasons.some((r) => r.rule === 'needed'))) {
        const by = result.keep.find((s) => s.id === k.reasons[0]!.period)!;
        expect(chainNeeds(by, snaps).map((s) => s.id)).toContain(k.id);
      }
    }
  });
});
