import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { RunLog } from '../run-context.js';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import { readJsonState, writeJsonState } from '../vault/state-file.js';
import { mastodonRequest, pingRequest, webhookRequest, type Alert, type ChannelName, type ChannelRequest } from './channels.js';
import { httpRequest, urlOrigin } from '../net/http.js';
import { redact } from './redact.js';
import { openVault, VAULT_NAMES, type Vault } from '../vault/layout.js';
import { knownValues, type JobSecrets } from '../config/secret-values.js';

/** What a run reports; notifyOutcome turns it into alerts. */
export type Outcome =
  | { kind: 'backup.start' }
  | { kind: 'backup'; ok: true; snapshot: string }
  | { kind: 'backup'; ok: false; error: string }
  | { kind: 'verify'; ok: true; snapshot: string }
  | { kind: 'verify'; ok: false; snapshot: string | null; error: string }
  | { kind: 'device'; device: string; ok: boolean; snapshot: string | null; error?: string }
  | { kind: 'check'; ok: true }
  | { kind: 'check'; ok: false; error: string }
  /** The device's dead-man alarm: its newest complete snapshot is older than syncthing.staleAfter (the server went quiet). */
  | { kind: 'stale'; ok: boolean; snapshot: string | null; error?: string }
  /** The device's own Syncthing does not answer: it cannot receive, so it is one more reason snapshots go stale. */
  | { kind: 'syncthing'; ok: boolean; error?: string }
  /** An offsite target as the overview judges it: its last push failed, or it has lacked a snapshot for longer than its staleAfter. */
  | { kind: 'offsite'; target: string; ok: boolean; snapshot: string | null; stale?: boolean; error?: string };

/** One delivery to one channel, after its retries. */
export interface Delivery {
  channel: ChannelName;
  event: string;
  ok: boolean;
  attempts: number;
  error?: string;
}

export type NotifyLog = RunLog;

/**
 * Logs why alerting (or a device check) could not go on. Trouble outside (an unreadable file,
 * Syncthing down) is a warning; anything else is a bug here, logged as an error with its stack so
 * it cannot vanish silently. Either way the run it reports on goes on.
 */
export function logAlertingFailure(log: NotifyLog, msg: string, err: unknown): void {
  const outside = err instanceof PermafrostError || typeof (err as { code?: unknown } | null)?.code === 'string';
  if (outside) log('warn', msg, { error: errorMessage(err) });
  else
    log('error', `${msg}: this is a bug, please report it`, {
      error: errorMessage(err),
      stack: err instanceof Error ? err.stack : String(err),
    });
}

export interface NotifyOptions {
  log?: NotifyLog;
  now?: Date;
  /** The job's secrets as read at its start: the Mastodon token, and every value to cut out of alerts. */
  secrets: JobSecrets;
}

/** The alert state beside the snapshots: which conditions are failing, which channels were told. */
export const ALERT_STATE_NAME = VAULT_NAMES.state.alerts;

const channelSchema = z.enum(['webhook', 'ping', 'mastodon']) satisfies z.ZodType<ChannelName>;

const conditionStateSchema = z.object({
  failing: z.boolean(),
  since: z.string(),
  error: z.string().nullable(),
  /** Channels that were told about the failure and so will be told it is resolved. */
  told: z.array(channelSchema),
});

const alertStateSchema = z.object({
  formatVersion: z.literal(1),
  conditions: z.record(z.string(), conditionStateSchema),
  /** Deliveries that failed after every retry, per channel (a counter, for /metrics). */
  deliveryFailures: z.partialRecord(channelSchema, z.number()),
  lastDelivery: z.partialRecord(channelSchema, z.object({ time: z.string(), ok: z.boolean(), event: z.string() })),
});
export type AlertState = z.infer<typeof alertStateSchema>;

export function alertStatePath(vault: Vault): string {
  return vault.stateFile('alerts');
}

export async function readAlertState(vault: Vault): Promise<AlertState> {
  return readJsonState(alertStatePath(vault), alertStateSchema, {
    formatVersion: 1,
    conditions: {},
    deliveryFailures: {},
    lastDelivery: {},
  });
}

function conditionKey(o: Exclude<Outcome, { kind: 'backup.start' }>): string {
  if (o.kind === 'offsite') return `offsite:${o.target}`;
  return o.kind === 'device' ? `device:${o.device}` : o.kind;
}

