/**
 * Two real Syncthing instances for tests and benchmarks, offline by construction:
 * - each home is generated, then its config.xml is patched to a safe config and re-read to
 *   verify every setting BEFORE the first `serve` (no discovery, relays, NAT, usage or crash
 *   reporting, no upgrades; BEP listener on 127.0.0.1; GUI/REST on a unix socket);
 * - both run inside ONE loopback-only network namespace made by a small launcher (`unshare -n`
 *   as root, `-rn` otherwise), so they reach each other over 127.0.0.1 and nothing else;
 * - the test process stays in the host namespace (where PostgreSQL's unix socket lives) and drives
 *   them through their unix sockets;
 * - they are stopped by PID with SIGTERM (STMONITORED=1: no monitor process to orphan).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { completionSchema, connectionsSchema, folderStatusSchema, pingSchema, systemStatusSchema } from '../../src/replicate/api.js';
import { SyncthingClient } from '../../src/replicate/client.js';
import { waitFor } from './wait.js';

const NET_FLAG = process.getuid?.() === 0 ? '-n' : '-rn';

export interface StInstance {
  name: string;
  home: string;
  /** GUI/REST unix socket: what permafrost's syncthing.url points at. */
  socket: string;
  apiKeyFile: string;
  /** BEP listen address inside the namespace; what the other side's config lists. */
  listen: string;
  id: string;
  api: SyncthingClient;
  log: string;
}

export interface StPair {
  root: string;
  a: StInstance;
  b: StInstance;
  running(): boolean;
  /** SIGTERM to the launcher, which SIGTERMs both instances by PID and waits for them. */
  stop(): Promise<void>;
  /** Stops (if running) and removes every temp file. */
  destroy(): Promise<void>;
}

/** What the launcher runs inside the namespace; paths come in as arguments, never interpolated. */
const LAUNCHER = `
set -u
ip link set lo up || { echo "launcher: cannot bring lo up" >&2; exit 1; }
if ip -o link show | awk -F': ' '{print $2}' | grep -vqx lo; then echo "launcher: ABORT, a non-loopback interface is visible" >&2; exit 1; fi
syncthing serve --home="$1" --no-browser --no-restart --no-upgrade >"$3" 2>&1 </dev/null & a=$!
syncthing serve --home="$2" --no-browser --no-restart --no-upgrade >"$4" 2>&1 </dev/null & b=$!
trap 'kill -TERM $a $b 2>/dev/null; wait $a $b; exit 0' TERM INT
echo "launcher: started $a $b" >&2
wait
`;

/** Each of these must be in config.xml before the first start; checked after patching. */
function safetyPatches(xml: string, socket: string, listen: string): { xml: string; checks: RegExp[] } {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const set = (x: string, tag: string, value: string): string => {
    const re = new RegExp(`<${tag}>[^<]*</${tag}>`, 'g');
    if (!re.test(x)) throw new Error(`syncthing harness: <${tag}> not found in the generated config.xml`);
    return x.replace(re, `<${tag}>${value}</${tag}>`);
  };
  let out = xml.replace(/(<gui\b[^>]*>[\s\S]*?<address>)[^<]*(<\/address>)/, `$1${socket}$2`);
  const values: Array<[string, string]> = [
    ['listenAddress', listen],
    ['globalAnnounceEnabled', 'false'],
    ['localAnnounceEnabled', 'false'],
    ['relaysEnabled', 'false'],
    ['natEnabled', 'false'],
    ['startBrowser', 'false'],
    ['urAccepted', '-1'],
    ['crashReportingEnabled', 'false'],
    ['autoUpgradeIntervalH', '0'],
    ['setLowPriority', 'false'],
    // Not safety: redial a dropped peer within seconds instead of a minute, so tests stay short.
    ['reconnectionIntervalS', '2'],
  ];
  for (const [tag, value] of values) out = set(out, tag, value);
  const checks = [
    new RegExp(`<gui\\b[^>]*>[\\s\\S]*?<address>${esc(socket)}</address>`),
    ...values.map(([tag, value]) => new RegExp(`<${tag}>${esc(value)}</${tag}>`)),
  ];
  return { xml: out, checks };
}

function verifySafe(file: string, checks: RegExp[]): void {
  const xml = readFileSync(file, 'utf8');
  for (const re of checks) if (!re.test(xml)) throw new Error(`syncthing harness: ${file} lacks ${re.source}; refusing to start`);
  // Exactly one listen address, on loopback.
  const listens = [...xml.matchAll(/<listenAddress>([^<]*)<\/listenAddress>/g)].map((m) => m[1]);
  if (listens.length !== 1 || !listens[0]!.startsWith('tcp://127.0.0.1:')) {
    throw new Error(`syncthing harness: ${file} listens on ${listens.join(', ')}; refusing to start`);
  }
}

