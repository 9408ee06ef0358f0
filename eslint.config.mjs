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
    // One HTTP client (timeouts, one error type, URLs without secrets): nothing else in the product
    // calls fetch or opens HTTP connections itself. Type-only imports (the web server's Server) are fine.
    files: ['src/**/*.ts'],
    ignores: ['src/net/http.ts'],
    rules: {
      'no-restricted-globals': ['error', { name: 'fetch', message: 'Use httpRequest from src/net/http.ts.' }],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: ['node:http', 'http', 'node:https', 'https', 'node:http2', 'http2', 'undici'].map((name) => ({
            name,
            allowTypeImports: true,
            message: 'Use httpRequest from src/net/http.ts.',
          })),
        },
      ],
    },
  },
  {
    // One spawn wrapper (ToolError, no shell, no secrets in argv): only src/tools/ starts programs.
    files: ['src/**/*.ts'],
    ignores: ['src/tools/run.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: ['node:child_process', 'child_process'].map((name) => ({ name, message: 'Start programs through src/tools/run.ts.' })) },
      ],
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
