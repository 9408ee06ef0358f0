/**
 * Issue 19 item 2 / issue 21 item 4 / issue 23 item 4: one judgement of health. For a failed backup (PostgreSQL
 * stopped), a snapshot whose Redis part failed, a failed check (a part corrupted), an offsite
 * target whose last push failed, a stale offsite target and a stale backup device, the status page served by `permafrost daemon` (its HTML and /api/status.json),
 * `permafrost status`'s exit code and /metrics' permafrost_healthy all say the same; and when all
 * is well all of them say healthy.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Manifest } from '../../../src/vault/manifest.js';
import { openVault } from '../../../src/vault/layout.js';
import { EMPTY_TARGET_STATE, recordOffsiteTarget } from '../../../src/offsite/state.js';
import { makeWorkspace, runCli, startDaemonLog, type Workspace } from '../../harness/env.js';
import { deadPort } from '../../harness/http-sinks.js';
import { parsePromText, sampleValue } from '../../harness/prom-text.js';
import { destroyRedis, startRedis, type RedisServer } from '../../harness/redis.js';
import { clusterPerFile } from '../../harness/suite.js';
import { connected, startSyncthingPair, syncthingSection, type StPair } from '../../harness/syncthing.js';
import { waitFor } from '../../harness/wait.js';

const cluster = clusterPerFile('health');
/** Cron patterns that never fire during a test: only what the daemon serves is looked at. */
const NEVER = { backup: '0 0 1 1 *', verify: '0 0 1 1 *', check: '0 0 1 1 *' };

interface Verdicts {
  statusCode: number | null;
  statusCodes: string[];
  pageHealthy: boolean | undefined;
  pageCodes: string[];
  html: string;
  metricsHealthy: number | null;
  cliMetricsHealthy: number | null;
}

/** What `status`, the daemon's page (HTML and status.json), its /metrics and `permafrost metrics` each say about health. */
async function verdicts(configFile: string, port: number): Promise<Verdicts> {
  const status = await runCli(['--config', configFile, 'status', '--json']);
  // Read tolerantly, so that a version without the verdict fails on what it says, not on a missing field.
  const json = JSON.parse(status.stdout) as { issues?: Array<{ code: string; severity: string }> };
  const cli = parsePromText((await runCli(['--config', configFile, 'metrics'])).stdout);
  const daemon = startDaemonLog(configFile);
  try {
    await waitFor('the web service to start', () => daemon.lines().some((l) => l.event === 'service.start'), 30_000);
    const url = `http://127.0.0.1:${port}/`;
    const page = (await (await fetch(`${url}api/status.json`)).json()) as {
      healthy?: boolean;
      problems?: Array<{ code: string; severity: string }>;
    };
    const html = await (await fetch(url)).text();
    const metrics = parsePromText(await (await fetch(`${url}metrics`)).text());
    return {
      statusCode: status.code,
      statusCodes: (json.issues ?? []).filter((p) => p.severity === 'error').map((p) => p.code),
      pageHealthy: page.healthy,
      pageCodes: (page.problems ?? []).filter((p) => p.severity === 'error').map((p) => p.code),
      html,
      metricsHealthy: metrics.has('permafrost_healthy') ? sampleValue(metrics, 'permafrost_healthy') : null,
      cliMetricsHealthy: cli.has('permafrost_healthy') ? sampleValue(cli, 'permafrost_healthy') : null,
    };
  } finally {
    daemon.child.kill('SIGTERM');
    await daemon.result;
  }
}

/** All three (and the CLI's metrics) agree: healthy with no error, or unhealthy naming `code`. */
function expectAgreement(v: Verdicts, code: string | null): void {
  if (code === null) {
    expect(v.statusCodes, 'status problems').toEqual([]);
    expect(v.statusCode, 'status exit code').toBe(0);
    expect(v.pageHealthy, 'page').toBe(true);
    expect(v.html).toContain('<p class="ok" id="health">Healthy.</p>');
    expect(v.metricsHealthy, '/metrics permafrost_healthy').toBe(1);
    expect(v.cliMetricsHealthy, 'permafrost metrics').toBe(1);
    return;
  }
  expect(v.statusCode, 'status exit code').toBe(1);
  expect(v.statusCodes).toContain(code);
  expect(v.pageHealthy, 'page').toBe(false);
  expect(v.pageCodes).toEqual(v.statusCodes);
  expect(v.html).toContain(`<li data-code="${code}">`);
  expect(v.html).toMatch(/<p class="bad" id="health">Unhealthy: \d+ problems?\.<\/p>/);
  expect(v.metricsHealthy, '/metrics permafrost_healthy').toBe(0);
  expect(v.cliMetricsHealthy, 'permafrost metrics').toBe(0);
}

