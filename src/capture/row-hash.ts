/**
 * A row's md5 (delta-sql.ts: md5 of the row's text form, `tbl::text`) computed in this process
 * from the row's COPY text line, so a base reads every row once and the server never renders a
 * row twice (its COPY output, then record_out for md5): the text-form rendering and md5 cost the
 * server four times what COPY alone does.
 *
 * Both forms call the same type output functions under the same session settings; they differ
 * only in how values are framed. COPY text: fields joined by tabs, NULL as `\N`, and backslash,
 * tab, newline, CR, backspace, form feed and vertical tab escaped with a backslash. record_out:
 * `(` fields joined by commas `)`, NULL as nothing, and a value in double quotes when it is empty
 * or holds `"`, `\`, `(`, `)`, `,` or whitespace, with `"` and `\` doubled inside.
 *
 * Only valid where the COPY columns are the row type's columns (no generated column: COPY leaves
 * those out, the text form has them) and the server's encoding is the client's (UTF8).
 */
import { hash } from 'node:crypto';

/** 1: forces quotes in record_out; 2: starts a COPY escape. Raw tab and newline never occur inside a COPY field. */
const CLASS = new Uint8Array(256);
for (const c of ['"', '(', ')', ',', ' ', '\v', '\f', '\r']) CLASS[c.charCodeAt(0)] = 1;
CLASS[92] = 2;

/** What a COPY escape (the byte after the backslash) stands for; 0: not an escape COPY writes. */
const UNESCAPE = new Uint8Array(256);
for (const [c, v] of [
  ['b', 8],
  ['f', 12],
  ['n', 10],
  ['r', 13],
  ['t', 9],
  ['v', 11],
  ['\\', 92],
] as const)
  UNESCAPE[c.charCodeAt(0)] = v;

/** isspace() in the C and UTF-8 locales, and the other bytes record_out quotes for. */
function forcesQuotes(b: number): boolean {
  return b === 34 || b === 92 || b === 40 || b === 41 || b === 44 || b === 32 || (b >= 9 && b <= 13);
}

export class RecordHasher {
  private out = Buffer.allocUnsafe(1 << 16);

  /** md5 (16 bytes) of the text form of the row whose COPY line is `buf[start, end)` (without its newline). */
  md5(buf: Buffer, start: number, end: number): Buffer {
    // Worst case: every byte doubled, two quotes per field, the parentheses.
    if (this.out.length < 4 * (end - start) + 4) this.out = Buffer.allocUnsafe(4 * (end - start) + 4);
    const out = this.out;
    let o = 0;
    out[o++] = 40;
    let field = start;
    let fieldOut = o;
    let slow = false;
    for (let i = start; i <= end; i++) {
      const c = i < end ? buf[i]! : 9;
      if (c === 9) {
        if (i - field === 2 && buf[field] === 92 && buf[field + 1] === 78)
          o = fieldOut; // \N: NULL, nothing
        else if (i === field) {
          out[o++] = 34;
          out[o++] = 34;
        } else if (slow) o = this.quoted(buf, field, i, fieldOut);
        if (i < end) out[o++] = 44;
        field = i + 1;
        fieldOut = o;
        slow = false;
        continue;
      }
      out[o++] = c;
      if (CLASS[c] !== 0) {
        slow = true;
        if (c === 92) out[o++] = buf[++i]!;
      }
    }
    out[o++] = 41;
    return hash('md5', out.subarray(0, o), 'buffer');
  }

  /** Writes the field `buf[from, to)` unescaped, quoted when record_out would quote it, at `o`; returns the end. */
  private quoted(buf: Buffer, from: number, to: number, o: number): number {
    const out = this.out;
    let quote = false;
    for (let i = from; i < to; i++) {
      const c = buf[i]!;
      if (forcesQuotes(c === 92 ? UNESCAPE[buf[i + 1]!]! : c)) {
        quote = true;
        break;
      }
    }
    if (quote) out[o++] = 34;
    for (let i = from; i < to; i++) {
      let c = buf[i]!;
      if (c === 92) {
        c = UNESCAPE[buf[++i]!]!;
        if (c === 0) throw new Error('COPY row has an escape COPY does not write');
      }
      if (c === 34 || c === 92) out[o++] = c;
      out[o++] = c;
    }
    if (quote) out[o++] = 34;
    return o;
  }
}
