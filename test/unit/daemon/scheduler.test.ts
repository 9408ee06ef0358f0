import { describe, expect, it } from 'vitest';
import { BusyError } from '../../../src/errors.js';
import { Daemon, type DaemonLogger, type DaemonService } from '../../../src/daemon/scheduler.js';

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
  it('queues a trigger while a run is going (once per job), and on stop drops it and aborts the run', async () => {
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
    const second = daemon.trigger('slow');
    const third = daemon.trigger('slow');
    await daemon.stop('test');
    expect(sawAbort).toBe(true);
    expect(await first).toMatchObject({ outcome: 'aborted', error: 'stopped' });
    // The waiting run never started: the abort of the first did not let it in.
    expect(await second).toEqual({ runId: 2, outcome: 'skipped', reason: 'daemon stopping (test) before its turn came' });
    expect(await third).toEqual(await second);
    expect(daemon.status()[0]!.counts).toEqual({ ok: 0, failed: 0, aborted: 1, skipped: 0 });
    expect(logger.lines.map((l) => l.event)).toEqual([
      'daemon.start',
      'run.start',
      'run.queued',
      'run.coalesced',
      'daemon.stopping',
      'run.dropped',
      'run.abort',
      'daemon.stop',
    ]);
    expect(logger.lines.find((l) => l.event === 'run.queued')).toMatchObject({
      job: 'slow',
      runId: 2,
      reason: expect.stringMatching(/^slow run 1 in progress since /) as unknown,
    });
  });

  it('runs a job whose turn came during another run right after it, in the order their turns came', async () => {
    const logger = memoryLogger();
    const gates: Array<() => void> = [];
    const job = (name: string) => ({
      name,
      cron: '0 0 1 1 *',
      run: () => new Promise((resolve) => gates.push(() => resolve({ name }))),
    });
    const daemon = new Daemon({ timezone: 'UTC', logger, jobs: [job('backup'), job('verify'), job('check')] });
    await daemon.start();
    const backup = daemon.trigger('backup');
    const check = daemon.trigger('check');
    const verify = daemon.trigger('verify');
    const backup2 = daemon.trigger('backup');
    expect(daemon.trigger('check')).toBe(check);
    const starts = () => logger.lines.filter((l) => l.event === 'run.start').map((l) => `${String(l.job)} ${String(l.runId)}`);
    for (let i = 0; i < 4; i++) {
      await sleep(10);
      expect(starts()).toHaveLength(i + 1);
      gates[i]!();
    }
    expect(starts()).toEqual(['backup 1', 'check 2', 'verify 3', 'backup 4']);
    expect(await check).toMatchObject({ runId: 2, outcome: 'ok', result: { name: 'check' } });
    expect(await verify).toMatchObject({ runId: 3, outcome: 'ok' });
    expect((await backup).outcome).toBe('ok');
    expect((await backup2).outcome).toBe('ok');
    await daemon.stop('test');
  });

  it('a short job on a slower schedule still runs beside a long one on every tick (issue 21: the check never ran)', async () => {
    const logger = memoryLogger();
    let checks = 0;
    const daemon = new Daemon({
      timezone: 'UTC',
      logger,
      jobs: [
        // Created first, so its timer fires first when both are due: it always wins the race for the slot.
        { name: 'backup', cron: '* * * * * *', run: () => sleep(1200) },
        { name: 'check', cron: '*/2 * * * * *', run: () => Promise.resolve(++checks) },
      ],
    });
    await daemon.start();
    const deadline = Date.now() + 7000;
    while (checks < 1 && Date.now() < deadline) await sleep(50);
    await daemon.stop('test');
    expect(checks).toBeGreaterThanOrEqual(1);
    expect(logger.lines.filter((l) => l.event === 'run.skipped')).toEqual([]);
  });

  it('stop without abort lets the run in flight finish; a stop after it aborts it', async () => {
    const logger = memoryLogger();
    let finish!: () => void;
    const daemon = new Daemon({
      timezone: 'UTC',
      logger,
      jobs: [{ name: 'job', cron: '0 0 1 1 *', run: () => new Promise<void>((r) => (finish = r)) }],
    });
    await daemon.start();
    const run = daemon.trigger('job');
    await sleep(10);
    let stopped = false;
    const stopping = daemon.stop('reload', { abort: false }).then(() => (stopped = true));
    await sleep(50);
    expect(stopped).toBe(false);
    finish();
    await stopping;
    expect(await run).toMatchObject({ outcome: 'ok' });

    const again = new Daemon({
      timezone: 'UTC',
      logger,
      jobs: [
        {
          name: 'job',
          cron: '0 0 1 1 *',
          run: (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))),
        },
      ],
    });
    await again.start();
    const run2 = again.trigger('job');
    await sleep(10);
    const gentle = again.stop('reload', { abort: false });
    await sleep(20);
    await again.stop('SIGTERM');
    await gentle;
    expect(await run2).toMatchObject({ outcome: 'aborted' });
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