function prepareHome(root: string, name: string, port: number): Omit<StInstance, 'id' | 'api'> {
  const home = path.join(root, `${name}-home`);
  const env = { ...process.env, STNOUPGRADE: '1', STNODEFAULTFOLDER: '1' };
  // generate does no networking, but it runs in a throwaway loopback-only namespace all the same.
  const gen = spawnSync(
    'unshare',
    [NET_FLAG, '--', 'syncthing', 'generate', `--home=${home}`, '--no-default-folder', '--skip-port-probing'],
    {
      encoding: 'utf8',
      env,
    },
  );
  if (gen.status !== 0) throw new Error(`syncthing generate failed (${gen.status}): ${gen.stderr}`);
  const file = path.join(home, 'config.xml');
  const socket = path.join(root, `${name}.sock`);
  const listen = `tcp://127.0.0.1:${port}`;
  const { xml, checks } = safetyPatches(readFileSync(file, 'utf8'), socket, listen);
  writeFileSync(file, xml, { mode: 0o600 });
  verifySafe(file, checks);
  const key = /<apikey>([^<]+)<\/apikey>/.exec(xml)?.[1];
  if (!key) throw new Error(`syncthing harness: no API key in ${file}`);
  const apiKeyFile = path.join(root, `${name}.key`);
  writeFileSync(apiKeyFile, `${key}\n`, { mode: 0o600 });
  return { name, home, socket, apiKeyFile, listen, log: path.join(root, `${name}.log`) };
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
});

/** Starts instances A (port 22001) and B (22002) in one fresh loopback-only namespace. */
export async function startSyncthingPair(opts: { hashing?: 'minio' | 'default' } = {}): Promise<StPair> {
  const root = mkdtempSync(path.join(tmpdir(), 'permafrost-st-'));
  chmodSync(root, 0o755);
  const pa = prepareHome(root, 'A', 22001);
  const pb = prepareHome(root, 'B', 22002);
  const env: NodeJS.ProcessEnv = { ...process.env, STNOUPGRADE: '1', STMONITORED: '1', STNODEFAULTFOLDER: '1' };
  // Skips a 1 s hashing benchmark at startup; throughput is the same on SHA-NI machines.
  if ((opts.hashing ?? 'minio') === 'minio') env.STHASHING = 'minio';
  const launcher = spawn('unshare', [NET_FLAG, '--', 'bash', '-c', LAUNCHER, 'launcher', pa.home, pb.home, pa.log, pb.log], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.add(launcher);
  let launcherErr = '';
  launcher.stderr.on('data', (d: Buffer) => (launcherErr += d.toString()));
  const exited = new Promise<void>((resolve) => launcher.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (launcher.exitCode !== null || launcher.signalCode !== null) return;
    launcher.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
    clearTimeout(timer);
    if (launcher.exitCode === null && launcher.signalCode === null)
      throw new Error(`syncthing launcher ${launcher.pid} did not stop within 20 s`);
    live.delete(launcher);
  };
  try {
    const mk = async (p: Omit<StInstance, 'id' | 'api'>): Promise<StInstance> => {
      const api = new SyncthingClient({ url: p.socket, apiKey: readFileSync(p.apiKeyFile, 'utf8').trim(), timeoutMs: 60_000 });
      await waitFor(
        `${p.name} to answer ping`,
        async () => {
          if (launcher.exitCode !== null) throw new Error(`launcher exited ${launcher.exitCode}: ${launcherErr}`);
          return (await api.get('/rest/system/ping', pingSchema)).ping === 'pong';
        },
        30_000,
      );
      const id = (await api.get('/rest/system/status', systemStatusSchema)).myID;
      return { ...p, id, api };
    };
    const [a, b] = await Promise.all([mk(pa), mk(pb)]);
    return {
      root,
      a,
      b,
      running: () => launcher.exitCode === null && launcher.signalCode === null,
      stop,
      async destroy() {
        await stop();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/** Whether `dev` is connected as seen from `from`. */
export async function connected(from: StInstance, dev: StInstance): Promise<boolean> {
  const c = await from.api.get('/rest/system/connections', connectionsSchema);
  return Boolean(c.connections[dev.id]?.connected);
}

/**
 * The reference's "really synced" test for one folder from a (sender) to b (receiver):
 * completion 100 with nothing needed, both idle, and b's global counts equal to a's.
 */
export async function folderSynced(a: StInstance, b: StInstance, folder: string): Promise<boolean> {
  const status = folderStatusSchema.extend({ needTotalItems: z.number(), globalFiles: z.number(), globalBytes: z.number() });
  const c = await a.api.get(`/rest/db/completion?folder=${folder}&device=${b.id}`, completionSchema);
  const sa = await a.api.get(`/rest/db/status?folder=${folder}`, status);
  const sb = await b.api.get(`/rest/db/status?folder=${folder}`, status);
  return (
    c.completion === 100 &&
    c.needItems === 0 &&
    c.needDeletes === 0 &&
    sa.state === 'idle' &&
    sb.state === 'idle' &&
    sb.needTotalItems === 0 &&
    sb.globalFiles === sa.globalFiles &&
    sb.globalBytes === sa.globalBytes
  );
}

/** Re-exported for bench/replication.ts, which imports it from here. */
export { waitFor };

/**
 * The `syncthing` config section of one side of `pair`: A is the source sharing with B (device
 * "nas"), B the receiver taking from A (device "server"). Tests spread it and add their own keys.
 */
export function syncthingSection(pair: StPair, side: 'source' | 'receiver') {
  const [self, peer, name] = side === 'source' ? [pair.a, pair.b, 'nas'] : [pair.b, pair.a, 'server'];
  return { url: self.socket, apiKeyFile: self.apiKeyFile, role: side, devices: [{ name, id: peer.id, addresses: [peer.listen] }] };
}
