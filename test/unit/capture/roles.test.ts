import { describe, expect, it } from 'vitest';
import { rolesSql, type RoleRow } from '../../../src/capture/roles.js';

const role = (over: Partial<RoleRow>): RoleRow => ({
  name: 'mastodon',
  superuser: false,
  inherit: true,
  createrole: false,
  createdb: true,
  login: true,
  replication: false,
  bypassrls: false,
  connlimit: -1,
  validUntil: null,
  password: 'SCRAM-SHA-256$4096:c2FsdA==$a:b',
  ...over,
});

describe('the roles part', () => {
  it('creates each role only when missing, with its attributes and password hash', () => {
    const sql = rolesSql('mastodon_production', { roles: [role({})], memberships: [], passwords: true });
    expect(sql).toContain(`IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mastodon') THEN`);
    expect(sql).toContain(
      `CREATE ROLE "mastodon" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1 PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b';`,
    );
    // Nothing in it alters a role: no ALTER ROLE, no grant outside the created-roles guard.
    expect(sql).not.toMatch(/ALTER ROLE "/);
  });

  it('grants memberships only to the roles it created, and quotes names and literals', () => {
    const sql = rolesSql('db', {
      roles: [role({ name: `o'dd "name"`, password: null }), role({ name: 'readers', login: false, password: null })],
      memberships: [{ role: 'readers', member: `o'dd "name"`, admin: true }],
      passwords: false,
    });
    expect(sql).toContain(`CREATE ROLE "o'dd ""name""" WITH`);
    expect(sql).toContain(`rolname = 'o''dd "name"'`);
    expect(sql).toContain(`IF EXISTS (SELECT FROM pg_temp.permafrost_created_roles WHERE name = 'o''dd "name"') THEN`);
    expect(sql).toContain(`GRANT "readers" TO "o'dd ""name""" WITH ADMIN OPTION;`);
    expect(sql).toMatch(/-- no password: the backup's database user could not read pg_authid/);
  });

  it('refuses a name that would end its dollar quote', () => {
    expect(() => rolesSql('db', { roles: [role({ name: 'x$permafrost$y' })], memberships: [], passwords: true })).toThrow(/\$permafrost\$/);
  });
});
