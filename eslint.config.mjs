import tseslint from 'typescript-eslint';

const CHILD_PROCESS = ['node:child_process', 'child_process'].map((name) => ({
  name,
  message: 'Start programs through src/tools/run.ts.',
}));

/**
 * Secret files are read once, where a job starts: by operations (src/ops/secrets.ts readJobSecrets),
 * which hand the values down. No other layer opens one.
 */
const SECRET_FILE = {
  regex: '(^|/)config/secret-file(\\.js)?$',
  message: 'Secrets are read once when a job starts (src/ops/secrets.ts) and passed down as values (config/secret-values.ts).',
};

/**
 * The layers of ARCHITECTURE.md as lint zones: for each layer, the top folders of src/ it must not
 * import from (none: `forbidden: []`), and whether it may read secret files (`secrets: true`, the
 * operations alone). `no-restricted-imports` is one rule, so each zone repeats the spawn-wrapper
 * paths (src/tools/run.ts alone may start programs).
 */
function layerZones(zones) {
  return zones.flatMap(({ files, forbidden, secrets = false, message }) => {
    const patterns = [
      ...(forbidden.length > 0 ? [{ regex: `^(\\./|(\\.\\./)+)(${forbidden.join('|')})/`, message }] : []),
      ...(secrets ? [] : [SECRET_FILE]),
    ];
    return [
      { files, ignores: ['src/tools/run.ts'], rules: { 'no-restricted-imports': ['error', { paths: CHILD_PROCESS, patterns }] } },
      ...(files.some((f) => f.startsWith('src/tools/'))
        ? [{ files: ['src/tools/run.ts'], rules: { 'no-restricted-imports': ['error', { patterns }] } }]
        : []),
    ];
  });
}

/** The step folders (ARCHITECTURE.md, Layers): composed by ops/, never reaching up. */
const STEPS = ['capture', 'crypto', 'vault', 'recover', 'replicate', 'offsite', 'notify', 'tools', 'net', 'config', 'doctor', 'schedule'];

export default tseslint.config(
  // scripts/*.mjs are plain Node helpers outside the typed project (type-aware rules cannot parse them)
  { ignores: ['dist/', 'node_modules/', '.bench-cache/', 'scripts/*.mjs', 'test/harness/*.mjs'] },
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
      'no-restricted-imports': ['error', { paths: CHILD_PROCESS }],
    },
  },
  {
    // The vault is an object (src/vault/layout.ts openVault): nothing else joins paths inside a
    // vault, so every name in it (snapshots, partial folders, .stversions, state files, the lock,
    // the runbook, leftovers of dead runs) is named once, with the ignore patterns Syncthing needs.
    files: ['src/**/*.ts'],
    ignores: ['src/vault/layout.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        ...['join', 'resolve'].flatMap((fn) =>
          ['arguments.0.name', 'arguments.0.property.name'].map((first) => ({
            selector: `CallExpression[callee.object.name='path'][callee.property.name='${fn}'][arguments.length>1][${first}=/vault/i]`,
            message:
              'A path inside a vault comes from its Vault (src/vault/layout.ts openVault): add the name to VAULT_NAMES and a method.',
          })),
        ),
      ],
    },
  },
  // The layers of ARCHITECTURE.md, held here as the rules above hold the one spawn wrapper and the
  // one HTTP client: imports only go down. Edges (cli/, web/, daemon/) render what operations
  // return; operations (ops/) are the only home of whole runs; steps never reach up.
  ...layerZones([
    {
      layer: 'steps',
      files: STEPS.map((d) => `src/${d}/**/*.ts`),
      forbidden: ['ops', 'cli', 'web', 'daemon'],
      message: 'A step never reaches up: operations (src/ops/) compose steps, edges render them (ARCHITECTURE.md, Layers).',
    },
    {
      layer: 'bottom',
      files: ['src/errors.ts', 'src/format.ts', 'src/version.ts', 'src/schema-issues.ts', 'src/events.ts', 'src/run-context.ts'],
      forbidden: ['ops', 'cli', 'web', 'daemon', ...STEPS],
      message: 'The bottom layer (errors, format, events, the run context) imports nothing of the product.',
    },
    {
      layer: 'ops',
      files: ['src/ops/**/*.ts'],
      forbidden: ['cli', 'web', 'daemon'],
      secrets: true,
      message: 'An operation returns data; the edges (cli/, web/, daemon/) render it and never the other way round.',
    },
    { layer: 'web', files: ['src/web/**/*.ts'], forbidden: ['cli', 'daemon'], message: 'The page renders what operations return.' },
    {
      layer: 'daemon',
      files: ['src/daemon/**/*.ts'],
      forbidden: ['cli'],
      message: 'The daemon schedules operations; it does not reach into the CLI.',
    },
    { layer: 'cli', files: ['src/cli/**/*.ts'], forbidden: [], message: 'The CLI parses, calls an operation and renders.' },
  ]),
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
