import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { functionLengths, LIMIT, overLimit, TEMPLATES, type FunctionLength } from '../../../scripts/long-functions.mjs';

const REPO = path.resolve(import.meta.dirname, '../../..');

/** A function whose first-to-last lines number `lines`. */
function fn(name: string, lines: number): string {
  return `export function ${name}(): number {\n${'  void 0;\n'.repeat(lines - 3)}  return 1;\n}\n`;
}

describe('scripts/long-functions.mjs (issue 19 item 6: no function over ~80 lines outside templates)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  // Parsing every file of src/ takes seconds on a loaded machine: once for both tests that read it.
  let measured: FunctionLength[] | undefined;
  const srcRows = (): FunctionLength[] => (measured ??= functionLengths(path.join(REPO, 'src'), REPO));

  it('no function in src/ is longer than LIMIT lines, except the commented templates', () => {
    const rows = srcRows();
    // The walk must see the product (a wrong folder would pass vacuously).
    expect(rows.length).toBeGreaterThan(1000);
    const long = overLimit(rows).map((r) => `${r.name} (${r.lines} lines) ${r.file}:${r.line}`);
    expect(long, 'split these into named steps (gather → judge → record), or, for a pure template, add it to TEMPLATES').toEqual([]);
  });

  it('every allowed template still exists and is still long (a stale entry would hide a new function of that name)', () => {
    const rows = srcRows();
    for (const key of TEMPLATES.keys()) {
      const row = rows.find((r) => `${r.file}:${r.name}` === key);
      expect(row, key).toBeDefined();
      expect(row!.lines, key).toBeGreaterThan(LIMIT);
    }
  });

  it('measures a function from its first line to its last, methods and callbacks included, and flags one line over', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'pf-long-'));
    dirs.push(root);
    mkdirSync(path.join(root, 'src', 'a'), { recursive: true });
    writeFileSync(path.join(root, 'src', 'a', 'x.ts'), fn('atLimit', LIMIT) + fn('overLimit', LIMIT + 1));
    const body = '    void 0;\n'.repeat(LIMIT);
    writeFileSync(
      path.join(root, 'src', 'y.ts'),
      `export class K {\n  method(): void {\n${body}  }\n}\nexport const cb = [1].map((n) => {\n${body}  return n;\n});\n`,
    );
    const rows = functionLengths(path.join(root, 'src'), root);
    expect(rows.find((r) => r.name === 'atLimit')).toMatchObject({ lines: LIMIT, file: 'src/a/x.ts', line: 1 });
    expect(overLimit(rows).map((r) => r.name)).toEqual(['<callback of [1].map>', 'method', 'overLimit']);
    expect(overLimit(rows, LIMIT, new Map([['src/a/x.ts:overLimit', 'a template']])).map((r) => r.name)).not.toContain('overLimit');
  });
});