function describe(o: Exclude<Outcome, { kind: 'backup.start' }>, host: string, resolved: boolean): { event: string; message: string } {
  const on = `permafrost on ${host}`;
  if (o.kind === 'backup') {
    return resolved
      ? { event: 'backup.resolved', message: `${on}: backups work again${o.ok ? ` (snapshot ${o.snapshot})` : ''}.` }
      : { event: 'backup.failed', message: `${on}: backup failed: ${o.ok ? '' : o.error}` };
  }
  if (o.kind === 'verify') {
    return resolved
      ? { event: 'verify.resolved', message: `${on}: snapshot ${o.snapshot ?? ''} passed verification again.` }
      : { event: 'verify.failed', message: `${on}: verify of snapshot ${o.snapshot ?? '?'} failed: ${o.ok ? '' : o.error}` };
  }
  if (o.kind === 'check') {
    return resolved
      ? { event: 'check.resolved', message: `${on}: every snapshot passed its check again.` }
      : { event: 'check.failed', message: `${on}: snapshot check failed: ${o.ok ? '' : o.error}` };
  }
  if (o.kind === 'stale') {
    return resolved
      ? { event: 'snapshots.resolved', message: `${on}: snapshots arrive again${o.snapshot ? ` (newest ${o.snapshot})` : ''}.` }
      : { event: 'snapshots.stale', message: `${on}: no new snapshot: ${o.error ?? ''}` };
  }
  if (o.kind === 'offsite') {
    if (resolved)
      return {
        event: 'offsite.resolved',
        message: `${on}: offsite target ${o.target} is up to date again${o.snapshot ? ` (holds ${o.snapshot})` : ''}.`,
      };
    return o.stale
      ? { event: 'offsite.stale', message: `${on}: offsite target ${o.target} is stale: ${o.error ?? ''}` }
      : { event: 'offsite.failed', message: `${on}: push to offsite target ${o.target} failed: ${o.error ?? ''}` };
  }
  if (o.kind === 'syncthing') {
    return resolved
      ? { event: 'syncthing.resolved', message: `${on}: Syncthing answers again.` }
      : { event: 'syncthing.stale', message: `${on}: Syncthing is unreachable, so no snapshot can arrive: ${o.error ?? ''}` };
  }
  return resolved
    ? { event: 'device.resolved', message: `${on}: device ${o.device} is up to date again${o.snapshot ? ` (has ${o.snapshot})` : ''}.` }
    : {
        event: 'device.stale',
        message: `${on}: device ${o.device} is stale: ${o.error ?? `its newest snapshot is ${o.snapshot ?? 'none'}`}`,
      };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends one request, retrying network errors, 429 and 5xx with doubling backoff. Never throws. */
async function deliver(
  req: ChannelRequest,
  event: string,
  cfg: { retries: number; backoffMs: number; timeoutMs: number },
  log: NotifyLog,
): Promise<Delivery> {
  let lastError = '';
  const attempts = cfg.retries + 1;
  for (let i = 0; i < attempts; i++) {
    if (i > 0) await sleep(cfg.backoffMs * 2 ** (i - 1));
    try {
      const res = await httpRequest({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: req.body,
        timeoutMs: cfg.timeoutMs,
        fix: 'check the receiver is up and reachable',
      });
      if (res.status >= 200 && res.status < 300) {
        // Every alert that went out is logged (the daemon's log shows it; the CLI keeps info lines quiet).
        log('info', `alert ${event} sent to ${req.channel}`, { channel: req.channel, event, attempts: i + 1, sent: true });
        return { channel: req.channel, event, ok: true, attempts: i + 1 };
      }
      lastError = `${req.method} ${urlOrigin(req.url)} answered HTTP ${res.status}`;
      // Other 4xx (bad token, bad URL) will not get better by retrying.
      if (res.status < 500 && res.status !== 429) {
        log('warn', `alert to ${req.channel} refused`, { channel: req.channel, event, status: res.status, attempt: i + 1 });
        return { channel: req.channel, event, ok: false, attempts: i + 1, error: lastError };
      }
    } catch (err) {
      lastError = errorMessage(err);
    }
    log('warn', `alert to ${req.channel} failed`, { channel: req.channel, event, attempt: i + 1, of: attempts, error: lastError });
  }
  return { channel: req.channel, event, ok: false, attempts, error: lastError };
}

/**
 * Tells the configured channels about a run's outcome, without ever throwing: a receiver that is
 * down is logged and retried, and never fails the run. Webhook and Mastodon hear each failure once
 * (when a condition starts failing) and once "resolved" when it recovers; the ping channel is a
 * heartbeat for backups (start, success, fail on every run), as healthchecks-style checks expect.
 */
export async function notifyOutcome(config: Config, outcome: Outcome, opts: NotifyOptions): Promise<Delivery[]> {
  const log: NotifyLog = opts.log ?? (() => undefined);
  const n = config.notify;
  if (!n) return [];
  try {
    const host = hostname();
    const time = (opts.now ?? new Date()).toISOString();
    const secrets = knownValues(opts.secrets);
    const clean = (s: string): string => redact(s, secrets);
    const sends: Array<Promise<Delivery>> = [];
    const retry = { retries: n.retries, backoffMs: n.backoffMs, timeoutMs: n.timeoutMs };

    // The ping channel: every backup run, whatever the previous state.
    if (n.ping && (outcome.kind === 'backup.start' || outcome.kind === 'backup')) {
      const kind = outcome.kind === 'backup.start' ? 'start' : outcome.ok ? 'success' : 'fail';
      const body = outcome.kind === 'backup' && !outcome.ok ? clean(outcome.error) : undefined;
      sends.push(deliver(pingRequest(n.ping, kind, body), `ping.${kind}`, retry, log));
    }
    if (outcome.kind === 'backup.start') return await settle(config, sends, null, null);

    const state = await readAlertState(openVault(config.vault.dir));
    const key = conditionKey(outcome);
    const prev = state.conditions[key];
    // The dead-man alarm has no run to heartbeat, so ping hears its edges too (fail once, success once).
    const pingEdge = Boolean(n.ping) && (outcome.kind === 'stale' || outcome.kind === 'syncthing');
    const edge: ChannelName[] = [
      ...(n.webhook ? (['webhook'] as const) : []),
      ...(n.mastodon ? (['mastodon'] as const) : []),
      ...(pingEdge ? (['ping'] as const) : []),
    ];
    let targets: ChannelName[] = [];
    let resolved = false;
    if (!outcome.ok) {
      const told = prev?.failing ? prev.told : [];
      targets = edge.filter((c) => !told.includes(c));
      state.conditions[key] = { failing: true, since: prev?.failing ? prev.since : time, error: clean(outcome.error ?? ''), told };
    } else if (prev?.failing) {
      resolved = true;
      targets = edge.filter((c) => prev.told.includes(c));
      state.conditions[key] = { failing: false, since: time, error: null, told: prev.told };
    } else {
      return await settle(config, sends, null, null);
    }
    const { event, message } = describe(outcome, host, resolved);
    const alert: Alert = {
      event,
      snapshot: 'snapshot' in outcome ? outcome.snapshot : null,
      error: outcome.ok ? null : clean(outcome.error ?? ''),
      host,
      time,
      message: clean(message),
    };
    for (const channel of targets) {
      if (channel === 'webhook' && n.webhook) sends.push(deliver(webhookRequest(n.webhook, alert), event, retry, log));
      if (channel === 'ping' && n.ping) {
        sends.push(deliver(pingRequest(n.ping, resolved ? 'success' : 'fail', alert.message), event, retry, log));
      }
      if (channel === 'mastodon' && n.mastodon) {
        let token: string;
        try {
          if (!opts.secrets.mastodon) throw new Error('the Mastodon token was not read at the start of the job');
          token = opts.secrets.mastodon.reveal();
        } catch (err) {
          sends.push(Promise.resolve({ channel: 'mastodon', event, ok: false, attempts: 0, error: errorMessage(err) }));
          continue;
        }
        sends.push(deliver(mastodonRequest(n.mastodon, token, alert), event, retry, log));
      }
    }
    return await settle(config, sends, state, { key, resolved, pingEdge });
  } catch (err) {
    // Alerting must never fail the run it reports on.
    logAlertingFailure(log, 'alerting failed', err);
    return [];
  }
}

/** Waits for deliveries, then records who was told and the failure counters. */
async function settle(
  config: Config,
  sends: Array<Promise<Delivery>>,
  state: AlertState | null,
  change: { key: string; resolved: boolean; pingEdge: boolean } | null,
): Promise<Delivery[]> {
  const deliveries = await Promise.all(sends);
  const st = state ?? (deliveries.length > 0 ? await readAlertState(openVault(config.vault.dir)) : null);
  if (!st) return deliveries;
  for (const d of deliveries) {
    st.lastDelivery[d.channel] = { time: new Date().toISOString(), ok: d.ok, event: d.event };
    if (!d.ok) st.deliveryFailures[d.channel] = (st.deliveryFailures[d.channel] ?? 0) + 1;
    if (!change || (d.channel === 'ping' && !change.pingEdge)) continue;
    const cond = st.conditions[change.key];
    if (!cond || !d.ok) continue;
    // Told of the failure: remember, so it hears the recovery; told of the recovery: forget.
    cond.told = change.resolved ? cond.told.filter((c) => c !== d.channel) : [...new Set([...cond.told, d.channel])];
  }
  await mkdir(config.vault.dir, { recursive: true, mode: 0o750 });
  await writeJsonState(alertStatePath(openVault(config.vault.dir)), st);
  return deliveries;
}
