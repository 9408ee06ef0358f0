import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import { localTime } from '../../../../src/cli/daemon-log.js';
import type { Config } from '../../../../src/config/schema.js';
import type { DaemonLogger } from '../../../../src/daemon/scheduler.js';

const ops = vi.hoisted(() => ({ runUntilStopped: vi.fn() }));
vi.mock('../../../../src/cli/daemon-run.js', () => ops);

const cfg = tempConfig({ schedule: { timezone: 'UTC' } });
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));

type Call = [Config, DaemonLogger, number, (next: Config) => void];

let exit: MockInstance<typeof process.exit>;
beforeEach(() => {
  ops.runUntilStopped.mockReset();
  ops.runUntilStopped.mockResolvedValue(undefined);
  // The action ends with a 1 s unref'd process.exit for runs abandoned after the grace period.
  vi.useFakeTimers({ toFake: ['setTimeout'] });
  exit = vi.spyOn(process, 'exit').mockImplementation(() => undefined as never);
});
afterEach(() => {
  vi.useRealTimers();
  exit.mockRestore();
});

describe('permafrost daemon', () => {
  it('runs until stopped with the config, --stop-grace in ms, JSON log lines to stdout (not a TTY), then exits after 1 s', async () => {
    const outToErr = vi.fn();
    const r = await runInProcess(['--config', cfg.file, 'daemon', '--stop-grace', '5'], { outToErrWhenClosed: outToErr });
    expect(r.code).toBe(0);
    const [config, logger, grace] = ops.runUntilStopped.mock.calls[0] as Call;
    expect(config.configPath).toBe(cfg.file);
    expect(grace).toBe(5000);
    expect(outToErr).toHaveBeenCalledOnce();
    logger.info({ event: 'run.start', job: 'backup' }, 'backup started');
    expect(JSON.parse(r.out.at(-1)!)).toMatchObject({ level: 'info', event: 'run.start', job: 'backup', msg: 'backup started' });
    expect(exit).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1000);
    expect(exit).toHaveBeenCalledOnce();
  });

  it('default grace 30 s; --log-format text: readable lines in the timezone of the config, and of a reloaded one', async () => {
    const lines: string[] = [];
    const capture = await runInProcess(['--config', cfg.file, 'daemon', '--log-format', 'text'], { out: (l) => lines.push(l) });
    expect(capture.code).toBe(0);
    const [config, textLog, grace, reload] = ops.runUntilStopped.mock.calls[0] as Call;
    expect(grace).toBe(30_000);
    textLog.warn({ event: 'x' }, 'first');
    expect(lines.at(-1)!.startsWith(localTime(new Date(), 'UTC').slice(0, 13))).toBe(true);
    expect(lines.at(-1)).toContain('warning: ');
    reload({ ...config, schedule: { ...config.schedule, timezone: 'Pacific/Kiritimati' } });
    textLog.info({ event: 'x' }, 'second');
    expect(lines.at(-1)!.startsWith(localTime(new Date(), 'Pacific/Kiritimati').slice(0, 13))).toBe(true);
  });

  it.each([
    [['--stop-grace', 'soon'], 'permafrost: --stop-grace: "soon" is not a number of seconds; pass e.g. --stop-grace 30.'],
    [['--stop-grace', '-1'], 'permafrost: --stop-grace: "-1" is not a number of seconds; pass e.g. --stop-grace 30.'],
    [['--log-format', 'xml'], 'permafrost: --log-format: "xml" is neither text nor json; pass --log-format text or --log-format json.'],
  ])('%j: exit 2 with its sentence, the daemon never starts', async (args, sentence) => {
    const r = await runInProcess(['--config', cfg.file, 'daemon', ...args]);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([sentence]);
    expect(ops.runUntilStopped).not.toHaveBeenCalled();
  });
});
