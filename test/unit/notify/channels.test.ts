import { describe, expect, it } from 'vitest';
import { mastodonRequest, mastodonStatusText, pingRequest, webhookRequest, type Alert } from '../../../src/notify/channels.js';

const alert: Alert = {
  event: 'backup.failed',
  snapshot: null,
  error: 'boom',
  host: 'h',
  time: '2026-11-26T00:00:00.000Z',
  message: 'permafrost on h: backup failed: boom',
};

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

describe('channel request details', () => {
  it("the webhook: a JSON POST to the URL; Discord's content is cut at its 2000 characters, text and message stay whole", () => {
    const long = { ...alert, message: 'y'.repeat(2500) };
    const w = webhookRequest({ url: 'https://chat.example/hook' }, long);
    expect([w.channel, w.method, w.url, w.headers['content-type']]).toEqual([
      'webhook',
      'POST',
      'https://chat.example/hook',
      'application/json',
    ]);
    const body = JSON.parse(w.body!) as { content: string; text: string; message: string };
    expect([body.content.length, body.text.length, body.message.length]).toEqual([2000, 2500, 2500]);
  });

  it('ping: trailing slashes dropped once, success is the bare URL, an empty text body without one', () => {
    expect(pingRequest({ url: 'https://hc.example/abc///' }, 'fail').url).toBe('https://hc.example/abc/fail');
    const p = pingRequest({ url: 'https://hc.example/abc' }, 'success');
    expect([p.method, p.body, p.headers['content-type']]).toEqual(['POST', '', 'text/plain; charset=utf-8']);
  });

  it('Mastodon: a direct status mentioning the admin (with or without @), a fresh idempotency key per request', () => {
    const cfg = { server: 'https://m.example//', tokenFile: '/t', to: '@admin@example.org' };
    const a = mastodonRequest(cfg, 'tok', alert);
    const b = mastodonRequest(cfg, 'tok', alert);
    expect(a.url).toBe('https://m.example/api/v1/statuses');
    expect(a.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.headers['idempotency-key']).not.toBe(b.headers['idempotency-key']);
    expect(JSON.parse(a.body!)).toEqual({ status: `@admin@example.org ${alert.message}`, visibility: 'direct' });
    expect(mastodonStatusText('admin', { ...alert, message: 'short' })).toBe('@admin short');
    const exactly = mastodonStatusText('@a', { ...alert, message: 'z'.repeat(497) });
    expect(exactly).toHaveLength(500);
    expect(exactly.endsWith('z')).toBe(true);
  });
});
