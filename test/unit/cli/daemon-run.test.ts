import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runUntilStopped } from '../../../src/cli/daemon-run.js';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import type { DaemonLogger } from '../../../src/daemon/scheduler.js';
import { waitFor } from '../../harness/wait.js';

// The real daemon of a backup device's config (a check job only) over a temp vault; the signals
// are delivered by calling the handlers runUntilStopped installs, as the process would on a signal.
const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-daemon-run-'));
const vault = path.join(dir, 'vault');
mkdirSync(vault);
const file = path.join(dir, 'device.yaml');
const write = (sections: Record<string, unknown>): void => writeFileSync(file, stringify({ vault: { dir: vault }, ...sections }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function logger(): DaemonLogger & { events: Array<Record<string, unknown>>; has(e: string, outcome?: string): boolean } {
  const events: Array<Record<string, unknown>> = [];
  const at = (level: string) => (fields: object, msg: string) => events.push({ level, msg, ...fields });
  return {
    events,
    has: (e, outcome) => events.some((x) => x.event === e && (outcome === undefined || x.outcome === outcome)),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

/** The handler for `sig` that was added since `before` was taken. */
function handlerAdded(sig: NodeJS.Signals, before: readonly unknown[]): (sig: NodeJS.Signals) => void {
  const added = process.listeners(sig).filter((l) => !before.includes(l));
  expect(added, `one new ${sig} handler`).toHaveLength(1);
  return added[0] as (sig: NodeJS.Signals) => void;
}

describe('runUntilStopped', () => {
  it('runs the daemon until SIGTERM, then stops it and removes its signal handlers', async () => {
    write({ schedule: { timezone: 'UTC' } });
    const log = logger();
    const before = { TERM: process.listeners('SIGTERM'), INT: process.listeners('SIGINT'), HUP: process.listeners('SIGHUP') };
    const done = runUntilStopped(loadConfig(file), log, 1000, () => undefined);
    await waitFor('the daemon to start', () => log.has('daemon.start'), 10_000, 20);
    handlerAdded('SIGTERM', before.TERM)('SIGTERM');
    await done;
    expect(log.has('daemon.stop')).toBe(true);
    expect([process.listeners('SIGTERM'), process.listeners('SIGINT'), process.listeners('SIGHUP')]).toEqual([
      before.TERM,
      before.INT,
      before.HUP,
    ]);
  });

  it('SIGHUP: a config that does not load is logged and the running one kept; a valid one takes over (onConfig)', async () => {
    write({ schedule: { timezone: 'UTC' } });
    const log = logger();
    const seen: Config[] = [];
    const before = { TERM: process.listeners('SIGTERM'), HUP: process.listeners('SIGHUP') };
    const done = runUntilStopped(loadConfig(file), log, 1000, (c) => seen.push(c));
    await waitFor('the daemon to start', () => log.has('daemon.start'), 10_000, 20);
    const hup = handlerAdded('SIGHUP', before.HUP);

    writeFileSync(file, 'vault: { dir: relative }\n');
    hup('SIGHUP');
    await waitFor('the refusal', () => log.has('config.reload', 'refused'), 10_000, 20);
    const refused = log.events.find((e) => e.outcome === 'refused')!;
    expect(refused.level).toBe('error');
    expect(refused.msg).toMatch(
      new RegExp(`^SIGHUP: ${file} not reloaded, the daemon goes on with the config it has: Config .* has 1 problem.*vault\\.dir`),
    );
    expect(seen).toEqual([]);

    write({ schedule: { timezone: 'Asia/Tokyo', check: '*/5 * * * *' } });
    hup('SIGHUP');
    await waitFor(
      'the new config to take over',
      () => seen.length === 1 && log.events.filter((e) => e.event === 'daemon.start').length === 2,
      10_000,
      20,
    );
    expect(log.has('config.reload', 'reloading')).toBe(true);
    expect(seen[0]!.schedule).toMatchObject({ timezone: 'Asia/Tokyo', check: '*/5 * * * *' });

    handlerAdded('SIGTERM', before.TERM)('SIGTERM');
    await done;
    expect(process.listeners('SIGHUP')).toEqual(before.HUP);
  });
});
