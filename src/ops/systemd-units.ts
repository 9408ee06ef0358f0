import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { UserError } from '../errors.js';
import { cronToOnCalendar, DAEMON_UNIT_NAME, renderDaemonUnit, renderUnits } from '../schedule/systemd.js';
import { getentPasswd } from '../tools/getent.js';
import { writeFileAtomic } from '../vault/fs-durable.js';

interface Account {
  name: string;
  uid: number;
}

/** Looks an account up by name or uid through NSS (getent), falling back to /etc/passwd. */
async function lookupAccount(key: string | number): Promise<Account | null> {
  let line: string | undefined;
  try {
    line = await getentPasswd(key);
  } catch {
    try {
      line = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((l) => {
          const [name, , uid] = l.split(':');
          return name === String(key) || uid === String(key);
        });
    } catch {
      line = undefined;
    }
  }
  const [name, , uid] = (line ?? '').split(':');
  return name && uid !== undefined && /^\d+$/.test(uid) ? { name, uid: Number(uid) } : null;
}

/** The account that owns vault.dir, or the one named by --user (which must exist). */
async function unitUser(config: Config, flag?: string): Promise<string> {
  if (flag !== undefined) {
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(flag)) throw new UserError(`--user: "${flag}" is not a valid account name.`);
    if (!(await lookupAccount(flag))) throw new UserError(`--user: there is no account "${flag}" on this host; create it or name another.`);
    return flag;
  }
  let uid: number;
  try {
    uid = statSync(config.vault.dir).uid;
  } catch {
    throw new UserError(
      `vault.dir ${config.vault.dir} does not exist yet: create it owned by the account that runs backups (e.g. \`install -d -o mastodon -m 0750 ${config.vault.dir}\`), or pass --user.`,
    );
  }
  const account = await lookupAccount(uid);
  if (!account) throw new UserError(`vault.dir ${config.vault.dir} is owned by uid ${uid}, which has no account name; pass --user.`);
  return account.name;
}

/**
 * The command the units run: `permafrost` as found on `pathEnv` (what scripts/install.sh links into
 * /usr/local/bin), so the units survive a rebuild or move of the checkout; else `self` (this very
 * CLI, node and script) with a warning saying how to install it.
 */
export function installedCommand(pathEnv: string | undefined, self: readonly string[]): { command: string[]; warning: string | null } {
  for (const dir of (pathEnv ?? '').split(':')) {
    if (!path.isAbsolute(dir)) continue; // a relative PATH entry means nothing to systemd
    const file = path.join(dir, 'permafrost');
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return { command: [file], warning: null };
    } catch {
      continue;
    }
  }
  return {
    command: [...self],
    warning: `permafrost is not on PATH, so the units run ${self.join(' ')}; run \`bash scripts/install.sh\` (it links permafrost into /usr/local/bin) and generate them again.`,
  };
}

export interface SystemdUnits {
  user: string;
  /** `daemon`: one service running `permafrost daemon`; `timers`: a oneshot service and timer per job. */
  mode: 'daemon' | 'timers';
  /** OnCalendar= of each timer (timers only): backup on a server, verify where it runs, check. */
  onCalendar?: string;
  verifyOnCalendar?: string;
  checkOnCalendar?: string;
  files: Record<string, string>;
  /** What the admin should know about this choice (printed as warnings). */
  warnings: string[];
}

/**
 * The units for this config, running `command` (the permafrost CLI) as `user`: with `daemon`, one
 * service for `permafrost daemon` (server or backup device); else a service and timer for each job
 * the daemon would run (backup, verify, check on a server; check, and verify with verify.connection,
 * on a device).
 */
export async function systemdUnitsFor(
  config: Config,
  opts: { user?: string; command: readonly string[]; metricsTextfile?: string; daemon?: boolean },
): Promise<SystemdUnits> {
  if (opts.metricsTextfile !== undefined && !opts.metricsTextfile.endsWith('.prom')) {
    throw new UserError(`--metrics-textfile: ${opts.metricsTextfile} must end in .prom, or node_exporter's textfile collector ignores it.`);
  }
  if (opts.daemon && opts.metricsTextfile !== undefined) {
    throw new UserError(
      '--metrics-textfile is for timers; the daemon serves /metrics itself: add a web section (web: { listen: "127.0.0.1:9580" }) and scrape it.',
    );
  }
  const tz = config.schedule.timezone;
  const device = config.role === 'receiver';
  const base = {
    command: opts.command,
    configPath: config.configPath,
    vaultDir: config.vault.dir,
    writablePaths: config.vault.tempDir ? [config.vault.tempDir] : [],
  };
  if (opts.daemon) {
    const user = await unitUser(config, opts.user);
    return { user, mode: 'daemon', files: renderDaemonUnit({ ...base, user, device }), warnings: [] };
  }
  const onCalendar = device ? undefined : cronToOnCalendar(config.schedule.backup, tz);
  const verifyOnCalendar =
    !device || config.verify?.connection ? cronToOnCalendar(config.schedule.verify, tz, 'schedule.verify') : undefined;
  const checkOnCalendar = cronToOnCalendar(config.schedule.check, tz, 'schedule.check');
  const user = await unitUser(config, opts.user);
  const files = renderUnits({
    ...base,
    user,
    onCalendar,
    verifyOnCalendar,
    checkOnCalendar,
    ...(opts.metricsTextfile ? { metricsTextfile: path.resolve(opts.metricsTextfile) } : {}),
  });
  const warnings = device
    ? [
        `on a backup device the dead-man alarm (no snapshot arrived for syncthing.staleAfter) and vault.keep for .stversions run only in the daemon; use --daemon for ${DAEMON_UNIT_NAME}.service instead of timers.`,
      ]
    : [];
  return {
    user,
    mode: 'timers',
    ...(onCalendar ? { onCalendar } : {}),
    ...(verifyOnCalendar ? { verifyOnCalendar } : {}),
    checkOnCalendar,
    files,
    warnings,
  };
}

/** Writes the unit files into `dir` (atomically, mode 0644); returns their paths. */
export async function installUnits(dir: string, files: Record<string, string>): Promise<string[]> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const written: string[] = [];
    for (const [name, text] of Object.entries(files)) {
      const file = path.join(dir, name);
      await writeFileAtomic(file, text, 0o644);
      written.push(file);
    }
    return written;
  } catch (err) {
    throw new UserError(`Cannot write systemd units into ${dir}: ${(err as Error).message}; run as root, or choose another folder.`, {
      cause: err,
    });
  }
}
