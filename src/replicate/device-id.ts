/**
 * Syncthing device IDs: 52 base32 characters (SHA-256 of the device certificate) with one Luhn
 * check character after each 13, shown as 8 groups of 7 separated by dashes.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function luhnBase32(s: string): string {
  let factor = 1;
  let sum = 0;
  for (const ch of s) {
    const cp = ALPHABET.indexOf(ch);
    if (cp < 0) throw new Error(`not base32: ${ch}`);
    let addend = factor * cp;
    factor = factor === 2 ? 1 : 2;
    addend = Math.floor(addend / 32) + (addend % 32);
    sum += addend;
  }
  return ALPHABET[(32 - (sum % 32)) % 32]!;
}

/**
 * The canonical form (XXXXXXX-XXXXXXX-…) of a device ID, or null when it is malformed or a
 * check character is wrong. Accepts lower case, spaces, and the old 52-character form.
 */
export function normalizeDeviceId(input: string): string | null {
  // Syncthing itself accepts these look-alike typos (0→O, 1→I, 8→B).
  const s = input.toUpperCase().replace(/[\s-]/g, '').replace(/0/g, 'O').replace(/1/g, 'I').replace(/8/g, 'B');
  if (!/^[A-Z2-7]+$/.test(s)) return null;
  let full: string;
  if (s.length === 52) {
    full = [0, 1, 2, 3]
      .map((i) => s.slice(i * 13, i * 13 + 13))
      .map((g) => g + luhnBase32(g))
      .join('');
  } else if (s.length === 56) {
    for (let i = 0; i < 4; i++) {
      const group = s.slice(i * 14, i * 14 + 13);
      if (luhnBase32(group) !== s[i * 14 + 13]) return null;
    }
    full = s;
  } else {
    return null;
  }
  return full.match(/.{7}/g)!.join('-');
}
