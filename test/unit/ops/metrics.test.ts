import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../../src/errors.js';
import { writeMetricsTextfile } from '../../../src/ops/metrics.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TEXT = '# TYPE permafrost_up gauge\npermafrost_up 1\n';

const failure = (file: string): Promise<unknown> =>
  writeMetricsTextfile(file, TEXT).then(
    () => null,
    (e: unknown) => e,
  );

describe('writeMetricsTextfile (permafrost metrics --textfile)', () => {
  it('writes the text world-readable (node_exporter reads it) and returns the absolute path, replacing the old one', async () => {
    const rel = path.relative(process.cwd(), path.join(dir, 'permafrost.prom'));
    writeFileSync(path.join(dir, 'permafrost.prom'), 'stale\n', { mode: 0o600 });
    const file = await writeMetricsTextfile(rel, TEXT);
    expect(file).toBe(path.join(dir, 'permafrost.prom'));
    expect(readFileSync(file, 'utf8')).toBe(TEXT);
    expect(statSync(file).mode & 0o777).toBe(0o644);
  });

  it('refuses a name node_exporter would ignore (not .prom), before writing anything (exit 2)', async () => {
    const err = await failure(path.join(dir, 'permafrost.txt'));
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `--textfile: ${path.join(dir, 'permafrost.txt')} must end in .prom, or node_exporter's textfile collector ignores it.`,
    );
  });

  it('does not create a missing folder (a typo or node_exporter not installed), nor take a file for one', async () => {
    for (const folder of [path.join(dir, 'no-such'), path.join(dir, 'a-file')]) {
      if (folder.endsWith('a-file')) writeFileSync(folder, '');
      const err = await failure(path.join(folder, 'x.prom'));
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toBe(
        `--textfile: folder ${folder} does not exist; create it or point --textfile at node_exporter's textfile directory.`,
      );
    }
  });

  it('a file that cannot be written (a folder sits at its name) is one sentence naming the folder to check', async () => {
    const target = path.join(dir, 'taken.prom');
    mkdirSync(path.join(target, 'inside'), { recursive: true });
    const err = await failure(target);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(`--textfile: cannot write ${target}; check this user may write to ${dir}.`);
  });
});
