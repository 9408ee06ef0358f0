import { describe, expect, it } from 'vitest';
import { redact } from '../../../src/notify/redact.js';

describe('redact', () => {
  it('removes every known secret value of four characters or more, wherever it appears', () => {
    expect(redact('pg_dump: password "hunter2" rejected; retry hunter2', ['hunter2'])).toBe(
      'pg_dump: password "[redacted]" rejected; retry [redacted]',
    );
    // Shorter values would blank ordinary words.
    expect(redact('the abc of it', ['abc'])).toBe('the abc of it');
  });

  it('removes passwords in URLs, bearer tokens and secret-named KEY=value pairs', () => {
    expect(redact('cannot reach redis://default:s3cr3t@127.0.0.1:6379/0', [])).toBe(
      'cannot reach redis://default:[redacted]@127.0.0.1:6379/0',
    );
    expect(redact('Authorization: Bearer abc.DEF-123_~+/=', [])).toBe('Authorization: Bearer [redacted]');
    expect(redact('REDIS_PASSWORD=topsecret OTP_SECRET: xyz AWS_SECRET_ACCESS_KEY=k', [])).toBe(
      'REDIS_PASSWORD=[redacted] OTP_SECRET=[redacted] AWS_SECRET_ACCESS_KEY=[redacted]',
    );
  });

  it('leaves config key names and plain text readable', () => {
    expect(redact('vault.passphraseFile: /etc/permafrost/passphrase is mode 0644', [])).toBe(
      'vault.passphraseFile: /etc/permafrost/passphrase is mode 0644',
    );
    expect(redact('https://mastodon.example/@admin', [])).toBe('https://mastodon.example/@admin');
  });
});
