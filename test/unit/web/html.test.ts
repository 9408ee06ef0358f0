import { describe, expect, it } from 'vitest';
import { age, bytes, duration, esc } from '../../../src/web/html.js';

describe("the page's small formatters", () => {
  it('esc: the five HTML-special characters, every occurrence, nothing else', () => {
    expect(esc(`<a href="x" title='y'>Tom & Jerry</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;');
    expect(esc('&&')).toBe('&amp;&amp;');
    expect(esc('plain ✓ text')).toBe('plain ✓ text');
  });

  it('bytes: "?" when unknown, else binary units', () => {
    expect(bytes(null)).toBe('?');
    expect(bytes(0)).toBe('0 B');
    expect(bytes(3 * 2 ** 20)).toBe('3.0 MiB');
  });

  it('duration: ms below a second, tenths of seconds below two minutes, then minutes and seconds', () => {
    expect(duration(null)).toBe('?');
    expect(duration(0)).toBe('0 ms');
    expect(duration(999.4)).toBe('999 ms');
    expect(duration(1000)).toBe('1.0 s');
    expect(duration(119_940)).toBe('119.9 s');
    expect(duration(120_000)).toBe('2 min 0 s');
    expect(duration(185_600)).toBe('3 min 6 s');
  });

  it('age: spaced units as the page shows them', () => {
    expect(age(90_000)).toBe('2 min');
    expect(age(3 * 3600_000)).toBe('3 h');
  });
});
