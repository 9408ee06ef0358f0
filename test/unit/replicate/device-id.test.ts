import { describe, expect, it } from 'vitest';
import { normalizeDeviceId } from '../../../src/replicate/device-id.js';

// The example device ID of Syncthing's documentation.
const ID = 'MFZWI3D-BONSGYC-YLTMRWG-C43ENR5-QXGZDMM-FZWI3DP-BONSGYY-LTMRWAD';
const plain = ID.replaceAll('-', '');
/** The old 52-character form: without the check character after each 13. */
const old = plain.replace(/(.{13})./g, '$1');

describe('normalizeDeviceId', () => {
  it('keeps a canonical ID, and canonicalizes lower case, spaces, no dashes and the old 52-character form', () => {
    expect(normalizeDeviceId(ID)).toBe(ID);
    expect(normalizeDeviceId(ID.toLowerCase())).toBe(ID);
    expect(normalizeDeviceId(` ${plain.match(/.{7}/g)!.join(' ')} `)).toBe(ID);
    expect(old).toHaveLength(52);
    expect(normalizeDeviceId(old)).toBe(ID);
  });

  it("accepts Syncthing's look-alike typos (0 for O, 1 for I, 8 for B)", () => {
    expect(normalizeDeviceId(ID.replace('BONSGYC', '8ONSGYC'))).toBe(ID);
    expect(normalizeDeviceId(ID.replace('MFZWI3D', 'MFZW13D'))).toBe(ID);
  });

  it('refuses a wrong check character, a changed character, a wrong length or other characters', () => {
    // The 14th character is the first group's check character.
    const badCheck = `${plain.slice(0, 13)}${plain[13] === 'A' ? 'B' : 'A'}${plain.slice(14)}`;
    expect(normalizeDeviceId(badCheck)).toBeNull();
    expect(normalizeDeviceId(ID.replace('QXGZDMM', 'QXGZDMN'))).toBeNull();
    expect(normalizeDeviceId(ID.slice(0, -1))).toBeNull();
    expect(normalizeDeviceId(`${ID}-AAAAAAA`)).toBeNull();
    expect(normalizeDeviceId(ID.replace('M', '9'))).toBeNull();
    expect(normalizeDeviceId(ID.replace('M', '!'))).toBeNull();
    expect(normalizeDeviceId('')).toBeNull();
  });
});
