/**
 * systemd units: either timers (oneshot services that run `permafrost backup`, `verify` and
 * `check`, each with a timer whose OnCalendar= is the configured cron pattern), or one long-running
 * service for `permafrost daemon` (server or backup device). Pure: the caller finds the user and
 * paths; `installUnits` is the only writer.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';

export const UNIT_NAME = 'permafrost-backup';
export const VERIFY_UNIT_NAME = 'permafrost-verify';
/** Where `permafrost systemd --install` writes the units unless --unit-dir says otherwise. */
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
export const CHECK_UNIT_NAME = 'permafrost-check';
export const DAEMON_UNIT_NAME = 'permafrost-daemon';

/**
 * Why units installed here would never run, or null when PID 1 is systemd (read from
 * <procDir>/1/comm; tests point procDir at a fake /proc).
 */
export function initSystemProblem(procDir = '/proc'): string | null {
  let comm: string;
  try {
    comm = readFileSync(path.join(procDir, '1', 'comm'), 'utf8').trim();
  } catch (err) {
    return `cannot tell which init system runs here (${path.join(procDir, '1', 'comm')}: ${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  return comm === 'systemd' ? null : `PID 1 here is "${comm}", not systemd`;
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] as const;
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] as const;
const SYSTEMD_DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

const FIELDS = {
  second: { name: 'second', min: 0, max: 59 },
  minute: { name: 'minute', min: 0, max: 59 },
  hour: { name: 'hour', min: 0, max: 23 },
  dom: { name: 'day of month', min: 1, max: 31 },
  month: { name: 'month', min: 1, max: 12, names: MONTHS },
  dow: { name: 'day of week', min: 0, max: 7, names: DAYS },
} satisfies Record<string, FieldSpec>;

const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** Why a pattern has no OnCalendar= form; cronToOnCalendar turns it into the UserError naming the config key. */
class Untranslatable extends Error {}

function parseValue(text: string, spec: FieldSpec): number {
  const upper = text.toUpperCase();
  const named = spec.names?.indexOf(upper) ?? -1;
  const n = named >= 0 ? named + (spec.name === 'month' ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < spec.min || n > spec.max) throw new Untranslatable(`"${text}" is not a valid ${spec.name}`);
  return n;
}

/** The set of values a cron field matches (day of week: 0–6, Sunday 0), or null for `*`. */
function expandField(field: string, spec: FieldSpec): Set<number> | null {
  if (field === '*') return null;
  if (/[LW#?]/i.test(field))
    throw new Untranslatable(`the ${spec.name} field "${field}" uses L, W, # or ?, which OnCalendar= has no equivalent for`);
  const values = new Set<number>();
  for (const part of field.split(',')) {
    const m = /^([^/-]+|\*)(?:-([^/]+))?(?:\/(\d+))?$/.exec(part);
    if (!m) throw new Untranslatable(`"${part}" in the ${spec.name} field is not understood`);
    const [, from, to, stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw new Untranslatable(`step "${stepText}" in the ${spec.name} field must be at least 1`);
    let lo: number;
    let hi: number;
    if (from === '*') {
      if (to !== undefined) throw new Untranslatable(`"${part}" in the ${spec.name} field is not understood`);
      lo = spec.min;
      hi = spec.name === 'day of week' ? 6 : spec.max;
    } else {
      lo = parseValue(from!, spec);
      // "5/10" (start/step without a range) is not standard cron; croner refuses it too.
      if (to === undefined && stepText !== undefined) throw new Untranslatable(`"${part}" needs a range before the step, like "5-59/10"`);
      hi = to === undefined ? lo : parseValue(to, spec);
      if (hi < lo) throw new Untranslatable(`the range "${part}" in the ${spec.name} field runs backwards`);
    }
    for (let v = lo; v <= hi; v += step) values.add(spec.name === 'day of week' && v === 7 ? 0 : v);
  }
  return values;
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

/** Renders a value set as systemd does: `*`, `start/step`, or a list of values and `a..b` ranges. */
function renderSet(values: Set<number> | null, spec: FieldSpec): string {
  if (values === null) return '*';
  const sorted = [...values].sort((a, b) => a - b);
  const last = spec.max;
  if (sorted.length === last - spec.min + 1) return '*';
  // An arithmetic progression that runs to the end of the field: "0/15", "01/2".
  if (sorted.length >= 3) {
    const step = sorted[1]! - sorted[0]!;
    const progression = step > 1 && sorted.every((v, i) => v === sorted[0]! + i * step) && sorted.at(-1)! + step > last;
    if (progression) return `${pad2(sorted[0]!)}/${step}`;
  }
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    if (j - i >= 2) out.push(`${pad2(sorted[i]!)}..${pad2(sorted[j]!)}`);
    else for (let k = i; k <= j; k++) out.push(pad2(sorted[k]!));
    i = j + 1;
  }
  return out.join(',');
}

function renderDays(values: Set<number> | null): string | null {
  if (values === null || values.size === 7) return null;
  // Monday-first, as systemd lists them; runs of 3+ days become ranges ("Mon..Fri").
  const order = [1, 2, 3, 4, 5, 6, 0].filter((d) => values.has(d));
  const pos = (d: number): number => (d + 6) % 7;
  const out: string[] = [];
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && pos(order[j + 1]!) === pos(order[j]!) + 1) j++;
    if (j - i >= 2) out.push(`${SYSTEMD_DAYS[order[i]!]}..${SYSTEMD_DAYS[order[j]!]}`);
    else for (let k = i; k <= j; k++) out.push(SYSTEMD_DAYS[order[k]!]!);
    i = j + 1;
  }
  return out.join(',');
}

