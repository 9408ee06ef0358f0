import { describe, expect, it } from 'vitest';
import { BusyError } from '../../src/errors.js';
import { Daemon, type DaemonLogger, type DaemonService } from '../../src/schedule/daemon.js';

interface Line {
  level: string;
  msg: string;
  event?: string;
  [k: string]: unknown;
}

function memoryLogger(): DaemonLogger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: string) => (obj: object, msg: string) => lines.push({ level, msg, ...obj });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Jobs here are plain functions: the daemon's own logic (overlap, abort, services) is what is tested.
describe('Daemon', () => {
  it('skips a trigger while a run is going, and aborts the run on stop', async () => {
    const logger = memoryLogger();
    let sawAbort = false;
    const daemon = new Daemon({
      timezone: 'UTC',
      logger,
      jobs: [
        {
          name: 'slow',
          cron: '0 0 1 1 *',
          run: (signal) =>
            new Promise((_, reject) => {
              signal.addEventListener('abort', () => {
                sawAbort = true;
                reject(new Error('stopped'));
              });
            }),
        },
      ],
    });
    await daemon.start();
    const first = daemon.trigger('slow');
    await sleep(10);
    expect(daemon.status()[0]).toMatchObject({ name: 'slow', running: true, nextRun: '2027-01-01T00:00:00.000Z' });
    const second = await daemon.trigger('slow');
    expect(second).toMatchObject({ outcome: 'skipped', reason: expect.stringMatching(/^slow run 1 still in progress since /) as unknown });
    await daemon.stop('test');
    expect(sawAbort).toBe(true);
    expect(await first).toMatchObject({ outcome: 'aborted', error: 'stopped' });
    expect(daemon.status()[0]!.counts).toEqual({ ok: 0, failed: 0, aborted: 1, skipped: 1 });
    expect(logger.lines.map((l) => l.event)).toEqual([
      'daemon.start',
      'run.start',
      'run.skipped',
      'daemon.stopping',
      'run.abort',
      'daemon.stop',
    ]);
  });

  it('leaves a run that ignores the abort after the grace period', async () => {
    const logger = memoryLogger();
    const daemon = new Daemon({
      timezone: 'UTC',
      logger,
      stopGraceMs: 100,
      jobs: [{ name: 'stubborn', cron: '0 0 1 1 *', run: () => new Promise(() => undefined) }],
    });
    await daemon.start();
    void daemon.trigger('stubborn');
    await sleep(10);
    const t0 = Date.now();
    await daemon.stop('test');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(logger.lines.find((l) => l.event === 'run.abandoned')).toMatchObject({ level: 'error', job: 'stubborn', graceMs: 100 });
  });

  it('logs failures and busy vaults, then keeps going; runs on its cron schedule', async () => {
    const logger = memoryLogger();
    let n = 0;
    const daemon = new Daemon({
      timezone: 'Europe/Berlin',
      logger,
      jobs: [
        {
          name: 'flaky',
          cron: '* * * * * *',
          run: () => {
            n++;
            if (n === 1) throw new Error('boom');
            if (n === 2) return Promise.reject(new BusyError('Another permafrost run (pid 1) holds the lock'));
            return Promise.resolve({ warnings: n === 3 ? ['careful'] : [] });
          },
        },
      ],
    });
    await daemon.start();
    const deadline = Date.now() + 8000;
    while (n < 4 && Date.now() < deadline) await sleep(50);
    await daemon.stop('test');
    const ends = logger.lines.filter((l) => ['run.fail', 'run.skipped', 'run.finish'].includes(l.event ?? ''));
    expect(ends.slice(0, 4).map((l) => [l.event, l.level])).toEqual([
      ['run.fail', 'error'],
      ['run.skipped', 'warn'],
      ['run.finish', 'warn'],
      ['run.finish', 'info'],
    ]);
    expect(ends[0]).toMatchObject({ error: 'boom' });
    expect(daemon.status()[0]!.lastSuccess).toMatchObject({ outcome: 'ok' });
  });

  it('starts services before jobs and stops them after, in reverse order; a failing start stops the others', async () => {
    const logger = memoryLogger();
    const order: string[] = [];
    const svc = (name: string, failStart = false): DaemonService => ({
      name,
      start: () => {
        order.push(`start ${name}`);
        return failStart ? Promise.reject(new Error(`${name} cannot listen`)) : Promise.resolve();
      },
      stop: () => {
        order.push(`stop ${name}`);
        return Promise.resolve();
      },
    });
    const ok = new Daemon({ timezone: 'UTC', logger, jobs: [], services: [svc('a')] });
    ok.addService(svc('b'));
    await ok.start();
    await ok.stop('test');
    expect(order).toEqual(['start a', 'start b', 'stop b', 'stop a']);

    order.length = 0;
    const bad = new Daemon({ timezone: 'UTC', logger, jobs: [], services: [svc('a'), svc('web', true)] });
    await expect(bad.start()).rejects.toThrow('web cannot listen');
    expect(order).toEqual(['start a', 'start web', 'stop a']);
  });
});
