/**
 * The daemon's log: one readable line per event on a TTY (`2026-12-06 07:40:00 backup started`),
 * one JSON object per line otherwise or with --log-format json (pino, for journald and jq).
 */
import { pino } from 'pino';
import { UserError } from '../errors.js';
import { formatBytes } from '../format.js';
import type { DaemonLogger } from '../daemon/scheduler.js';

export type LogFormat = 'text' | 'json';

/** --log-format, else text on a TTY and JSON when stdout is a pipe, a file or the journal. */
export function chooseLogFormat(flag: string | undefined, stdoutIsTTY: boolean): LogFormat {
  if (flag === undefined) return stdoutIsTTY ? 'text' : 'json';
  if (flag === 'text' || flag === 'json') return flag;
  throw new UserError(`--log-format: "${flag}" is neither text nor json; pass --log-format text or --log-format json.`);
}

/** One JSON object per line (pino), with time, level, pid, event and its fields. */
export function jsonLogger(write: (line: string) => void): DaemonLogger {
  return pino(
    {
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    { write: (line: string) => write(line.trimEnd()) },
  );
}

/** "2026-12-06 07:40:00" in `timezone`. */
export function localTime(date: Date, timezone: string): string {
  return new Intl.DateTimeFormat('sv-SE', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).format(date);
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** What a finished run achieved, from the summary its job returned: "snapshot X (12.1 MiB, 8.2 s)". */
function runSummary(job: string, result: Record<string, unknown>, durationMs: number | undefined): string {
  const took = durationMs === undefined ? [] : [seconds(durationMs)];
  const snapshot = str(result.snapshot);
  const bytes = num(result.bytes);
  const checked = num(result.checked);
  if (job === 'backup' && snapshot)
    return `: snapshot ${snapshot} (${[...(bytes === undefined ? [] : [formatBytes(bytes)]), ...took].join(', ')})`;
  if (job === 'verify' && snapshot)
    return `: snapshot ${snapshot} restores (${[...(num(result.checks) === undefined ? [] : [`${num(result.checks)} checks`]), ...took].join(', ')})`;
  if (checked === 0) return ': no snapshot to check yet';
  if (checked !== undefined) return `: ${checked} snapshot${checked === 1 ? '' : 's'} match their manifests (${took.join(', ') || 'done'})`;
  return took.length ? ` (${took.join(', ')})` : '';
}

/** The text of one event, without time or level. */
export function describeEvent(fields: Record<string, unknown>, msg: string): string {
  const job = str(fields.job) ?? '';
  const error = str(fields.error);
  switch (fields.event) {
    case 'daemon.start': {
      const jobs = Array.isArray(fields.jobs) ? (fields.jobs as Array<Record<string, unknown>>) : [];
      const tz = str(fields.timezone) ?? '';
      const next = jobs.map((j) => {
        const at = str(j.nextRun);
        return `${str(j.name)} "${str(j.cron)}"${at ? ` next ${localTime(new Date(at), tz)}` : ''}`;
      });
      return `daemon started (times in ${tz})${next.length ? `: ${next.join(', ')}` : ': no scheduled job'}`;
    }
    case 'service.start':
      return fields.service === 'web' && str(fields.url) ? `status page at ${str(fields.url)} (also /metrics and /api/status.json)` : msg;
    case 'run.start':
      return `${job} started`;
    case 'run.finish': {
      const result = fields.result !== null && typeof fields.result === 'object' ? (fields.result as Record<string, unknown>) : {};
      const warnings = Array.isArray(result.warnings) ? result.warnings.filter((w): w is string => typeof w === 'string') : [];
      return `${job} ok${runSummary(job, result, num(fields.durationMs))}${warnings.map((w) => `; warning: ${w}`).join('')}`;
    }
    case 'run.fail': {
      const details = Array.isArray(fields.details) ? fields.details.filter((d): d is string => typeof d === 'string') : [];
      return `${job} failed: ${error ?? 'no reason given'}${details.map((d) => `; ${d}`).join('')}`;
    }
    case 'run.abort':
      return `${job} aborted: ${error ?? ''}`;
    case 'run.skipped':
      return `${job} skipped: ${str(fields.reason) ?? ''}`;
    case 'alert.sent':
      return `alert ${str(fields.alert) ?? ''} sent to ${str(fields.channel) ?? ''}`;
    default:
      return error && !msg.includes(error) ? `${msg}: ${error}` : msg;
  }
}

/** One readable line per event: local time in `timezone` (a function: the zone of the config now running), "warning:"/"error:" where it is one, the event in words. */
export function textLogger(
  write: (line: string) => void,
  timezone: string | (() => string),
  now: () => Date = () => new Date(),
): DaemonLogger {
  const tz = typeof timezone === 'string' ? () => timezone : timezone;
  const at = (level: 'info' | 'warn' | 'error') => (fields: object, msg: string) => {
    const tag = level === 'info' ? '' : level === 'warn' ? 'warning: ' : 'error: ';
    write(`${localTime(now(), tz())} ${tag}${describeEvent(fields as Record<string, unknown>, msg)}`);
  };
  return { info: at('info'), warn: at('warn'), error: at('error') };
}
