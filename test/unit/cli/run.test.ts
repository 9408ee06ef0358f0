import { describe, expect, it } from 'vitest';
import { reportError, withRunContext, type Io } from '../../../src/cli/run.js';
import { IntegrityError, PermafrostError, UserError } from '../../../src/errors.js';

function capture(): { io: Io; err: string[] } {
  const err: string[] = [];
  return { io: { out: () => undefined, err: (t) => err.push(t), isTTY: false }, err };
}

describe('reportError (one sentence and the exit code)', () => {
  it('a PermafrostError: "permafrost: " and its sentence, its details indented, its documented code', () => {
    const { io, err } = capture();
    expect(
      reportError(new UserError('Config x has 2 problems; fix each key listed below.', { details: ['vault.dir: required', 'a: b'] }), io),
    ).toBe(2);
    expect(err).toEqual(['permafrost: Config x has 2 problems; fix each key listed below.', '  vault.dir: required', '  a: b']);
    expect(reportError(new IntegrityError('damaged'), capture().io)).toBe(3);
    expect(reportError(new PermafrostError('busy', 'locked'), capture().io)).toBe(4);
    expect(reportError(new PermafrostError('tool', 'pg_dump failed'), capture().io)).toBe(1);
  });

  it('anything else is a bug: exit 70, says to report it, with the stack; a thrown non-Error too', () => {
    let c = capture();
    const bug = new TypeError('cannot read x of undefined');
    expect(reportError(bug, c.io)).toBe(70);
    expect(c.err[0]).toBe(
      'permafrost: internal error: cannot read x of undefined. This is a bug; please report it to the permafrost maintainers with the lines below.',
    );
    expect(c.err[1]).toBe(bug.stack);
    c = capture();
    expect(reportError('a string', c.io)).toBe(70);
    expect(c.err[0]).toContain('internal error: a string.');
  });
});

describe('withRunContext (the stop signal, events and log of one job)', () => {
  it('SIGTERM or SIGINT during the job aborts its signal; the handlers are gone afterwards', async () => {
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const seen = await withRunContext(capture().io, {}, (ctx) => {
        expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual([before[0]! + 1, before[1]! + 1]);
        expect(ctx.signal.aborted).toBe(false);
        // Ours is the handler added last (the worker may have its own): call it as the signal would.
        process.listeners(sig).at(-1)!(sig);
        return Promise.resolve(ctx.signal.aborted);
      });
      expect(seen, sig).toBe(true);
    }
    expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual(before);
  });

  it('hands the events through, logs alert trouble to stderr, and removes its handlers when the job throws', async () => {
    const c = capture();
    const phases: string[] = [];
    const before = process.listenerCount('SIGTERM');
    await expect(
      withRunContext(c.io, { phase: (p) => phases.push(p) }, (ctx) => {
        ctx.events.phase?.('database');
        ctx.log('warn', 'webhook delivery failed', { attempt: 1, of: 3 });
        return Promise.reject(new UserError('stop'));
      }),
    ).rejects.toThrow('stop');
    expect(phases).toEqual(['database']);
    expect(c.err).toEqual(['warning: webhook delivery failed (attempt 1/3)']);
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});
