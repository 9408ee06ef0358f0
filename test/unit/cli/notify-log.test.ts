import { describe, expect, it } from 'vitest';
import { cliNotifyLog } from '../../../src/cli/notify-log.js';
import type { Io } from '../../../src/cli/run.js';

function log() {
  const err: string[] = [];
  const io: Io = { out: () => expect.fail('alert problems never go to stdout'), err: (t) => err.push(t), isTTY: false };
  return { notify: cliNotifyLog(io), err };
}

describe('cliNotifyLog (alert delivery as lines on stderr)', () => {
  it('info is not shown; a warning names the attempt and the error', () => {
    const { notify, err } = log();
    notify('info', 'alert sent', { event: 'backup.failed', sent: true });
    notify('warn', 'webhook delivery failed', { attempt: 2, of: 3, error: 'HTTP 502' });
    notify('warn', 'ping delivery failed', { attempt: 1 });
    notify('warn', 'mastodon delivery failed', { error: 'timeout' });
    notify('warn', 'plain', {});
    expect(err).toEqual([
      'warning: webhook delivery failed (attempt 2/3: HTTP 502)',
      'warning: ping delivery failed (attempt 1)',
      'warning: mastodon delivery failed (timeout)',
      'warning: plain',
    ]);
  });

  it('an error (a bug in alerting) is an error line followed by its stack', () => {
    const { notify, err } = log();
    notify('error', 'alerting failed', { error: 'x is undefined', stack: 'TypeError: x\n    at f (a.js:1:1)' });
    notify('error', 'no stack', { stack: 42 });
    expect(err).toEqual(['error: alerting failed (x is undefined)', 'TypeError: x\n    at f (a.js:1:1)', 'error: no stack']);
  });
});
