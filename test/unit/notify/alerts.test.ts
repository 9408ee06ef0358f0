import { describe, expect, it } from 'vitest';
import { redact } from '../../../src/notify/redact.js';
import { logAlertingFailure } from '../../../src/notify/alerts.js';
import { UserError } from '../../../src/errors.js';

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
