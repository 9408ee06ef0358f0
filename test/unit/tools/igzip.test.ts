import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { chooseCompressor, findIgzip, GzipToRawDeflate, igzipArgv } from '../../../src/tools/igzip.js';

describe('igzip', () => {
  it('igzip is installed (Debian package isal) and chosen for levels 1–3; zlib otherwise', () => {
    expect(findIgzip()).not.toBeNull();
    expect(chooseCompressor({ compressLevel: 1 }, '/usr/bin/igzip')).toBe('igzip');
    expect(chooseCompressor({ compressLevel: 6 }, '/usr/bin/igzip')).toBe('zlib');
    expect(chooseCompressor({ compressLevel: 1 }, null)).toBe('zlib');
    expect(chooseCompressor({ compressLevel: 0 }, '/usr/bin/igzip')).toBeNull();
  });

  it.each([
    [1, ['/usr/bin/igzip', '-1', '-c', '-n']],
    [3, ['/usr/bin/igzip', '-3', '-c', '-n']],
    [9, ['/usr/bin/igzip', '-3', '-c', '-n']],
  ])('argv at level %i', (level, argv) => {
    expect(igzipArgv('/usr/bin/igzip', level)).toEqual(argv);
  });

  it('a gzip stream that ends early is refused; the raw deflate stream is the same however it is chunked', async () => {
    const { gzipSync } = await import('node:zlib');
    const gz = gzipSync(Buffer.from('hello world'));
    const run = (bytes: Buffer): Promise<unknown> =>
      pipeline(Readable.from([bytes]), new GzipToRawDeflate(), async function* (src: AsyncIterable<Buffer>) {
        for await (const _ of src) yield _;
      }).then(
        () => 'ok',
        (e: Error) => e.message,
      );
    expect(await run(gz)).toBe('ok');
    // The raw deflate stream comes out the same whatever the chunking.
    const { inflateRawSync } = await import('node:zlib');
    for (const size of [1, 3, 9, 64]) {
      const parts: Buffer[] = [];
      for (let i = 0; i < gz.length; i += size) parts.push(gz.subarray(i, i + size));
      const raw: Buffer[] = [];
      await pipeline(Readable.from(parts), new GzipToRawDeflate(), async (src: AsyncIterable<Buffer>) => {
        for await (const b of src) raw.push(b);
      });
      expect(inflateRawSync(Buffer.concat(raw)).toString()).toBe('hello world');
    }
    expect(await run(gz.subarray(0, 12))).toMatch(/ended early/);
  });
});