/**
 * The OnCalendar= expression matching a cron pattern (5 fields, or 6 with seconds first, or a
 * @nickname), in `timeZone` when given. Throws UserError, with a sentence saying why, for what
 * OnCalendar= cannot express (L/W/#, day-of-month OR day-of-week); `key` names the setting in it.
 */
export function cronToOnCalendar(pattern: string, timeZone?: string, key = 'schedule.backup'): string {
  try {
    return translate(pattern, timeZone);
  } catch (err) {
    if (!(err instanceof Untranslatable)) throw err;
    throw new UserError(
      `${key}: cannot translate the cron pattern "${pattern}" into a systemd OnCalendar= expression (${err.message}); use a simpler pattern, or run \`permafrost daemon\` instead of timers.`,
    );
  }
}

function translate(pattern: string, timeZone?: string): string {
  const trimmed = pattern.trim();
  const expanded = NICKNAMES[trimmed.toLowerCase()] ?? trimmed;
  if (expanded.startsWith('@')) throw new Untranslatable(`"${trimmed}" has no timer equivalent`);
  const fields = expanded.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) throw new Untranslatable(`expected 5 or 6 fields, found ${fields.length}`);
  const [sec, min, hour, dom, month, dow] = fields.length === 6 ? fields : ['0', ...fields];
  const days = expandField(dow!, FIELDS.dow);
  const dates = expandField(dom!, FIELDS.dom);
  let weekday = renderDays(days);
  let dateSet = dates;
  // Cron (and croner) match day of month OR day of week when both are given; OnCalendar= ANDs them.
  if (days !== null && dates !== null) {
    if (days.size === 7 || dates.size === 31) {
      weekday = null; // the OR matches every day
      dateSet = null;
    } else {
      throw new Untranslatable('it restricts both day of month and day of week, which cron joins with OR and OnCalendar= with AND');
    }
  }
  const date = `*-${renderSet(expandField(month!, FIELDS.month), FIELDS.month)}-${renderSet(dateSet, FIELDS.dom)}`;
  const time = [
    renderSet(expandField(hour!, FIELDS.hour), FIELDS.hour),
    renderSet(expandField(min!, FIELDS.minute), FIELDS.minute),
    renderSet(expandField(sec!, FIELDS.second), FIELDS.second),
  ].join(':');
  return [weekday, date, time, timeZone].filter(Boolean).join(' ');
}

