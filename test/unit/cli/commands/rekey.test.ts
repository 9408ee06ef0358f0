import { rmSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { Config } from '../../../../src/config/schema.js';

const ops = vi.hoisted(() => ({ runRekey: vi.fn() }));
vi.mock('../../../../src/ops/rekey.js', async (orig) => ({ ...(await orig()), runRekey: ops.runRekey }));

const cfg = tempConfig();
afterAll(() => rmSync(cfg.dir, { recursive: true, force: true }));
beforeEach(() => ops.runRekey.mockReset());

const empty = { rewrapped: [], alreadyDone: [], failed: [], notes: [] };

describe('permafrost rekey', () => {
  it('"all" by default, the decrypting flags as the operation takes them; a line per snapshot and the totals', async () => {
    ops.runRekey.mockResolvedValue({
      ...empty,
      notes: ['a rekey stopped earlier left B.rekey; removed'],
      rewrapped: [{ snapshot: 'A', parts: [{ name: 'database' }, { name: 'redis' }] }],
      alreadyDone: ['B'],
    });
    const r = await runInProcess(['--config', cfg.file, 'rekey', '--identity', '/k/old.asc', '--identity-passphrase-file', '/k/pass']);
    expect(r.code).toBe(0);
    const [config, snapshot, flags] = ops.runRekey.mock.calls[0] as [Config, string, Record<string, unknown>];
    expect(config.configPath).toBe(cfg.file);
    expect(snapshot).toBe('all');
    expect(flags).toMatchObject({ identity: '/k/old.asc', identityPassphraseFile: '/k/pass', passphraseFile: undefined });
    expect(r.out).toEqual([
      'note: a rekey stopped earlier left B.rekey; removed',
      'rewrapped A (database, redis): data unchanged, key packets for the current keys',
      'already done B: its key packets are already for the current keys',
      'rekey: 1 rewrapped, 1 already done, 0 failed',
    ]);
  });

  it("a failed snapshot: its line, and the first failure's exit code (2: the secret opens none, 3: damaged)", async () => {
    ops.runRekey.mockResolvedValue({
      ...empty,
      failed: [{ snapshot: 'A', error: 'the passphrase opens none of its key packets', kind: 'user', exitCode: 2 }],
    });
    let r = await runInProcess(['--config', cfg.file, 'rekey', 'latest', '--passphrase-file', '/old']);
    expect(ops.runRekey.mock.calls[0]!.slice(1, 2)).toEqual(['latest']);
    expect(ops.runRekey.mock.calls[0]![2]).toMatchObject({ passphraseFile: '/old' });
    expect(r.code).toBe(2);
    expect(r.out).toContain('failed A: the passphrase opens none of its key packets');
    expect(r.err).toEqual(['permafrost: the passphrase opens none of its key packets']);
    ops.runRekey.mockResolvedValue({
      ...empty,
      failed: [
        { snapshot: 'A', error: 'A: database.pgdump.gpg is damaged', kind: 'integrity', exitCode: 3 },
        { snapshot: 'B', error: 'B: damaged', kind: 'integrity', exitCode: 3 },
      ],
    });
    r = await runInProcess(['--config', cfg.file, 'rekey', '--json']);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.out.join('\n')).failed).toHaveLength(2);
  });

  it('an unknown flag exits 2 and rekeys nothing', async () => {
    const r = await runInProcess(['--config', cfg.file, 'rekey', '--passphrase', 'secret']);
    expect(r.code).toBe(2);
    expect(ops.runRekey).not.toHaveBeenCalled();
  });
});