describe('one judgement of health on the server', () => {
  let ws: Workspace;
  let redis: RedisServer;
  let port: number;
  beforeAll(async () => {
    ws = makeWorkspace(cluster.get(), 'health');
    redis = startRedis();
    redis.cli('SET', 'k', 'v');
    port = await deadPort();
  });
  afterAll(() => {
    ws?.cleanup();
    if (redis) destroyRedis(redis);
  });
  afterEach(() => {
    // Every case leaves PostgreSQL running, whatever it asserted.
    try {
      cluster.get().start();
    } catch {
      // already running
    }
  });

  const config = (redisUrl = redis.url) =>
    ws.writeConfig({
      vault: { keep: { last: 20 } },
      extra: { redis: { url: redisUrl }, schedule: NEVER, web: { listen: `127.0.0.1:${port}` } },
    });
  const backup = async (): Promise<{ code: number | null; stderr: string }> => runCli(['--config', ws.configFile, 'backup']);

  it('all well: status 0, the page healthy, permafrost_healthy 1', async () => {
    config();
    expect((await backup()).code).toBe(0);
    expectAgreement(await verdicts(ws.configFile, port), null);
  });

  it('(a) a failed backup (PostgreSQL stopped, backup exit 1): all three say unhealthy; healthy again after a good backup', async () => {
    config();
    cluster.get().stop('fast');
    const r = await backup();
    expect(r.code, r.stderr).toBe(1);
    const v = await verdicts(ws.configFile, port);
    expectAgreement(v, 'backup-failed');
    expect(v.html).toMatch(/the last backup, \d+ s ago, failed: /);
    cluster.get().start();
    expect((await backup()).code).toBe(0);
    expectAgreement(await verdicts(ws.configFile, port), null);
  });

  it('(b) a snapshot whose Redis part failed (a wrong Redis URL, backup exit 1): all three say unhealthy', async () => {
    config(`unix://${path.join(ws.dir, 'no-redis.sock')}`);
    const r = await backup();
    expect(r.code, r.stderr).toBe(1);
    const v = await verdicts(ws.configFile, port);
    expectAgreement(v, 'part-failed');
    // Judged once: from the snapshot's manifest, not a second time as a failed run.
    expect(v.statusCodes).toEqual(['part-failed']);
    config();
    expect((await backup()).code).toBe(0);
    expectAgreement(await verdicts(ws.configFile, port), null);
  });

  it('(c) a failed check (a part corrupted, check exit 3): all three say unhealthy; healthy once the part is whole again', async () => {
    config();
    const list = JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as Array<{ id: string }>;
    const id = list[0]!.id;
    const manifest = JSON.parse(readFileSync(path.join(ws.vault, id, 'manifest.json'), 'utf8')) as Manifest;
    const file = path.join(ws.vault, id, manifest.files.find((f) => f.part === 'database')!.name);
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x01;
    writeFileSync(file, bad);
    expect((await runCli(['--config', ws.configFile, 'check'])).code).toBe(3);
    expectAgreement(await verdicts(ws.configFile, port), 'check-failed');
    writeFileSync(file, good);
    expect((await runCli(['--config', ws.configFile, 'check'])).code).toBe(0);
    expectAgreement(await verdicts(ws.configFile, port), null);
  });
});

