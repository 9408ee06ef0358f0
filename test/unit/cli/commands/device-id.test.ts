import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runInProcess, tempConfig } from '../../../harness/cli-inproc.js';
import type { Config } from '../../../../src/config/schema.js';
import type { Secret } from '../../../../src/config/secret-values.js';

const ops = vi.hoisted(() => ({ localDeviceId: vi.fn() }));
vi.mock('../../../../src/replicate/apply.js', () => ({ localDeviceId: ops.localDeviceId }));

const cfg = tempConfig();
const keyFile = path.join(cfg.dir, 'apikey');
writeFileSync(keyFile, 'the-api-key\n', { mode: 0o600 });
const withSyncthing = tempConfig({ syncthing: { role: 'source', apiKeyFile: keyFile, devices: [] } });
afterAll(() => {
  rmSync(cfg.dir, { recursive: true, force: true });
  rmSync(withSyncthing.dir, { recursive: true, force: true });
});

describe('permafrost device-id', () => {
  it("prints the local Syncthing's device ID, asked with the config and the API key read from syncthing.apiKeyFile", async () => {
    ops.localDeviceId.mockResolvedValue('AAAAAAA-BBBBBBB-CCCCCCC-DDDDDDD-EEEEEEE-FFFFFFF-GGGGGGG-HHHHHHH');
    const r = await runInProcess(['--config', withSyncthing.file, 'device-id']);
    expect(r.code).toBe(0);
    expect(r.out).toEqual(['AAAAAAA-BBBBBBB-CCCCCCC-DDDDDDD-EEEEEEE-FFFFFFF-GGGGGGG-HHHHHHH']);
    const [config, key] = ops.localDeviceId.mock.calls[0] as [Config, Secret];
    expect(config.syncthing?.apiKeyFile).toBe(keyFile);
    expect(key.reveal()).toBe('the-api-key');
  });

  it('without a syncthing section no key is read; an error of the operation is its exit code; extra arguments exit 2', async () => {
    const { UserError } = await import('../../../../src/errors.js');
    ops.localDeviceId.mockRejectedValue(new UserError('No syncthing section in the config: add one.'));
    let r = await runInProcess(['--config', cfg.file, 'device-id']);
    expect(ops.localDeviceId.mock.calls.at(-1)![1]).toBeUndefined();
    expect(r.code).toBe(2);
    expect(r.err).toEqual(['permafrost: No syncthing section in the config: add one.']);
    r = await runInProcess(['--config', cfg.file, 'device-id', 'extra']);
    expect(r.code).toBe(2);
  });
});
