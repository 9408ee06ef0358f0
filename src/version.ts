import { readFileSync } from 'node:fs';
import { packageFile } from './package-file.js';

/** The package version, read from the package's package.json. */
export const VERSION: string = (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version;
