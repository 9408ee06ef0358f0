/**
 * Issue 21 item 6: role passwords. Backups run as the Mastodon role (not a superuser), which cannot
 * read pg_authid: the manifest says the passwords were not captured, doctor WARNs (with the grant
 * that fixes it) when the server logs in with a password, and restore names the roles that came
 * back without one with the ALTER ROLE to run. After the grant, all three say the passwords travel.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../../src/ops/doctor.js';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { destroyCluster, startCluster, type PgCluster } from '../../harness/postgres.js';
import { createOwnedSource } from '../../harness/restore-sh.js';

let source: PgCluster;
let ws: Workspace;
const fresh: PgCluster[] = [];

beforeAll(() => {
  source = startCluster();
  createOwnedSource(source, 'mastodon_production');
  ws = makeWorkspace(source, 'mastodon_production');
  const pw = path.join(ws.dir, 'database.password');
  writeFileSync(pw, 'mastodon-secret\n', { mode: 0o600 });
  // As Mastodon with DB_PASS: the backup connects as mastodon with its password.
  ws.writeConfig({ database: { user: 'mastodon', passwordFile: pw } });
}, 120_000);

afterAll(() => {
  for (const c of fresh) destroyCluster(c);
  if (source) destroyCluster(source);
  ws?.cleanup();
});

const cli = (...args: string[]) => runCli(['--config', ws.configFile, ...args]);

async function doctorLine() {
  const r = await cli('doctor', '--json');
  return (JSON.parse(r.stdout) as DoctorReport).lines.find((l) => l.check === 'role passwords');
}

async function backupManifest(): Promise<{ rolePasswords?: boolean }> {
  const r = await cli('backup', '--json');
  expect(r.code, r.stderr).toBe(0);
  const id = (JSON.parse(r.stdout) as { id: string }).id;
  return JSON.parse(readFileSync(path.join(ws.vault, id, 'manifest.json'), 'utf8')) as { rolePasswords?: boolean };
}

async function restoreFresh(): Promise<{ code: number | null; stdout: string; pg: PgCluster }> {
  const pg = startCluster();
  fresh.push(pg);
  const r = await runCli(['restore', '--vault', ws.vault, '--passphrase-file', ws.passFile], {
    cwd: ws.vault,
    env: {
      PERMAFROST_CONFIG: '',
      PGHOST: pg.socketDir,
      PGPORT: String(pg.port),
      PGUSER: pg.user,
      PATH: `${pg.binDir}:${process.env.PATH}`,
    },
  });
  expect(r.code, r.stderr).toBe(0);
  return { ...r, pg };
}

describe('role passwords when the backup role cannot read pg_authid', () => {
  it('doctor WARNs with the grant; the manifest records rolePasswords: false; restore names the role and the ALTER ROLE', async () => {
    const line = await doctorLine();
    expect(line?.status).toBe('warn');
    expect(line?.message).toContain('role mastodon cannot read pg_authid (only a superuser can)');
    expect(line?.fix).toContain(`psql -d mastodon_production -c 'GRANT SELECT ON pg_catalog.pg_authid TO "mastodon"'`);

    expect((await backupManifest()).rolePasswords).toBe(false);
    const r = await restoreFresh();
    expect(r.stdout).toContain('role mastodon came back without a password');
    expect(r.stdout).toContain(`ALTER ROLE "mastodon" PASSWORD '…';`);
    // mastodon_ro cannot log in: no password to set.
    expect(r.stdout).not.toContain('role mastodon_ro came back');
    expect(r.pg.psql('postgres', "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'mastodon'").trim()).toBe('t');
  });

  it('after the grant doctor says OK, the manifest records rolePasswords: true, and the password comes back', async () => {
    // Run as doctor says: in the database the backup reads (a catalog's grants are per database).
    source.psql('mastodon_production', 'GRANT SELECT ON pg_catalog.pg_authid TO mastodon');
    const line = await doctorLine();
    expect(line?.status, JSON.stringify(line)).toBe('ok');
    expect((await backupManifest()).rolePasswords).toBe(true);
    const r = await restoreFresh();
    expect(r.stdout).not.toContain('came back without a password');
    const hash = (pg: PgCluster) => pg.psql('postgres', "SELECT rolpassword FROM pg_authid WHERE rolname = 'mastodon'").trim();
    expect(hash(r.pg)).toBe(hash(source));
  });
});