export interface UnitOptions {
  /** The command to run, as an argv: e.g. [/usr/local/bin/permafrost]. */
  command: readonly string[];
  configPath: string;
  /** Account the services run as: the owner of the vault. */
  user: string;
  vaultDir: string;
  /** More folders the jobs write (vault.tempDir). */
  writablePaths?: readonly string[];
  /** OnCalendar= of the backup timer (schedule.backup); no backup units without it (a backup device). */
  onCalendar?: string;
  /** OnCalendar= of the verify timer (schedule.verify); no verify units without it. */
  verifyOnCalendar?: string;
  /** OnCalendar= of the check timer (schedule.check); no check units without it. */
  checkOnCalendar?: string;
  /** node_exporter textfile (.prom) that `permafrost metrics` rewrites after every run. */
  metricsTextfile?: string;
}

/** Quotes one ExecStart= word the way systemd.service(5) reads it. */
export function quoteExecArg(arg: string): string {
  if (/[\n\r]/.test(arg)) throw new UserError(`Cannot put a path with a line break into a systemd unit: ${JSON.stringify(arg)}.`);
  const escaped = arg.replace(/\\/g, '\\\\').replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"';]/.test(arg) || arg === '' ? `"${escaped.replace(/"/g, '\\"')}"` : escaped;
}

/** A path for ReadWritePaths=: specifiers escaped, quoted when it holds spaces. */
function quotePath(p: string): string {
  const escaped = p.replace(/%/g, '%%');
  return /\s/.test(p) ? `"${escaped}"` : escaped;
}

interface JobUnit {
  name: string;
  subcommand: string;
  what: string;
  onCalendar: string;
  scheduleKey: string;
  /** What SIGTERM does to the job, said above TimeoutStopSec=. */
  stop: string;
}

function service(job: JobUnit, opts: UnitOptions): string {
  const exec = (args: string[]): string => [...opts.command, '--config', opts.configPath, ...args].map(quoteExecArg).join(' ');
  const writable = [opts.vaultDir, ...(opts.writablePaths ?? []), ...(opts.metricsTextfile ? [path.dirname(opts.metricsTextfile)] : [])];
  // ExecStopPost= runs after failures too, so permafrost_last_*_success goes stale and the age alert fires; "-": a metrics hiccup is not a failed job.
  const metrics = opts.metricsTextfile
    ? `# Keep node_exporter's textfile current after every run, failed ones included.\nExecStopPost=-${exec(['metrics', '--textfile', opts.metricsTextfile])}\n`
    : '';
  return `# Generated by \`permafrost systemd\`; regenerate after changing ${job.scheduleKey}, vault.dir or vault.tempDir.
[Unit]
Description=permafrost ${job.subcommand}: ${job.what}
Wants=network-online.target
After=network-online.target postgresql.service redis-server.service
# permafrost sends its own alerts (notify.*) when a run fails; for when it cannot even start,
# add OnFailure=<a unit of yours that mails or pages> in a drop-in (systemctl edit ${job.name}.service).

[Service]
Type=oneshot
User=${opts.user}
ExecStart=${exec([job.subcommand])}
${metrics}# ${job.stop}
TimeoutStopSec=120
UMask=0027
Nice=10
IOSchedulingClass=idle

# Hardening: the job reads the system and Mastodon's files, and writes only to the vault (and its temp folder).
NoNewPrivileges=yes
${hardening(writable)}`;
}

function timer(job: JobUnit): string {
  return `# Generated by \`permafrost systemd\` from ${job.scheduleKey}; regenerate after changing it.
[Unit]
Description=permafrost ${job.subcommand} on schedule

[Timer]
OnCalendar=${job.onCalendar}
# Run a missed ${job.subcommand} at boot; fire on the second, as cron would.
Persistent=true
AccuracySec=1s
Unit=${job.name}.service

[Install]
WantedBy=timers.target
`;
}

/** The .service/.timer pairs of the jobs given an OnCalendar= (backup, verify, check), as file name → text. */
export function renderUnits(opts: UnitOptions): Record<string, string> {
  const jobs: JobUnit[] = [];
  if (opts.onCalendar !== undefined) {
    jobs.push({
      name: UNIT_NAME,
      subcommand: 'backup',
      what: 'encrypted snapshot of the Mastodon server',
      onCalendar: opts.onCalendar,
      scheduleKey: 'schedule.backup',
      stop: 'SIGTERM aborts a backup cleanly (no partial snapshot is left); give it time to clean up.',
    });
  }
  if (opts.verifyOnCalendar !== undefined) {
    jobs.push({
      name: VERIFY_UNIT_NAME,
      subcommand: 'verify',
      what: 'test-restore of the newest snapshot into a scratch database',
      onCalendar: opts.verifyOnCalendar,
      scheduleKey: 'schedule.verify',
      stop: 'SIGTERM stops a verify cleanly (plaintext and the scratch database are removed); give it time to clean up.',
    });
  }
  if (opts.checkOnCalendar !== undefined) {
    jobs.push({
      name: CHECK_UNIT_NAME,
      subcommand: 'check',
      what: "every snapshot's sizes and SHA-256 sums against its manifest (no passphrase needed)",
      onCalendar: opts.checkOnCalendar,
      scheduleKey: 'schedule.check',
      stop: 'SIGTERM stops a check; it only reads the vault.',
    });
  }
  const files: Record<string, string> = {};
  for (const job of jobs) {
    files[`${job.name}.service`] = service(job, opts);
    files[`${job.name}.timer`] = timer(job);
  }
  return files;
}

/** `permafrost daemon` as a service, on a server (`device: false`) or a backup device. */
export function renderDaemonUnit(
  opts: Omit<UnitOptions, 'onCalendar' | 'verifyOnCalendar' | 'checkOnCalendar' | 'metricsTextfile'> & {
    device: boolean;
  },
): Record<string, string> {
  const exec = [...opts.command, '--config', opts.configPath, 'daemon'].map(quoteExecArg).join(' ');
  const writable = [opts.vaultDir, ...(opts.writablePaths ?? [])];
  const what = opts.device
    ? 'checks the snapshots that arrive, keeps .stversions within vault.keep, alerts when none arrive (dead-man alarm)'
    : 'backup, verify and check on schedule.*';
  const after = opts.device ? 'network-online.target' : 'network-online.target postgresql.service redis-server.service';
  return {
    [`${DAEMON_UNIT_NAME}.service`]: `# Generated by \`permafrost systemd --daemon\`; regenerate after changing vault.dir or vault.tempDir.
# The schedules are read from the config: after changing schedule.*, web or notify, \`systemctl reload ${DAEMON_UNIT_NAME}\`.
[Unit]
Description=permafrost daemon: ${what}; status page with a web section
Wants=network-online.target
After=${after}

[Service]
Type=simple
User=${opts.user}
ExecStart=${exec}
# SIGHUP: the daemon reads its config again (an invalid one is logged and the old one kept).
ExecReload=/bin/kill -HUP $MAINPID
# One log line per event; not a TTY, so JSON (journalctl -u ${DAEMON_UNIT_NAME} -o cat | jq).
Restart=on-failure
RestartSec=30s
# Exit 2 is a config problem: restarting will not fix it.
RestartPreventExitStatus=2
# SIGTERM aborts the run in flight cleanly (a backup leaves no partial snapshot) within --stop-grace (30 s).
TimeoutStopSec=60
UMask=0027
Nice=10
IOSchedulingClass=idle

# Hardening: the jobs read the system and Mastodon's files, and write only to the vault (and its temp folder).
NoNewPrivileges=yes
${hardening(writable)}
[Install]
WantedBy=multi-user.target
`,
  };
}

/** The sandbox every permafrost unit runs in: read the system, write only `writable` (the vault and its temp folder). */
function hardening(writable: readonly string[]): string {
  return `ProtectSystem=strict
ReadWritePaths=${[...new Set(writable)].map(quotePath).join(' ')}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
CapabilityBoundingSet=
SystemCallArchitectures=native
SystemCallFilter=@system-service
# Not MemoryDenyWriteExecute=: Node's JIT needs writable executable memory.
`;
}
