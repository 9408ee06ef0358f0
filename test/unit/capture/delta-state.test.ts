import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import {
  keyCheck,
  loadDeltaState,
  readLines,
  RowKeyer,
  splitStateLine,
  STATE_DIR,
  stateMac,
  StateMismatchError,
  StateReader,
} from '../../../src/capture/delta-state.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-deltastate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const md5 = (s: string): Buffer => createHash('md5').update(s).digest();

// The stable behaviour only (the speed work changes how rows are read, not what a state means).
describe('RowKeyer, keyCheck and stateMac', () => {
  it('keys each row md5 into 22 base64url characters, reversibly under the same key, differently under another', () => {
    const key = randomBytes(32);
    const rows = Buffer.concat([md5('row 1'), md5('row 2')]);
    const keyed = new RowKeyer(key).keyed(rows, 2);
    expect(keyed).toHaveLength(2);
    for (const k of keyed) expect(k).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(new RowKeyer(key).md5Of(keyed[1]!)).toBe(md5('row 2').toString('hex'));
    expect(new RowKeyer(randomBytes(32)).keyed(rows, 2)).not.toEqual(keyed);
    // The same row, the same keyed hash: what makes two states comparable.
    expect(new RowKeyer(key).keyed(md5('row 1'), 1)).toEqual([keyed[0]]);
  });

  it('keyCheck tells keys apart without revealing them; stateMac binds the bytes to the key', () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    expect(keyCheck(a)).toBe(keyCheck(Buffer.from(a)));
    expect(keyCheck(a)).not.toBe(keyCheck(b));
    const json = Buffer.from('{"formatVersion":2}');
    expect(stateMac(a, json)).toMatch(/^[0-9a-f]{64}$/);
    expect(stateMac(a, json)).not.toBe(stateMac(b, json));
    expect(stateMac(a, json)).not.toBe(stateMac(a, Buffer.from('{"formatVersion":3}')));
  });
});

describe('keys files: splitStateLine, readLines and StateReader', () => {
  it('splitStateLine takes the last tab (keys may hold tabs); anything else is a mismatch, never a guess', () => {
    const h = 'A'.repeat(22);
    expect(splitStateLine(`1\t${h}`)).toEqual(['1', h]);
    expect(splitStateLine(`a\tb\t${h}`)).toEqual(['a\tb', h]);
    // An empty text key ('') is a key: its line starts with the tab.
    expect(splitStateLine(`\t${h}`)).toEqual(['', h]);
    for (const bad of ['', 'no tab', `1\t${'A'.repeat(21)}`, `1\t${h}=`]) {
      expect(() => splitStateLine(bad), JSON.stringify(bad)).toThrow(StateMismatchError);
    }
    expect(() => splitStateLine('x')).toThrow('its delta state has a damaged keys file (a line that is no key and hash)');
  });

  it('readLines joins lines cut across chunks and keeps a last line without a newline', async () => {
    const seen: number[] = [];
    const out: string[] = [];
    for await (const lines of readLines(Readable.from([Buffer.from('a\tb\nc'), Buffer.from('d\n'), Buffer.from('e')]), (b) =>
      seen.push(b.length),
    ))
      out.push(...lines);
    expect(out).toEqual(['a\tb', 'cd', 'e']);
    expect(seen).toEqual([5, 2, 1]);
  });

  it('StateReader walks a keys file line by line and hashes exactly its bytes', async () => {
    const file = path.join(dir, 'keys');
    const body = Array.from({ length: 20_000 }, (_, i) => `${i}\t${'B'.repeat(22)}`).join('\n') + '\n';
    writeFileSync(file, body);
    const r = new StateReader(file);
    await r.open();
    let n = 0;
    let last: string | null = null;
    while (r.line() !== null) {
      last = r.line();
      n++;
      await r.advance();
    }
    expect(n).toBe(20_000);
    expect(last).toBe(`19999\t${'B'.repeat(22)}`);
    expect(r.sha256()).toBe(createHash('sha256').update(body).digest('hex'));
  });
});

describe('loadDeltaState: a state that cannot be trusted is a problem sentence (a base is made), never used', () => {
  const vaultWith = (files: Record<string, string | Buffer>): string => {
    const vault = mkdtempSync(path.join(dir, 'vault-'));
    const stateDir = path.join(vault, STATE_DIR);
    mkdirSync(stateDir, { recursive: true });
    for (const [name, body] of Object.entries(files)) writeFileSync(path.join(stateDir, name), body);
    return vault;
  };

  it('no state at all: no state and no problem (the first base)', async () => {
    expect(await loadDeltaState(mkdtempSync(path.join(dir, 'empty-')))).toEqual({ state: null, problem: null });
  });

  it('not JSON, an older format, another shape: each named', async () => {
    const notJson = vaultWith({ 'state.json': '{ cut' });
    expect(await loadDeltaState(notJson)).toEqual({
      state: null,
      problem: `its delta state ${path.join(notJson, STATE_DIR)}/state.json is not valid JSON`,
    });
    const older = vaultWith({ 'state.json': '{"formatVersion":0}' });
    expect((await loadDeltaState(older)).state).toBeNull();
    expect(await loadDeltaState(older)).toMatchObject({
      problem: expect.stringMatching(/was written by an older permafrost \(format 0\)$/),
    });
    const shape = vaultWith({ 'state.json': '{"formatVersion":999}' });
    expect(await loadDeltaState(shape)).toMatchObject({ state: null, problem: expect.stringMatching(/is not of the expected shape \(/) });
  });

  it('a state.json that cannot be read (a folder in its place) names the error code', async () => {
    const vault = vaultWith({});
    mkdirSync(path.join(vault, STATE_DIR, 'state.json'));
    expect(await loadDeltaState(vault)).toEqual({
      state: null,
      problem: `its delta state ${path.join(vault, STATE_DIR)}/state.json cannot be read (EISDIR)`,
    });
  });
});
