// The executable as shipped: tsc's dist/cli/main.js and everything it loads (our modules and the
// runtime dependencies) bundled by esbuild into dist/bin/permafrost.js, each command's code in its
// own chunk (dist/bin/chunks/) loaded when that command runs, as the unbundled files are. A CLI run
// resolves and reads a few files instead of hundreds: about 0.15 s of CPU less per start (docs/performance.md).
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist/bin', { recursive: true, force: true });
await build({
  entryPoints: { permafrost: 'dist/cli/main.js' },
  outdir: 'dist/bin',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // CommonJS dependencies (pg, pino, the AWS SDK) call require(): an ES module has none of its own.
  banner: {
    js: "import { createRequire as __permafrostRequire } from 'node:module'; const require = __permafrostRequire(import.meta.url);",
  },
  legalComments: 'eof',
  logLevel: 'warning',
});