describe('one judgement of health on the server: offsite targets', () => {
  let ws: Workspace;
  let port: number;
  beforeAll(async () => {
    ws = makeWorkspace(cluster.get(), 'health');
    port = await deadPort();
  });
  afterAll(() => ws?.cleanup());
  const config = (staleAfter?: number) =>
    ws.writeConfig({
      vault: { keep: { last: 20 } },
      extra: {
        schedule: NEVER,
        web: { listen: `127.0.0.1:${port}` },
        offsite: [
          { name: 'b2', endpoint: 'http://127.0.0.1:9', pathStyle: true, bucket: 'pf-health', ...(staleAfter ? { staleAfter } : {}) },
        ],
      },
    });
  const newestId = async (): Promise<string> =>
    (JSON.parse((await runCli(['--config', ws.configFile, 'list', '--json'])).stdout) as Array<{ id: string }>)[0]!.id;
  // wip-s3push's push is not on main yet: the state a push records is written here as it would write it.
  const record = (id: string | null, over: Partial<typeof EMPTY_TARGET_STATE> = {}) =>
    recordOffsiteTarget(openVault(ws.vault), 'b2', () => {
      const at = new Date().toISOString();
      return {
        ...EMPTY_TARGET_STATE,
        newestComplete: id === null ? null : { id, pushedAt: at },
        lastAttemptAt: at,
        lastSuccessAt: at,
        bytes: 4096,
        objects: 5,
        ...over,
      };
    });

  it('(e) an offsite target whose last push failed: all three say unhealthy; healthy once a push succeeds', async () => {
    config();
    expect((await runCli(['--config', ws.configFile, 'backup'])).code).toBe(0);
    const id = await newestId();
    const since = new Date(Date.now() - 3600_000).toISOString();
    await record(null, {
      lastSuccessAt: null,
      lastError: 'The bucket pf-health does not exist.',
      failingSince: since,
      bytes: 0,
      objects: 0,
    });
    const v = await verdicts(ws.configFile, port);
    expectAgreement(v, 'offsite-failed');
    expect(v.statusCodes).toEqual(['offsite-failed']);
    expect(v.html).toMatch(
      /the last push to offsite target b2 \(s3:\/\/pf-health\/\) \(failing for [^)]+\) failed: The bucket pf-health does not exist/,
    );
    expect(v.html).toMatch(/<tr data-target="b2">.*<span class="bad">failed<\/span>/);
    await record(id);
    const ok = await verdicts(ws.configFile, port);
    expectAgreement(ok, null);
    expect(ok.html).toMatch(/<tr data-target="b2">.*<span class="ok">up to date<\/span>/);
  });

  it('(f) an offsite target that has lacked a snapshot for longer than its staleAfter: all three say unhealthy; healthy once it holds it', async () => {
    config(1);
    const id = await newestId();
    expect((await runCli(['--config', ws.configFile, 'backup'])).code).toBe(0);
    const newer = await newestId();
    expect(newer).not.toBe(id);
    await record(id);
    await new Promise((res) => setTimeout(res, 1500));
    const v = await verdicts(ws.configFile, port);
    expectAgreement(v, 'offsite-stale');
    expect(v.statusCodes).toEqual(['offsite-stale']);
    expect(v.html).toContain(`offsite target b2 (s3://pf-health/) lacks 1 snapshot newer than its newest, ${id}, the oldest for`);
    await record(newer);
    expectAgreement(await verdicts(ws.configFile, port), null);
  });
});

describe('one judgement of health on a backup device', () => {
  let pair: StPair;
  let src: Workspace;
  let dev: Workspace;
  let port: number;
  const deviceConfig = (syncthing: Record<string, unknown> = {}) =>
    writeFileSync(
      dev.configFile,
      stringify({
        vault: { dir: dev.vault, keep: { last: 3 } },
        syncthing: { ...syncthingSection(pair, 'receiver'), ...syncthing },
        schedule: { check: NEVER.check },
        web: { listen: `127.0.0.1:${port}` },
      }),
    );

  beforeAll(async () => {
    pair = await startSyncthingPair();
    src = makeWorkspace(cluster.get(), 'health');
    dev = makeWorkspace(null, 'unused');
    port = await deadPort();
    src.writeConfig({ vault: { keep: { last: 3 } }, extra: { syncthing: syncthingSection(pair, 'source') } });
    deviceConfig();
    for (const w of [src, dev]) expect((await runCli(['--config', w.configFile, 'sync', 'apply'])).code).toBe(0);
    await waitFor('A and B to connect', () => connected(pair.a, pair.b), 15_000);
  }, 120_000);
  afterAll(async () => {
    await pair?.destroy();
    src?.cleanup();
    dev?.cleanup();
  });

  it('(d) a device whose newest snapshot is older than staleAfter: all three say unhealthy there; healthy while fresh', async () => {
    const r = await runCli(['--config', src.configFile, 'backup', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as Manifest;
    await waitFor(
      `snapshot ${m.id} complete on the device`,
      async () => (await runCli(['--config', dev.configFile, 'status', '--json'])).stdout.includes(`"id": "${m.id}"`),
      60_000,
      250,
    );
    const fresh = await verdicts(dev.configFile, port);
    expectAgreement(fresh, null);
    // Nothing only the server can fix is judged on a device: it never verifies and holds no secret.
    expect(fresh.html).not.toMatch(/verify-overdue|ever verified,/);

    deviceConfig({ staleAfter: 1 });
    await new Promise((res) => setTimeout(res, 1500));
    const stale = await verdicts(dev.configFile, port);
    expectAgreement(stale, 'stale');
    expect(stale.statusCodes).toEqual(['stale']);
    expect(stale.html).toContain(`the newest complete snapshot here, ${m.id}, is`);
  });
});
