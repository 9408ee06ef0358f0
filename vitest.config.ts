import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * Unit test files that replace modules or globals (vi.mock, vi.doMock, vi.spyOn, vi.stub*): they
 * run isolated, each in a fresh worker, since a module another file already loaded would not see
 * the replacement. Found by reading the files, so a new one is never run shared by mistake.
 */
function unitFilesThatReplace(): string[] {
  const files = readdirSync('test/unit', { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => path.posix.join('test/unit', f.split(path.sep).join('/')));
  return files.filter((f) => /\bvi\.(mock|doMock|spyOn|stubEnv|stubGlobal)\(/.test(readFileSync(f, 'utf8')));
}

const replacing = unitFilesThatReplace();

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration files each start their own servers; two at a time suits these 2-core machines.
    maxWorkers: 2,
    // One initdb per kind of test cluster for the whole run, copied by each cluster (test/harness/postgres.ts).
    globalSetup: ['test/harness/global-setup.ts'],
    // The JSON report lets .ci/run print a plain "N passed, N failed" closing line.
    reporters: ['default', ['json', { outputFile: '.vitest-results.json' }]],
    projects: [
      {
        extends: true,
        // The unit files share their workers: a fresh worker per file cost more than most of them
        // take (the unit files ran in 111 s isolated, 53 s shared, on these 2 cores).
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], exclude: replacing, isolate: false },
      },
      {
        extends: true,
        // Integration files start and stop servers and set the environment of what they run: each
        // in its own worker, as are the unit files that replace modules.
        test: { name: 'isolated', include: ['test/e2e/**/*.test.ts', ...replacing] },
      },
    ],
  },
});
