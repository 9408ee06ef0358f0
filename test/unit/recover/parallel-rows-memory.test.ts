import { write as fsWrite, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SQL_FILE_HEADER } from '../../../src/capture/delta-sql.js';
import { ChainPlan } from '../../../src/recover/chain-plan.js';
import { parallelRowsSink } from '../../../src/recover/parallel-rows.js';

// Its own file: the measure is of the whole process (vitest runs each file in its own fork).
const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-rows-mem-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parallelRowsSink: the memory a load holds', () => {
  it('96 MiB of a base table written by gpg into the file, filtered by a plan onto 2 sessions: array buffers stay within 8 MiB of where they started (no buffer per chunk)', async () => {
    const plan = new ChainPlan([{ schema: 'public', table: 's', rows: 0, hash: '0', key: ['id'] }], path.join(dir, 'delta-rows.sql'));
    // A delta deleting one key of "s": every base row of "s" goes through the filter.
    await plan.readDelta(
      [
        Buffer.from(
          `${SQL_FILE_HEADER}CREATE TEMP TABLE pf_keys (k0 bigint);\nCOPY pf_keys FROM stdin;\n5\n\\.\nANALYZE pf_keys;\n` +
            'DELETE FROM ONLY "public"."s" _pf_row USING pf_keys WHERE _pf_row."id" = pf_keys.k0;\nDROP TABLE pf_keys;\n',
        ),
      ],
      true,
    );
    await plan.file.close();
    plan.seal();
    // The same 1 MiB of rows written 96 times: the producer itself allocates nothing per chunk.
    const line = `123456\t${'x'.repeat(57)}\n`;
    const rows = Buffer.from(line.repeat((1 << 20) / line.length));
    const sink = parallelRowsSink(
      path.join(dir, 'base-rows.sql'),
      { argv: ['sh', '-c', 'cat > /dev/null'], doing: 'loading' },
      2,
      undefined,
      Promise.resolve(plan),
    );
    const start = process.memoryUsage().arrayBuffers;
    let peak = start;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 2);
    try {
      // What gpg does: writes the plaintext into the file the sink opened, then exits.
      const fd = await sink.file!.open();
      let bytes = 0;
      const write = async (chunk: Buffer | string): Promise<void> => {
        const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        await new Promise<void>((resolve, reject) => fsWrite(fd, b, (err) => (err ? reject(err) : resolve())));
        bytes += b.length;
      };
      await write('SET statement_timeout = 0;\n');
      for (const table of ['s', 't']) {
        await write(`COPY "public"."${table}" ("id", "t") FROM stdin;\n`);
        for (let i = 0; i < 48; i++) await write(rows);
        await write('\\.\n\n');
      }
      sink.file!.end(bytes);
      await sink.done;
    } finally {
      clearInterval(sample);
    }
    console.log(`array buffers: +${((peak - start) / 2 ** 20).toFixed(1)} MiB`);
    expect((peak - start) / 2 ** 20).toBeLessThan(8);
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);
});
