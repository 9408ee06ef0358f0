import { describe, expect, it } from 'vitest';
import { alsoStoppedBy, runContext } from '../../src/run-context.js';

describe('runContext', () => {
  it('fills what is not given: a signal that never fires, no progress, a log that drops every line', () => {
    const ctx = runContext();
    expect(ctx.signal.aborted).toBe(false);
    expect(ctx.events).toEqual({});
    expect(() => ctx.log('error', 'dropped', {})).not.toThrow();
  });

  it('keeps what is given, as one object', () => {
    const ac = new AbortController();
    const lines: string[] = [];
    const phases: string[] = [];
    const ctx = runContext({ signal: ac.signal, events: { phase: (p) => phases.push(p) }, log: (_l, m) => lines.push(m) });
    ctx.events.phase?.('database');
    ctx.log('warn', 'a delivery failed', {});
    ac.abort();
    expect([ctx.signal.aborted, phases, lines]).toEqual([true, ['database'], ['a delivery failed']]);
  });
});

describe('alsoStoppedBy', () => {
  it('stops on either the run or the extra reason, and leaves the run itself running on the extra one', () => {
    const run = new AbortController();
    const parts = new AbortController();
    const ctx = runContext({ signal: run.signal });
    const inner = alsoStoppedBy(ctx, parts.signal);
    parts.abort();
    expect([inner.signal.aborted, ctx.signal.aborted]).toEqual([true, false]);

    const run2 = new AbortController();
    const inner2 = alsoStoppedBy(runContext({ signal: run2.signal }), new AbortController().signal);
    run2.abort();
    expect(inner2.signal.aborted).toBe(true);
  });

  it('keeps the events and the log of the run', () => {
    const events = { phase: () => undefined };
    const log = () => undefined;
    const inner = alsoStoppedBy(runContext({ events, log }), new AbortController().signal);
    expect(inner.events).toBe(events);
    expect(inner.log).toBe(log);
  });
});
