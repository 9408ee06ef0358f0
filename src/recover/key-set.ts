/**
 * The decided keys of one table in a chain plan (recover/chain-plan.ts). Mastodon's tables are keyed
 * by one bigint column, and a chain of a day decides a few hundred thousand of them: as strings in a
 * Set that is some 70 bytes each on the JS heap, every one surviving the young generation (which then
 * grows to its maximum), and a string made per row looked up. Here a key that is the text PostgreSQL
 * prints for an int64 is kept as its value in a flat hash table (9 bytes a slot, at most 3/4 of them used, outside the JS heap)
 * and looked up from the row's bytes without a string; the first key of any other form (text, a
 * multi-column key, a non-canonical number) turns the table's set into a Set of strings, so equality
 * is always that of the keys' text, as before.
 */

const EMPTY = 0;
const TWO32 = 4294967296;

/** The value read by readInt64: the magnitude's high word (bit 31: negative) and low word. */
let readHi = 0;
let readLo = 0;

/**
 * Reads [start, end) of `buf` as the canonical text of an int64 (what PostgreSQL prints: optional
 * `-`, no leading zero, not `-0`, in range; the lowest value is left to the strings) into readHi/readLo.
 */
function readInt64(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  const neg = buf[i] === 0x2d;
  if (neg) i++;
  const n = end - i;
  if (n < 1 || n > 19 || (buf[i] === 0x30 && (n > 1 || neg))) return false;
  let hi = 0;
  let lo = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return false;
    const x = lo * 10 + d;
    const carry = Math.floor(x / TWO32);
    lo = x - carry * TWO32;
    hi = hi * 10 + carry;
  }
  if (hi > 0x7fffffff) return false;
  readHi = (neg ? hi | 0x80000000 : hi) >>> 0;
  readLo = lo >>> 0;
  return true;
}

function int64Text(hi: number, lo: number): string {
  const mag = (BigInt(hi & 0x7fffffff) << 32n) | BigInt(lo);
  return `${hi & 0x80000000 ? '-' : ''}${mag}`;
}

function slotOf(hi: number, lo: number, mask: number): number {
  let h = Math.imul(hi ^ Math.imul(lo, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 15;
  return h & mask;
}

/** Estimated bytes of memory per key held as a string besides its text (a Set entry and a string header). */
const STRING_OVERHEAD = 64;

export class KeySet {
  size = 0;
  /** Once a key is not an int64's text: every key as a string. */
  private strings: Set<string> | null = null;
  /** The strings' estimated memory (their text and STRING_OVERHEAD each). */
  private stringBytes = 0;
  private slots = new Uint32Array(2 * 1024);
  /** 1 where a slot holds a key. */
  private used = new Uint8Array(1024);

  /** The memory the set holds: its table of int64 values (capacity, not count), or its strings' estimate. */
  get bytes(): number {
    return this.strings ? this.stringBytes : this.slots.byteLength + this.used.byteLength;
  }

  /** The keys as strings, or null while they are all int64 values. */
  get asStrings(): Set<string> | null {
    return this.strings;
  }

  has(key: string): boolean {
    if (this.strings) return this.strings.has(key);
    const b = Buffer.from(key, 'latin1');
    return readInt64(b, 0, b.length) && this.find(readHi, readLo) >= 0;
  }

  /** Adds `key`; false when it was there already. */
  add(key: string): boolean {
    if (!this.strings) {
      const b = Buffer.from(key, 'latin1');
      if (readInt64(b, 0, b.length)) return this.insert(readHi, readLo);
      this.toStrings();
    }
    const s = this.strings!;
    if (s.has(key)) return false;
    s.add(key);
    this.stringBytes += key.length + STRING_OVERHEAD;
    this.size++;
    return true;
  }

  /**
   * Whether the key whose text is buf[start, end) is in the set; `decode` gives that text when the
   * bytes are not it as they are (a COPY field with an escape).
   */
  hasBytes(buf: Buffer, start: number, end: number, decode: () => string): boolean {
    if (!this.strings) {
      if (readInt64(buf, start, end)) return this.find(readHi, readLo) >= 0;
      // Not an int64's text: in no set of int64s, unless its escapes undone make one.
      for (let i = start; i < end; i++) if (buf[i] === 0x5c) return this.has(decode());
      return false;
    }
    return this.strings.has(decode());
  }

  /** Adds the key whose text is buf[start, end) (see hasBytes); false when it was there already. */
  addBytes(buf: Buffer, start: number, end: number, decode: () => string): boolean {
    if (!this.strings && readInt64(buf, start, end)) return this.insert(readHi, readLo);
    return this.add(decode());
  }

  private find(hi: number, lo: number): number {
    const mask = this.used.length - 1;
    for (let i = slotOf(hi, lo, mask); ; i = (i + 1) & mask) {
      if (this.used[i] === EMPTY) return -1;
      if (this.slots[2 * i] === hi && this.slots[2 * i + 1] === lo) return i;
    }
  }

  private insert(hi: number, lo: number): boolean {
    if (this.find(hi, lo) >= 0) return false;
    if ((this.size + 1) * 4 > this.used.length * 3) this.grow();
    const mask = this.used.length - 1;
    let i = slotOf(hi, lo, mask);
    while (this.used[i] !== EMPTY) i = (i + 1) & mask;
    this.used[i] = 1;
    this.slots[2 * i] = hi;
    this.slots[2 * i + 1] = lo;
    this.size++;
    return true;
  }

  private grow(): void {
    const { slots, used } = this;
    this.slots = new Uint32Array(slots.length * 2);
    this.used = new Uint8Array(used.length * 2);
    const mask = this.used.length - 1;
    for (let j = 0; j < used.length; j++) {
      if (used[j] === EMPTY) continue;
      let i = slotOf(slots[2 * j]!, slots[2 * j + 1]!, mask);
      while (this.used[i] !== EMPTY) i = (i + 1) & mask;
      this.used[i] = 1;
      this.slots[2 * i] = slots[2 * j]!;
      this.slots[2 * i + 1] = slots[2 * j + 1]!;
    }
  }

  private toStrings(): void {
    const s = new Set<string>();
    for (let j = 0; j < this.used.length; j++) {
      if (this.used[j] === EMPTY) continue;
      const key = int64Text(this.slots[2 * j]!, this.slots[2 * j + 1]!);
      s.add(key);
      this.stringBytes += key.length + STRING_OVERHEAD;
    }
    this.strings = s;
    this.slots = new Uint32Array(0);
    this.used = new Uint8Array(0);
  }
}
