import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { readJsonState, writeJsonState } from '../../../src/vault/state-file.js';

const schema = z.strictObject({ n: z.number() });
let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pf-state-file-'));
  file = path.join(dir, '.permafrost-x.json');
});
afterEach(() => {
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

describe('state files', () => {
  it('a missing file reads as the fallback; a written one reads back, mode 0640', async () => {
    expect(await readJsonState(file, schema, { n: 0 })).toEqual({ n: 0 });
    await writeJsonState(file, { n: 7 });
    expect(await readJsonState(file, schema, { n: 0 })).toEqual({ n: 7 });
    expect(readFileSync(file, 'utf8')).toBe('{\n  "n": 7\n}\n');
    expect(statSync(file).mode & 0o777).toBe(0o640);
  });

  it('not JSON, or not of the shape, reads as the fallback with a warning naming the file and why', async () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    writeFileSync(file, 'garbage');
    expect(await readJsonState(file, schema, { n: 0 })).toEqual({ n: 0 });
    writeFileSync(file, JSON.stringify({ n: 'seven', extra: 1 }));
    expect(await readJsonState(file, schema, { n: 0 })).toEqual({ n: 0 });
    const messages = warn.mock.calls.map((c) => String(c[0]));
    expect(messages[0]).toBe(
      `permafrost state file ${file} is ignored because it is not valid JSON; it only caches past outcomes and is rewritten by the next run.`,
    );
    expect(messages[1]).toContain('is ignored because it is not of the expected shape (');
    expect(messages[1]).toContain('extra: unknown key');
  });

  it('a path that exists but cannot be read (here a folder) is an error, not the fallback', async () => {
    mkdirSync(file);
    await expect(readJsonState(file, schema, { n: 0 })).rejects.toMatchObject({ code: 'EISDIR' });
  });
});
