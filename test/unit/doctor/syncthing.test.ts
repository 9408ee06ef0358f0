import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessProblems, checkSyncthing, mayAccess, parseProcStatus, syncthingIdentity } from '../../../src/doctor/syncthing.js';
import { syncthingSchema } from '../../../src/config/schema-replicate.js';
import { Secret } from '../../../src/config/secret-values.js';
import type { Config } from '../../../src/config/schema.js';

describe("mayAccess (what the kernel decides for Syncthing's user)", () => {
  const who = { uid: 1001, gids: [1001, 50] };
  it.each([
    [{ uid: 1001, gid: 0, mode: 0o700 }, 'rx', true],
    [{ uid: 1000, gid: 50, mode: 0o750 }, 'rx', true],
    [{ uid: 1000, gid: 50, mode: 0o700 }, 'rx', false],
    [{ uid: 1000, gid: 1000, mode: 0o751 }, 'x', true],
    [{ uid: 1000, gid: 1000, mode: 0o751 }, 'r', false],
    [{ uid: 1000, gid: 1000, mode: 0o644 }, 'r', true],
    [{ uid: 1000, gid: 50, mode: 0o604 }, 'r', false], // group bits decide for a member, even if others may read
    [{ uid: 1001, gid: 1001, mode: 0o077 }, 'r', false],
  ])('%o need %s → %s', (st, need, expected) => expect(mayAccess(st, who, need)).toBe(expected));

  it('root may do anything', () => expect(mayAccess({ uid: 5, gid: 5, mode: 0 }, { uid: 0, gids: [0] }, 'rx')).toBe(true));

  it('reads uid and groups from /proc/PID/status', () => {
    const status = 'Name:\tsyncthing\nUid:\t113\t113\t113\t113\nGid:\t120\t120\t120\t120\nGroups:\t33 120 \n';
    expect(parseProcStatus(status)).toEqual({ uid: 113, gids: [120, 33, 120] });
    expect(parseProcStatus('Name:\tx\nUid:\t5\t5\t5\t5\nGid:\t6\t6\t6\t6\nGroups:\n')).toEqual({ uid: 5, gids: [6] });
  });
});

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-doctor-st-'));
let sockServer: Server;
const sock = path.join(dir, 'gui.sock');
beforeAll(async () => {
  sockServer = createServer((c) => c.end());
  await new Promise<void>((r) => sockServer.listen(sock, r));
});
afterAll(async () => {
  await new Promise((r) => sockServer.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe("accessProblems (what Syncthing's user cannot reach, on real files)", () => {
  // Someone who is neither the owner nor in the group: only the "other" bits apply.
  const stranger = { uid: 4_000_000, gids: [4_000_000] };

  it('a folder others may not list, an entry they may not read, an ancestor they may not enter', async () => {
    const vault = path.join(dir, 'outer', 'vault');
    mkdirSync(vault, { recursive: true });
    chmodSync(dir, 0o755);
    writeFileSync(path.join(vault, 'secret'), 'x');
    writeFileSync(path.join(vault, 'open'), 'x');
    chmodSync(path.join(vault, 'secret'), 0o600);
    chmodSync(path.join(vault, 'open'), 0o644);
    chmodSync(vault, 0o750);
    chmodSync(path.join(dir, 'outer'), 0o704); // others may read it but not enter
    const sample = [path.join(vault, 'secret'), path.join(vault, 'open'), path.join(vault, 'missing')];
    expect(await accessProblems(vault, stranger, sample)).toEqual([
      `${path.join(dir, 'outer')} (cannot enter: mode 0704)`,
      `${vault} (cannot list: mode 0750)`,
      `${path.join(vault, 'secret')} (cannot read: mode 0600)`,
    ]);
    chmodSync(path.join(dir, 'outer'), 0o755);
    chmodSync(vault, 0o755);
    chmodSync(path.join(vault, 'secret'), 0o644);
    expect(await accessProblems(vault, stranger, sample)).toEqual([]);
    expect(await accessProblems(path.join(dir, 'nope'), stranger, [])).toEqual([]);
  });
});

describe('syncthingIdentity and checkSyncthing', () => {
  it("over a GUI socket Syncthing runs as the socket's owner; a missing socket tells nothing", async () => {
    expect(await syncthingIdentity(sock)).toEqual({ uid: userInfo().uid, gids: [expect.any(Number) as number] });
    expect(await syncthingIdentity(path.join(dir, 'none.sock'))).toBeNull();
  });

  it('no syncthing section: a warning that snapshots stay on this server', async () => {
    const lines = await checkSyncthing({ configPath: '/p', vault: { dir } } as Config, undefined);
    expect(lines).toEqual([
      {
        check: 'syncthing',
        status: 'warn',
        message: 'not configured: snapshots stay on this server only',
        fix: 'add a syncthing section and run `permafrost sync apply`',
      },
    ]);
  });

  it('Syncthing not answering: a FAIL with its fix; on a receiver no permission check follows', async () => {
    const st = syncthingSchema.parse({ url: path.join(dir, 'none.sock'), apiKeyFile: '/k', role: 'receiver' });
    const lines = await checkSyncthing({ configPath: '/p', vault: { dir }, syncthing: st } as Config, Secret.of('k'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      check: 'syncthing',
      status: 'fail',
      fix: 'start Syncthing or fix the syncthing section, then run `permafrost sync apply`',
    });
    expect(lines[0]!.message).toContain('is unreachable (ENOENT)');
  });

  it('on a source whose Syncthing user cannot be told: a WARN saying access was not checked', async () => {
    const st = syncthingSchema.parse({ url: path.join(dir, 'none.sock'), apiKeyFile: '/k', role: 'source' });
    const lines = await checkSyncthing({ configPath: '/p', vault: { dir }, syncthing: st } as Config, Secret.of('k'));
    expect(lines.map((l) => [l.check, l.status])).toEqual([
      ['syncthing', 'fail'],
      ['permissions', 'warn'],
    ]);
  });
});
