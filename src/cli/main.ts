#!/usr/bin/env node
/** The `permafrost` executable: runs the CLI (program.ts) on process.argv and sets the exit code. */
import { main } from './program.js';
import { processIo, reportError, tolerateClosedStdStreams } from './run.js';

tolerateClosedStdStreams();

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err, processIo);
  },
);
