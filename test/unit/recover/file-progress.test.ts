import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { watchGrowth } from '../../../src/recover/file-progress.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-growth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds (the machine is loaded: ticks may come late). */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
}

describe('watchGrowth (restore progress while gpg writes the file)', () => {
  it('reports each new size once, not the same size at every tick, and nothing after stop', async () => {
    const file = path.join(dir, 'growing');
    const seen: number[] = [];
    // Not there yet: gpg has not created it; no report and no throw.
    const stop = watchGrowth(file, (n) => seen.push(n), 25);
    await sleep(60);
    expect(seen).toEqual([]);
    // Made whole and renamed into place, so no tick can see it empty between create and write.
    writeFileSync(`${file}.tmp`, Buffer.alloc(100));
    renameSync(`${file}.tmp`, file);
    await until(() => seen.includes(100));
    await sleep(60);
    appendFileSync(file, Buffer.alloc(50));
    await until(() => seen.includes(150));
    await sleep(60);
    expect(seen).toEqual([100, 150]);
    stop();
    appendFileSync(file, Buffer.alloc(50));
    await sleep(80);
    expect(seen).toEqual([100, 150]);
  });

  it('an empty file is reported as 0 bytes (the first size is always news)', async () => {
    const file = path.join(dir, 'empty');
    writeFileSync(file, '');
    const seen: number[] = [];
    const stop = watchGrowth(file, (n) => seen.push(n), 10);
    await until(() => seen.length > 0);
    stop();
    expect(seen).toEqual([0]);
  });
});
