import { describe, expect, it } from 'vitest';
import { mastodonRequest, mastodonStatusText, pingRequest, webhookRequest, type Alert } from '../../../src/notify/channels.js';
import { redact } from '../../../src/notify/redact.js';
import { logAlertingFailure } from '../../../src/notify/alerts.js';
import { UserError } from '../../../src/errors.js';

const alert: Alert = {
  event: 'backup.failed',
  snapshot: null,
  error: 'boom',
  host: 'h',
  time: '2026-11-26T00:00:00.000Z',
  message: 'permafrost on h: backup failed: boom',
};

describe('redact', () => {
  it.each([
    ['passphrase s3cret-pass in a message', ['s3cret-pass'], 'passphrase [redacted] in a message'],
    ['cannot connect to redis://:hunter22@10.0.0.1:6379', [], 'cannot connect to redis://:[redacted]@10.0.0.1:6379'],
    ['postgres://mastodon:pw1234@db/mastodon failed', [], 'postgres://mastodon:[redacted]@db/mastodon failed'],
    ['Authorization: Bearer abc.def-123', [], 'Authorization: Bearer [redacted]'],
    ['DB_PASS=topsecret OTP_SECRET=x1 LOCAL_DOMAIN=example.org', [], 'DB_PASS=[redacted] OTP_SECRET=[redacted] LOCAL_DOMAIN=example.org'],
    ['nothing to hide', ['abc'], 'nothing to hide'],
  ])('%s', (input, secrets, expected) => {
    expect(redact(input, secrets)).toBe(expected);
  });
});

describe('channel requests', () => {
  it('builds the webhook, ping and Mastodon requests', () => {
    const w = webhookRequest({ url: 'http://127.0.0.1:1/h' }, alert);
    expect(JSON.parse(w.body!)).toEqual({
      event: 'backup.failed',
      snapshot: null,
      error: 'boom',
      host: 'h',
      time: alert.time,
      message: alert.message,
      // Slack/Mattermost read text, Discord content: a chat webhook URL works as it is.
      text: alert.message,
      content: alert.message,
    });
    expect(pingRequest({ url: 'http://127.0.0.1:1/p/' }, 'start').url).toBe('http://127.0.0.1:1/p/start');
    expect(pingRequest({ url: 'http://127.0.0.1:1/p' }, 'success').url).toBe('http://127.0.0.1:1/p');
    expect(pingRequest({ url: 'http://127.0.0.1:1/p' }, 'fail', 'err').body).toBe('err');
    const m = mastodonRequest({ server: 'http://127.0.0.1:1/', tokenFile: '/x', to: 'admin' }, 'tok', alert);
    expect(m.url).toBe('http://127.0.0.1:1/api/v1/statuses');
    expect(m.headers.authorization).toBe('Bearer tok');
    expect(JSON.parse(m.body!)).toEqual({ status: '@admin permafrost on h: backup failed: boom', visibility: 'direct' });
  });

  it('keeps a direct message within 500 characters', () => {
    const text = mastodonStatusText('@admin@example.org', { ...alert, message: 'x'.repeat(900) });
    expect(text).toHaveLength(500);
    expect(text.startsWith('@admin@example.org xxx')).toBe(true);
  });
});

describe('redact keeps config key paths readable', () => {
  it('does not cut file paths after lower-case key names', () => {
    const msg = 'vault.passphraseFile: /etc/permafrost/passphrase is accessible by group or others';
    expect(redact(msg, [])).toBe(msg);
  });
});

describe('logAlertingFailure', () => {
  const collect = () => {
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
    return {
      lines,
      log: (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => lines.push({ level, msg, fields }),
    };
  };

  it('trouble outside (a PermafrostError, a file system error) is a warning', () => {
    const { lines, log } = collect();
    logAlertingFailure(log, 'alerting failed', new UserError('notify.mastodon.tokenFile: cannot read /t; create it or fix the path.'));
    logAlertingFailure(log, 'alerting failed', Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }));
    expect(lines.map((l) => l.level)).toEqual(['warn', 'warn']);
    expect(lines[0]!.fields).toEqual({ error: 'notify.mastodon.tokenFile: cannot read /t; create it or fix the path.' });
  });

  it('a programming error is an error line with its stack, never silent', () => {
    const { lines, log } = collect();
    logAlertingFailure(log, 'alerting failed', new TypeError("Cannot read properties of undefined (reading 'passwordFile')"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', msg: 'alerting failed: this is a bug, please report it' });
    expect(lines[0]!.fields.stack).toMatch(/^TypeError: Cannot read properties/);
  });
});
