import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { OffsiteTarget } from '../../../src/config/schema-offsite.js';
import { PermafrostError } from '../../../src/errors.js';
import { openTarget, readTargetKeys, selectTargets } from '../../../src/ops/offsite-open.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-offsite-open-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const target = (name: string, extra: Partial<OffsiteTarget> = {}): OffsiteTarget => ({
  name,
  endpoint: 'http://127.0.0.1:9',
  region: 'us-east-1',
  bucket: 'bkt',
  prefix: 'pf/',
  pathStyle: true,
  ...extra,
});

describe('selectTargets', () => {
  const a = target('a');
  const b = target('b');
  it('all configured targets without --target, the named one with it', () => {
    expect(selectTargets([a, b], undefined)).toEqual([a, b]);
    expect(selectTargets([a, b], 'b')).toEqual([b]);
  });
  it('an unknown name or none configured: a usage error (exit 2) that says what exists', () => {
    const unknown = (() => {
      try {
        selectTargets([a, b], 'c');
      } catch (e) {
        return e as PermafrostError;
      }
    })();
    expect(unknown?.exitCode).toBe(2);
    expect(unknown?.message).toBe('no offsite target is named c; the config has a, b.');
    expect(() => selectTargets(undefined, undefined)).toThrow(/no offsite targets are configured; add an offsite: section/);
    expect(() => selectTargets([], 'a')).toThrow(/no offsite targets are configured/);
  });
});

describe('readTargetKeys', () => {
  it('no credentials section: undefined (the AWS chain decides)', () => {
    expect(readTargetKeys(target('a'))).toBeUndefined();
  });
  it('the first line of each 0600 file, CRLF or not; the secret in no message when a file is unsafe', () => {
    const id = path.join(dir, 'id');
    const secret = path.join(dir, 'secret');
    writeFileSync(id, 'AKIDEXAMPLE\r\n', { mode: 0o600 });
    writeFileSync(secret, 'very-secret-value\n', { mode: 0o600 });
    const t = target('b2', { credentials: { accessKeyIdFile: id, secretAccessKeyFile: secret } });
    const keys = readTargetKeys(t);
    expect(keys?.accessKeyId).toBe('AKIDEXAMPLE');
    expect(keys?.secretAccessKey).toBe('very-secret-value');
    const open = path.join(dir, 'open');
    writeFileSync(open, 'very-secret-value\n', { mode: 0o644 });
    let err: unknown;
    try {
      readTargetKeys(target('b2', { credentials: { accessKeyIdFile: id, secretAccessKeyFile: open } }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PermafrostError);
    expect((err as Error).message).toContain('offsite[b2].credentials.secretAccessKeyFile');
    expect((err as Error).message).not.toContain('very-secret-value');
  });
});

describe('openTarget', () => {
  it('names the target by name and bucket location, and its storage says the same', () => {
    const t = openTarget(target('b2'), undefined);
    try {
      expect(t.name).toBe('b2');
      expect(t.location).toMatchObject({ bucket: 'bkt', prefix: 'pf/' });
      expect(t.describe).toContain('b2');
      expect(t.describe).toContain('s3://bkt/pf/');
      expect(t.storage.describe).toBe(t.describe);
    } finally {
      t.client.destroy();
    }
  });
});
