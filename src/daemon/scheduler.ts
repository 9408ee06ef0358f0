/**
 * The scheduler at the heart of `permafrost daemon`: runs jobs on cron patterns (croner), one job
 * at a time, and starts/stops extra services (the status page, /metrics) with it.
 *
 * Extension points, for code that composes the daemon (src/daemon/jobs.ts):
 * - `ScheduledJob`: `{ name, cron, run(signal) }`. `run` must honour `signal` (stop requested) and
 *   may return a small JSON-able summary, logged with the run (a `warnings: string[]` field in it
 *   makes the line a warning).
 * - `DaemonService`: `{ name, start(), stop() }`, e.g. an HTTP server. Services start before the
 *   first job is scheduled and stop after the last run ended; `daemon.status()` gives them the
 *   state of every job (running, last run, next run) to show.
 *
 * Runs never overlap: when a job's time comes while any job is still running, the run waits
 * (`run.queued`) and starts right after the current one ends, waiting runs in the order their time
 * came. At most one run per job waits: a job whose time comes again while it already waits is
 * folded into that run (`run.coalesced`), so a slow run never piles up a backlog. A run that finds
 * the vault locked by another process (BusyError) is `skipped`: the next turn tries again. A failing
 * run is logged and the daemon goes on. `stop()` drops the waiting runs (`run.dropped`), aborts
 * the run in flight through its AbortSignal (a backup then discards its partial folder: no
 * snapshot is written) and waits up to `stopGraceMs` for it to end; `stop(reason, { abort: false })`
 * lets it finish instead (a config reload).
 */
import { Cron } from 'croner';
import { BusyError, PermafrostError, errorMessage } from '../errors.js';

export interface ScheduledJob {
  name: string;
  /** Cron pattern, 5 fields or 6 with seconds first (croner syntax). */
  cron: string;
  /** One run. Must stop promptly when `signal` aborts; the resolved value is logged as `result`. */
  run(signal: AbortSignal): Promise<unknown>;
}

export interface DaemonService {
  name: string;
  /** May resolve with the address it serves, logged with `service.start`. */
  start(): Promise<void | { url?: string }>;
  stop(): Promise<void>;
}

/** The subset of a pino logger the daemon writes to: one JSON line per call. */
export interface DaemonLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RunRecord {
  runId: number;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** `skipped`: another process held the vault (BusyError). */
  outcome: 'ok' | 'failed' | 'aborted' | 'skipped';
  error?: string;
  result?: unknown;
}

export interface JobStatus {
  name: string;
  cron: string;
  timezone: string;
  running: boolean;
  runningSince: string | null;
  nextRun: string | null;
  lastRun: RunRecord | null;
  /** Last run that ended without error. */
  lastSuccess: RunRecord | null;
  counts: { ok: number; failed: number; aborted: number; skipped: number };
}

/** `skipped` here: the daemon was not running, or stopped before the run's turn came. */
export type RunOutcome = RunRecord | { runId: number; outcome: 'skipped'; reason: string };

export interface DaemonOptions {
  jobs: ScheduledJob[];
  /** IANA timezone the cron patterns are read in. */
  timezone: string;
  logger: DaemonLogger;
  services?: DaemonService[];
  /** How long stop() waits for an aborted run to end before leaving it behind (default 30 s). */
  stopGraceMs?: number;
}

interface JobState {
  job: ScheduledJob;
  cron?: Cron;
  status: JobStatus;
}

/** A run whose time came while another was going: it starts when its turn comes. */
interface Waiting {
  job: string;
  runId: number;
  trigger: 'schedule' | 'manual';
  since: Date;
  outcome: Promise<RunOutcome>;
  resolve(outcome: RunOutcome): void;
}

interface Running {
  job: string;
  runId: number;
  startedAt: Date;
  controller: AbortController;
  done: Promise<RunRecord>;
}

