import { randomUUID } from 'node:crypto';
import type { NotifyConfig } from '../config/schema-watch.js';

export type ChannelName = 'webhook' | 'ping' | 'mastodon';

/** What happened, as the receivers see it. */
export interface Alert {
  /** e.g. backup.failed, backup.resolved, verify.failed, device.stale, device.resolved */
  event: string;
  snapshot: string | null;
  error: string | null;
  host: string;
  time: string;
  /** One sentence for humans. */
  message: string;
}

/** A request ready to send; built by pure functions so it can be tested as data. */
export interface ChannelRequest {
  channel: ChannelName;
  method: 'POST' | 'GET';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** Discord refuses a webhook message whose content is longer. */
const DISCORD_MAX = 2000;

/** Mastodon's default status limit. */
const STATUS_MAX = 500;

/**
 * The webhook's JSON body: the alert's fields, plus the one sentence as `text` (what Slack,
 * Mattermost and Rocket.Chat incoming webhooks post) and `content` (Discord's), so a chat
 * webhook URL works as it is; other receivers read `event`, `snapshot`, `error`, `host`, `time`.
 * Documented in docs/monitoring.md.
 */
export function webhookRequest(cfg: NonNullable<NotifyConfig['webhook']>, alert: Alert): ChannelRequest {
  const { event, snapshot, error, host, time, message } = alert;
  return {
    channel: 'webhook',
    method: 'POST',
    url: cfg.url,
    headers: { 'content-type': 'application/json', 'user-agent': 'permafrost' },
    body: JSON.stringify({ event, snapshot, error, host, time, message, text: message, content: message.slice(0, DISCORD_MAX) }),
  };
}

/** healthchecks.io-style: URL/start when a run starts, URL on success, URL/fail with the error as body. */
export function pingRequest(cfg: NonNullable<NotifyConfig['ping']>, kind: 'start' | 'success' | 'fail', body?: string): ChannelRequest {
  const base = cfg.url.replace(/\/+$/, '');
  return {
    channel: 'ping',
    method: 'POST',
    url: kind === 'success' ? base : `${base}/${kind}`,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'user-agent': 'permafrost' },
    body: body ?? '',
  };
}

/** The text of a direct message: mentions the admin (who alone can see a direct status). */
export function mastodonStatusText(to: string, alert: Alert): string {
  const mention = to.startsWith('@') ? to : `@${to}`;
  const text = `${mention} ${alert.message}`;
  return text.length <= STATUS_MAX ? text : `${text.slice(0, STATUS_MAX - 1)}…`;
}

export function mastodonRequest(cfg: NonNullable<NotifyConfig['mastodon']>, token: string, alert: Alert): ChannelRequest {
  return {
    channel: 'mastodon',
    method: 'POST',
    url: `${cfg.server.replace(/\/+$/, '')}/api/v1/statuses`,
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${token}`,
      // Retries of one alert must not post it twice; Mastodon honours this header.
      'idempotency-key': randomUUID(),
      'user-agent': 'permafrost',
    },
    body: JSON.stringify({ status: mastodonStatusText(cfg.to, alert), visibility: 'direct' }),
  };
}
