/**
 * doctor against a real Syncthing (the harness' offline pair): the folders must match what
 * `sync apply` would make, and Syncthing's user must be able to read the vault and the media.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessProblems } from '../../../src/doctor/syncthing.js';
import type { DoctorReport } from '../../../src/ops/doctor.js';
import { ClusterFixture, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { startSyncthingPair, type StPair, syncthingSection } from '../../harness/syncthing.js';

const cluster = new ClusterFixture();
let pair: StPair;
let ws: Workspace;
let media: string;

beforeAll(async () => {
  cluster.createDb('source');
  pair = await startSyncthingPair();
  ws = makeWorkspace(cluster.get(), 'source');
  media = path.join(ws.dir, 'system');
  mkdirSync(path.join(media, 'accounts'), { recursive: true });
  ws.writeConfig({
    extra: {
      media: { dir: media },
      syncthing: {
        ...syncthingSection(pair, 'source'),
      },
    },
  });
}, 120_000);
afterAll(async () => {
  await pair?.destroy();
  ws?.cleanup();
  cluster.destroy();
});

async function doctor(): Promise<{ code: number | null; report: DoctorReport }> {
  const r = await runCli(['--config', ws.configFile, 'doctor', '--json']);
  return { code: r.code, report: JSON.parse(r.stdout) as DoctorReport };
}
const line = (r: DoctorReport, check: string) => r.lines.find((l) => l.check === check);

describe('doctor and Syncthing', () => {
  it('FAIL with the pending changes before `sync apply`, OK after it', async () => {
    const before = await doctor();
    expect(before.code).toBe(1);
    expect(line(before.report, 'syncthing')).toMatchObject({ status: 'fail', fix: 'run `permafrost sync apply`' });
    expect(line(before.report, 'syncthing')?.message).toMatch(/does not match the config \(\d+ changes? pending: .*nas/);

    const apply = await runCli(['--config', ws.configFile, 'sync', 'apply']);
    expect(apply.code, apply.stderr).toBe(0);
    const after = await doctor();
    expect(after.report.lines.filter((l) => l.status === 'fail')).toEqual([]);
    expect(after.code).toBe(0);
    expect(line(after.report, 'syncthing')?.status).toBe('ok');
    // The harness runs Syncthing as root, found as the owner of its GUI socket.
    expect(line(after.report, 'permissions')).toMatchObject({
      status: 'ok',
      message: expect.stringMatching(/uid 0\) can read the vault and the media/) as unknown,
    });
  });

  it('an unreachable Syncthing API is a FAIL line', async () => {
    ws.writeConfig({
      extra: {
        media: { dir: media },
        syncthing: { url: path.join(ws.dir, 'no-such.sock'), apiKeyFile: pair.a.apiKeyFile, role: 'source', devices: [] },
      },
    });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(line(r.report, 'syncthing')).toMatchObject({ status: 'fail', message: expect.stringMatching(/unreachable/) as unknown });
  });

  it("names what another user (as Syncthing's) cannot read, by the real file modes", async () => {
    const vault = path.join(ws.dir, 'perm-vault');
    mkdirSync(path.join(vault, 'inner'), { recursive: true });
    writeFileSync(path.join(vault, 'inner', 'f'), 'x', { mode: 0o600 });
    chmodSync(vault, 0o750);
    const nobody = { uid: 65534, gids: [65534] };
    const problems = await accessProblems(vault, nobody, [path.join(vault, 'inner', 'f')]);
    expect(problems).toEqual([`${vault} (cannot list: mode 0750)`, `${path.join(vault, 'inner', 'f')} (cannot read: mode 0600)`]);
    chmodSync(vault, 0o755);
    chmodSync(path.join(vault, 'inner', 'f'), 0o644);
    expect(await accessProblems(vault, nobody, [path.join(vault, 'inner', 'f')])).toEqual([]);
  });
});
