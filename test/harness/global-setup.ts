/**
 * vitest globalSetup: one folder of initdb templates for the whole run (test/harness/postgres.ts
 * initDataDir), passed to the workers in the environment and removed when the run ends.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEMPLATES_ENV } from './postgres.js';

export default function setup(): () => void {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-pg-templates-'));
  chmodSync(dir, 0o755);
  process.env[TEMPLATES_ENV] = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
