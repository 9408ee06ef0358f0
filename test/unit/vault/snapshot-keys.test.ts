import { describe, expect, it } from 'vitest';
import { keysOpeningEvery } from '../../../src/vault/snapshot-keys.js';

const fp = (c: string): string => c.repeat(40);
const rec = (c: string) => ({ fingerprint: fp(c), keyId: c.repeat(16) });

describe('keysOpeningEvery', () => {
  it('only the keys and passphrase every part opens with', () => {
    expect(
      keysOpeningEvery([
        { recipients: [rec('B'), rec('A')], passphrase: true },
        { recipients: [rec('A')], passphrase: false },
      ]),
    ).toEqual({ passphrase: false, recipients: [fp('A')] });
    expect(
      keysOpeningEvery([
        { recipients: [rec('C'), rec('A')], passphrase: true },
        { recipients: [rec('A'), rec('C')], passphrase: true },
      ]),
    ).toEqual({ passphrase: true, recipients: [fp('A'), fp('C')] });
  });

  it('a part written before recipients existed is passphrase-only, and no parts open with nothing', () => {
    expect(keysOpeningEvery([undefined, { recipients: [rec('A')], passphrase: true }])).toEqual({ passphrase: true, recipients: [] });
    expect(keysOpeningEvery([])).toEqual({ passphrase: false, recipients: [] });
  });
});