export class Daemon {
  private readonly jobs = new Map<string, JobState>();
  private readonly services: DaemonService[];
  private readonly logger: DaemonLogger;
  private readonly timezone: string;
  private readonly stopGraceMs: number;
  private running: Running | null = null;
  private readonly waiting: Waiting[] = [];
  private stopped: Promise<void> | null = null;
  private keepAlive: NodeJS.Timeout | undefined;
  private nextRunId = 1;
  private state: 'new' | 'started' | 'stopping' | 'stopped' = 'new';

  constructor(opts: DaemonOptions) {
    this.logger = opts.logger;
    this.timezone = opts.timezone;
    this.stopGraceMs = opts.stopGraceMs ?? 30_000;
    this.services = [...(opts.services ?? [])];
    for (const job of opts.jobs) this.addJob(job);
  }

  /** Adds a job; only before start(). */
  addJob(job: ScheduledJob): void {
    if (this.state !== 'new') throw new Error('Daemon.addJob after start()');
    if (this.jobs.has(job.name)) throw new Error(`duplicate job name ${job.name}`);
    this.jobs.set(job.name, {
      job,
      status: {
        name: job.name,
        cron: job.cron,
        timezone: this.timezone,
        running: false,
        runningSince: null,
        nextRun: null,
        lastRun: null,
        lastSuccess: null,
        counts: { ok: 0, failed: 0, aborted: 0, skipped: 0 },
      },
    });
  }

  /** Adds a service (e.g. the status page) started and stopped with the daemon; only before start(). */
  addService(service: DaemonService): void {
    if (this.state !== 'new') throw new Error('Daemon.addService after start()');
    this.services.push(service);
  }

  /** Starts the services, then the schedules. A service that fails to start stops the others and throws. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('Daemon.start twice');
    this.state = 'started';
    const started: DaemonService[] = [];
    for (const svc of this.services) {
      try {
        const url = (await svc.start())?.url;
        started.push(svc);
        this.logger.info(
          { event: 'service.start', service: svc.name, ...(url ? { url } : {}) },
          url ? `service ${svc.name} started: ${url}` : `service ${svc.name} started`,
        );
      } catch (err) {
        for (const s of started.reverse()) await s.stop().catch(() => undefined);
        this.state = 'stopped';
        throw err;
      }
    }
    for (const st of this.jobs.values()) {
      try {
        st.cron = new Cron(st.job.cron, { timezone: this.timezone, mode: '5-or-6-parts' }, () => {
          void this.tick(st.job.name, 'schedule');
        });
      } catch (err) {
        await this.stop('invalid schedule');
        throw new PermafrostError('user', `Job ${st.job.name}: cron pattern "${st.job.cron}" is not valid: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      st.status.nextRun = st.cron.nextRun()?.toISOString() ?? null;
    }
    // Cron timers keep the process alive only while a job is scheduled; a backup device may have none and must still run until stopped.
    this.keepAlive = setInterval(() => undefined, 2 ** 31 - 1);
    this.logger.info(
      {
        event: 'daemon.start',
        timezone: this.timezone,
        jobs: [...this.jobs.values()].map((s) => ({ name: s.job.name, cron: s.job.cron, nextRun: s.status.nextRun })),
      },
      'daemon started',
    );
  }

  /** Runs `name` now, as if its time had come: after the run in progress, if any. Resolves when that run ended. */
  trigger(name: string): Promise<RunOutcome> {
    return this.tick(name, 'manual');
  }

  /** Every job's state, for a status page. */
  status(): JobStatus[] {
    return [...this.jobs.values()].map((st) => ({
      ...st.status,
      nextRun: st.cron?.nextRun()?.toISOString() ?? null,
      counts: { ...st.status.counts },
    }));
  }

