import { describe, expect, it } from 'vitest';
import { chooseLogFormat, textLogger } from '../../../src/cli/daemon-log.js';
import { UserError } from '../../../src/errors.js';

describe('daemon log format', () => {
  it.each([
    [undefined, true, 'text'],
    [undefined, false, 'json'],
    ['json', true, 'json'],
    ['text', false, 'text'],
  ] as const)('--log-format %s, stdout a TTY: %s → %s', (flag, tty, format) => expect(chooseLogFormat(flag, tty)).toBe(format));

  it('refuses another format, saying which exist', () => {
    expect(() => chooseLogFormat('yaml', true)).toThrow(UserError);
    expect(() => chooseLogFormat('yaml', true)).toThrow(
      '--log-format: "yaml" is neither text nor json; pass --log-format text or --log-format json.',
    );
  });
});

describe('textLogger', () => {
  const lines: string[] = [];
  // 07:40 in Berlin, in winter.
  const log = textLogger(
    (l) => lines.push(l),
    'Europe/Berlin',
    () => new Date('2026-12-06T06:40:00Z'),
  );

  it('writes one readable line per event, in the schedule timezone', () => {
    lines.length = 0;
    log.info({ event: 'service.start', service: 'web', url: 'http://127.0.0.1:9580/' }, 'service web started: http://127.0.0.1:9580/');
    log.info(
      {
        event: 'daemon.start',
        timezone: 'Europe/Berlin',
        jobs: [{ name: 'backup', cron: '40 * * * *', nextRun: '2026-12-06T06:40:00.000Z' }],
      },
      'daemon started',
    );
    log.info({ event: 'run.start', job: 'backup', runId: 1 }, 'backup run started');
    log.info(
      {
        event: 'run.finish',
        job: 'backup',
        durationMs: 8200,
        result: { snapshot: '2026-12-06T06-40-00Z', bytes: 12.1 * 1024 * 1024, warnings: [] },
      },
      'backup run finished',
    );
    log.warn(
      { event: 'run.finish', job: 'backup', durationMs: 900, result: { snapshot: 'S', bytes: 10, warnings: ['redis part failed'] } },
      'backup run finished',
    );
    log.info({ event: 'run.finish', job: 'check', durationMs: 1500, result: { checked: 3 } }, 'check run finished');
    log.error({ event: 'run.fail', job: 'verify', error: 'Snapshot S failed verification', details: ['see above'] }, 'verify run failed');
    log.info(
      { event: 'run.queued', job: 'check', runId: 2, reason: 'backup run 1 in progress' },
      'check run 2 waits: backup run 1 in progress',
    );
    log.info({ event: 'alert.sent', alert: 'backup.failed', channel: 'webhook' }, 'alert backup.failed sent to webhook');
    log.warn({ event: 'alert.delivery', channel: 'ping', error: 'HTTP 500' }, 'alert to ping failed');
    expect(lines).toEqual([
      '2026-12-06 07:40:00 status page at http://127.0.0.1:9580/ (also /metrics and /api/status.json)',
      '2026-12-06 07:40:00 daemon started (times in Europe/Berlin): backup "40 * * * *" next 2026-12-06 07:40:00',
      '2026-12-06 07:40:00 backup started',
      '2026-12-06 07:40:00 backup ok: snapshot 2026-12-06T06-40-00Z (12.1 MiB, 8.2 s)',
      '2026-12-06 07:40:00 warning: backup ok: snapshot S (10 B, 0.9 s); warning: redis part failed',
      '2026-12-06 07:40:00 check ok: 3 snapshots match their manifests (1.5 s)',
      '2026-12-06 07:40:00 error: verify failed: Snapshot S failed verification; see above',
      '2026-12-06 07:40:00 check run 2 waits: backup run 1 in progress',
      '2026-12-06 07:40:00 alert backup.failed sent to webhook',
      '2026-12-06 07:40:00 warning: alert to ping failed: HTTP 500',
    ]);
  });
});
