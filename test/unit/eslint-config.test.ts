import { ESLint, Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

/** The import rules eslint.config.mjs sets for `file`, run on one line of code placed at that path. */
async function importProblems(file: string, code: string): Promise<string[]> {
  const config = (await new ESLint({ cwd: process.cwd() }).calculateConfigForFile(file)) as Linter.Config;
  const rule = config.rules?.['no-restricted-imports'];
  const messages = new Linter({ configType: 'flat' }).verify(
    code,
    [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser }, rules: { 'no-restricted-imports': rule! } }],
    { filename: file },
  );
  return messages.map((m) => m.message);
}

const SECRET_FILE_IMPORT = (from: string) =>
  `import { readSecretFile } from '${from}config/secret-file.js';\nexport const f = readSecretFile;\n`;

describe('eslint.config.mjs: secret files are read only where a job starts', () => {
  it.each([
    ['src/tools/postgres.ts', '../'],
    ['src/replicate/client.ts', '../'],
    ['src/notify/alerts.ts', '../'],
    ['src/crypto/keys.ts', '../'],
    ['src/doctor/checks.ts', '../'],
    ['src/web/server.ts', '../'],
    ['src/daemon/jobs.ts', '../'],
    ['src/cli/commands/backup.ts', '../../'],
  ])('%s may not import config/secret-file', async (file, up) => {
    const problems = await importProblems(file, SECRET_FILE_IMPORT(up));
    expect(problems).toEqual([expect.stringContaining('Secrets are read once when a job starts (src/ops/secrets.ts)')]);
  });

  it('an operation may (src/ops/secrets.ts reads them all)', async () => {
    expect(await importProblems('src/ops/secrets.ts', SECRET_FILE_IMPORT('../'))).toEqual([]);
  });

  it('the layer rules stay as they were beside it: a step still may not reach up, the run context is bottom', async () => {
    expect(
      await importProblems('src/tools/postgres.ts', "import { runBackup } from '../ops/backup.js';\nexport const f = runBackup;\n"),
    ).toEqual([expect.stringContaining('A step never reaches up')]);
    expect(
      await importProblems('src/run-context.ts', "import type { Config } from './config/schema.js';\nexport type C = Config;\n"),
    ).toEqual([expect.stringContaining('The bottom layer')]);
  });
});
