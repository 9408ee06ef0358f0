import { describe, expect, it } from 'vitest';
import { assertTargetNames, createDatabaseSql, incomingName, previousName } from '../../../src/recover/restore-database.js';
import { UserError } from '../../../src/errors.js';

describe('restore target names', () => {
  it('restores into <target>_incoming and keeps the previous one as <target>_before_<UTC date>_<time>', () => {
    expect(incomingName('mastodon_production')).toBe('mastodon_production_incoming');
    expect(previousName('mastodon_production', new Date('2026-12-01T09:05:07.123Z'))).toBe('mastodon_production_before_20261201_090507');
  });

  it.each([
    [
      'x'.repeat(41),
      /too long: restore needs room for "x+_before_19700101_000000" \(at most 63 bytes\), so choose a name of at most 40 bytes/,
    ],
    ['postgres', /restore never replaces "postgres"/],
    ['template1', /restore never replaces "template1"/],
    ['a b', /not a plain database name/],
  ])('refuses %s before anything is touched (exit 2)', (name, message) => {
    expect(() => assertTargetNames(name, '--database')).toThrow(UserError);
    expect(() => assertTargetNames(name, '--database')).toThrow(message);
  });

  it('accepts a name that leaves room for both', () => {
    expect(() => assertTargetNames('x'.repeat(40), '--database')).not.toThrow();
  });
});

describe('CREATE DATABASE as the source had it', () => {
  it.each([
    [
      {
        owner: 'mastodon',
        encoding: 'UTF8',
        collate: 'en_US.UTF-8',
        ctype: 'en_US.UTF-8',
        localeProvider: 'libc' as const,
        iculocale: null,
      },
      'mastodon',
      `CREATE DATABASE "m_incoming" TEMPLATE template0 OWNER "mastodon" ENCODING 'UTF8' LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'`,
    ],
    [
      { encoding: 'UTF8', collate: 'und', ctype: 'C', localeProvider: 'icu' as const, iculocale: 'und-x-icu' },
      null,
      `CREATE DATABASE "m_incoming" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'und' LC_CTYPE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'und-x-icu'`,
    ],
    // A manifest from before the facts were recorded: the server's defaults.
    [{}, null, 'CREATE DATABASE "m_incoming" TEMPLATE template0'],
  ])('%o owned by %s', (facts, owner, sql) => {
    expect(createDatabaseSql('m_incoming', facts, owner)).toBe(sql);
  });
});
