import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.bench-cache/'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.check.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Core code never prints or exits; only the CLI layer talks to the process.
      'no-console': 'error',
    },
  },
  {
    // One HTTP wrapper (timeouts, errors without secrets): nothing else in the product calls fetch.
    files: ['src/**/*.ts'],
    ignores: ['src/notify/http.ts'],
    rules: {
      'no-restricted-globals': ['error', { name: 'fetch', message: 'Use httpRequest from src/notify/http.ts.' }],
    },
  },
  {
    // One spawn wrapper (ToolError, no shell, no secrets in argv): only src/tools/ starts programs.
    files: ['src/**/*.ts'],
    ignores: ['src/tools/run.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: ['node:child_process', 'child_process'].map((name) => ({ name, message: 'Start programs through src/tools/run.ts.' })) }],
    },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  { files: ['eslint.config.mjs'], ...tseslint.configs.disableTypeChecked },
);