  /**
   * Stops scheduling and drops the runs waiting for their turn; then aborts the run in flight and
   * waits for it (up to stopGraceMs), or with `abort: false` waits for it to finish; then stops the
   * services. A stop() while a non-aborting one waits aborts the run after all.
   */
  stop(reason: string, opts: { abort?: boolean } = {}): Promise<void> {
    const abort = opts.abort ?? true;
    if (this.stopped) {
      if (abort) this.abortRunning(reason);
      return this.stopped;
    }
    this.stopped = this.shutdown(reason, abort);
    return this.stopped;
  }

  private abortRunning(reason: string): void {
    this.running?.controller.abort(new Error(`daemon stopping (${reason})`));
  }

  private async shutdown(reason: string, abort: boolean): Promise<void> {
    this.state = 'stopping';
    for (const st of this.jobs.values()) st.cron?.stop();
    const run = this.running;
    this.logger.info(
      {
        event: 'daemon.stopping',
        reason,
        inFlight: run ? { job: run.job, runId: run.runId } : null,
        ...(abort ? {} : { waitsForRun: true }),
      },
      run && !abort ? `daemon stopping (${reason}) after ${run.job} run ${run.runId} ends` : `daemon stopping (${reason})`,
    );
    for (const w of this.waiting.splice(0)) {
      const why = `daemon stopping (${reason}) before its turn came`;
      this.logger.info({ event: 'run.dropped', job: w.job, runId: w.runId, reason: why }, `${w.job} run ${w.runId} dropped: ${why}`);
      w.resolve({ runId: w.runId, outcome: 'skipped', reason: why });
    }
    if (run) {
      if (abort) this.abortRunning(reason);
      // Until it ends, or a stop() that aborts comes after all; then the grace period below applies.
      else
        await new Promise<void>((r) => {
          void run.done.then(() => r());
          run.controller.signal.addEventListener('abort', () => r(), { once: true });
        });
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([
        run.done.then(() => true),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), this.stopGraceMs);
        }),
      ]);
      clearTimeout(timer);
      if (!ended) {
        this.logger.error(
          { event: 'run.abandoned', job: run.job, runId: run.runId, graceMs: this.stopGraceMs },
          `${run.job} run ${run.runId} did not stop within ${this.stopGraceMs} ms; leaving it (a partial folder, if any, is removed by the next run)`,
        );
      }
    }
    for (const svc of [...this.services].reverse()) {
      try {
        await svc.stop();
        this.logger.info({ event: 'service.stop', service: svc.name }, `service ${svc.name} stopped`);
      } catch (err) {
        this.logger.error({ event: 'service.stop', service: svc.name, error: errorMessage(err) }, `service ${svc.name} failed to stop`);
      }
    }
    clearInterval(this.keepAlive);
    this.state = 'stopped';
    this.logger.info({ event: 'daemon.stop', reason }, 'daemon stopped');
  }

  private tick(name: string, trigger: 'schedule' | 'manual'): Promise<RunOutcome> {
    const st = this.jobs.get(name);
    if (!st) throw new Error(`no job named ${name}`);
    if (this.state !== 'started') {
      return Promise.resolve({ runId: this.nextRunId++, outcome: 'skipped', reason: 'daemon is not running' });
    }
    const busy = this.running;
    if (!busy) return this.begin(st, trigger, this.nextRunId++);
    const already = this.waiting.find((w) => w.job === name);
    if (already) {
      // One waiting run per job: a second turn while it waits would only repeat it.
      this.logger.info(
        { event: 'run.coalesced', job: name, runId: already.runId, trigger },
        `${name}: its time came again while run ${already.runId} waits; that run covers it`,
      );
      return already.outcome;
    }
    const runId = this.nextRunId++;
    let resolve!: (o: RunOutcome) => void;
    const outcome = new Promise<RunOutcome>((r) => (resolve = r));
    this.waiting.push({ job: name, runId, trigger, since: new Date(), outcome, resolve });
    const reason = `${busy.job} run ${busy.runId} in progress since ${busy.startedAt.toISOString()}`;
    this.logger.info(
      { event: 'run.queued', job: name, runId, trigger, after: { job: busy.job, runId: busy.runId }, reason },
      `${name} run ${runId} waits: ${reason}`,
    );
    return outcome;
  }

  /** Starts a run now; when it ends, the first waiting run starts. */
  private begin(st: JobState, trigger: 'schedule' | 'manual', runId: number): Promise<RunRecord> {
    const controller = new AbortController();
    const startedAt = new Date();
    const done = this.execute(st, { runId, trigger, controller, startedAt }).finally(() => {
      this.running = null;
      st.status.running = false;
      st.status.runningSince = null;
      st.status.nextRun = st.cron?.nextRun()?.toISOString() ?? null;
      this.next();
    });
    this.running = { job: st.job.name, runId, startedAt, controller, done };
    st.status.running = true;
    st.status.runningSince = startedAt.toISOString();
    return done;
  }

  private next(): void {
    if (this.state !== 'started') return;
    const w = this.waiting.shift();
    if (!w) return;
    const st = this.jobs.get(w.job)!;
    this.begin(st, w.trigger, w.runId).then(
      (record) => w.resolve(record),
      (err: unknown) => w.resolve({ runId: w.runId, outcome: 'skipped', reason: errorMessage(err) }),
    );
  }

  private async execute(
    st: JobState,
    run: { runId: number; trigger: string; controller: AbortController; startedAt: Date },
  ): Promise<RunRecord> {
    const { runId, trigger, controller } = run;
    const base = { job: st.job.name, runId, trigger };
    this.logger.info({ ...base, event: 'run.start' }, `${st.job.name} run started`);
    let record: RunRecord;
    try {
      // A job that throws synchronously is a failed run too.
      const result = await Promise.resolve().then(() => st.job.run(controller.signal));
      record = this.record(run, 'ok', { result });
      st.status.lastSuccess = record;
      st.status.counts.ok++;
      const warnings = (result as { warnings?: unknown } | undefined)?.warnings;
      const level = Array.isArray(warnings) && warnings.length > 0 ? 'warn' : 'info';
      this.logger[level](
        { ...base, event: 'run.finish', outcome: 'ok', durationMs: record.durationMs, result },
        `${st.job.name} run finished`,
      );
    } catch (err) {
      if (controller.signal.aborted) {
        record = this.record(run, 'aborted', { error: errorMessage(err) });
        st.status.counts.aborted++;
        this.logger.warn(
          { ...base, event: 'run.abort', outcome: 'aborted', durationMs: record.durationMs, error: record.error },
          `${st.job.name} run aborted`,
        );
      } else if (err instanceof BusyError) {
        // Another process (a manual backup, a systemd timer) holds the vault: same as a late run.
        record = this.record(run, 'skipped', { error: errorMessage(err) });
        st.status.counts.skipped++;
        this.logger.warn({ ...base, event: 'run.skipped', reason: record.error }, `${st.job.name} run skipped: ${record.error}`);
        st.status.lastRun = record;
        return record;
      } else {
        record = this.record(run, 'failed', { error: errorMessage(err) });
        st.status.counts.failed++;
        const details = err instanceof PermafrostError ? err.details : undefined;
        this.logger.error(
          {
            ...base,
            event: 'run.fail',
            outcome: 'failed',
            durationMs: record.durationMs,
            error: record.error,
            ...(details?.length ? { details } : {}),
          },
          `${st.job.name} run failed`,
        );
      }
    }
    st.status.lastRun = record;
    return record;
  }

  private record(
    run: { runId: number; startedAt: Date },
    outcome: RunRecord['outcome'],
    extra: { error?: string; result?: unknown },
  ): RunRecord {
    const { runId, startedAt } = run;
    const finished = new Date();
    return {
      runId,
      startedAt: startedAt.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - startedAt.getTime(),
      outcome,
      ...extra,
    };
  }
}
