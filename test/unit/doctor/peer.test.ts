import { describe, expect, it } from 'vitest';
import { peerFailedRole, peerFix } from '../../../src/doctor/peer.js';

const facts = {
  role: 'mastodon',
  osUser: 'root',
  roleAccountExists: true,
  database: 'mastodon_production',
  configPath: '/etc/permafrost/permafrost.yaml',
  identFiles: ['/etc/postgresql/15/main/pg_ident.conf'],
};

describe('peer authentication', () => {
  it('recognises libpq\'s "Peer authentication failed" and nothing else', () => {
    expect(peerFailedRole('FATAL:  Peer authentication failed for user "mastodon"')).toBe('mastodon');
    expect(peerFailedRole('password authentication failed for user "mastodon"')).toBeNull();
    expect(peerFailedRole('connect ENOENT /var/run/postgresql/.s.PGSQL.5432')).toBeNull();
  });

  it('the fix: run as the OS user of the role, or the pg_ident.conf map and pg_hba.conf line for this machine', () => {
    const fix = peerFix(facts);
    expect(fix).toContain('`runuser -u mastodon -- permafrost --config /etc/permafrost/permafrost.yaml doctor`');
    expect(fix).toContain('`permafrost root mastodon` to /etc/postgresql/15/main/pg_ident.conf');
    expect(fix).toContain('`local mastodon_production mastodon peer map=permafrost`');
    expect(fix).toContain('systemctl reload postgresql');
  });

  it('without an OS user of that name, or with several clusters, it says so and how to find the file', () => {
    const fix = peerFix({ ...facts, roleAccountExists: false, identFiles: [] });
    expect(fix).toContain('there is no OS user mastodon here');
    expect(fix).not.toContain('runuser -u mastodon');
    expect(fix).toContain('SHOW ident_file');
  });
});
