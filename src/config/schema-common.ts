import path from 'node:path';
import { z } from 'zod';

/**
 * A file or folder named in the config. Absolute only: the CLI runs from a shell's directory and
 * the daemon from systemd's, so a relative path would name different files in each.
 * (Its own module so schema.ts and the schema-*.ts files it imports can share it without a cycle.)
 */
export const absPath = z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path');
