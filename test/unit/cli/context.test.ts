import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { bucketFlags, bucketOptions, examples, positiveInt, vaultConfig } from '../../../src/cli/context.js';
import type { ConfigOverrides } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { UserError } from '../../../src/errors.js';

describe('bucketFlags (a bucket, or the vault folder)', () => {
  it('--vault s3://… or --target name a bucket, carrying --endpoint and --path-style', () => {
    expect(bucketFlags({ vault: 's3://b/p', endpoint: 'http://e', pathStyle: true })).toEqual({
      vault: 's3://b/p',
      target: undefined,
      endpoint: 'http://e',
      pathStyle: true,
    });
    expect(bucketFlags({ target: 'b2' })).toEqual({ vault: undefined, target: 'b2', endpoint: undefined, pathStyle: undefined });
  });

  it('a folder (or nothing) is no bucket; --endpoint or --path-style with it is a UserError (exit 2)', () => {
    expect(bucketFlags({ vault: '/media/usb/permafrost' })).toBeUndefined();
    expect(bucketFlags({})).toBeUndefined();
    for (const opts of [{ endpoint: 'http://e' }, { vault: '/v', pathStyle: true }]) {
      expect(() => bucketFlags(opts)).toThrow(new UserError('--endpoint and --path-style go with --vault s3://BUCKET/PREFIX.'));
    }
  });
});

describe('vaultConfig', () => {
  it('asks the loader for a bucket config, or for --vault over vault.dir', () => {
    const asked: Array<ConfigOverrides | undefined> = [];
    const config = (o?: ConfigOverrides): Config => {
      asked.push(o);
      return {} as Config;
    };
    vaultConfig(config, { target: 'b2' });
    vaultConfig(config, { vault: '/copy' });
    vaultConfig(config, {});
    expect(asked).toEqual([{ bucket: true }, { vault: '/copy' }, { vault: undefined }]);
  });
});

describe('positiveInt (counts such as --jobs)', () => {
  const parse = positiveInt('--jobs 2');
  it.each([
    ['1', 1],
    ['16', 16],
    [' 4 ', 4],
  ])('%j → %d', (v, n) => expect(parse(v)).toBe(n));
  it.each(['0', '-1', '1.5', 'two', '', '99999999999999999999'])('%j is refused with an example', (v) => {
    expect(() => parse(v)).toThrow('expected a whole number of at least 1, e.g. --jobs 2.');
  });
});

describe('examples and bucketOptions', () => {
  it('examples: an Examples block, one "$ " line each', () => {
    expect(examples(['permafrost backup', 'permafrost list'])).toBe('\nExamples:\n  $ permafrost backup\n  $ permafrost list\n');
  });

  it('bucketOptions declares --target, --endpoint and --path-style', () => {
    const cmd = bucketOptions(new Command('x'));
    expect(cmd.options.map((o) => o.long)).toEqual(['--target', '--endpoint', '--path-style']);
    cmd.parse(['--target', 'b2', '--path-style'], { from: 'user' });
    expect(cmd.opts()).toEqual({ target: 'b2', pathStyle: true });
  });
});
