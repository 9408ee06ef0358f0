import { describe, expect, it } from 'vitest';
import { lineChart, niceBytes, niceMax } from '../../../src/web/chart.js';

describe('chart', () => {
  it('draws a chart point per snapshot, and says so when there is none', () => {
    const svg = lineChart({
      title: 't',
      color: '#000',
      format: String,
      points: [
        { t: 1, v: 5, label: 'a' },
        { t: 2, v: 7, label: 'b' },
      ],
    });
    expect(svg.match(/<circle /g)).toHaveLength(2);
    expect(lineChart({ title: 't', color: '#000', format: String, points: [] })).toContain('no snapshots yet');
  });

  it.each([
    [0.3, 0.5],
    [7, 10],
    [120, 200],
    [1000, 1000],
  ])('niceMax(%d) = %d', (v, want) => expect(niceMax(v)).toBe(want));

  it.each([
    [500, 500],
    [300 * 1024, 500 * 1024],
    [1.5 * 1024 * 1024, 2 * 1024 * 1024],
  ])('niceBytes(%d) = %d', (v, want) => expect(niceBytes(v)).toBe(want));

  it('escapes a hostile title, label and axis text', () => {
    const svg = lineChart({
      title: '<script>t</script>',
      color: '#123456',
      format: (v) => `<b>${v}</b>`,
      points: [{ t: 0, v: 1, label: '"><script>x</script>' }],
    });
    expect(svg).not.toContain('<script');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('aria-label="&lt;script&gt;t&lt;/script&gt;"');
    expect(svg).toContain('<title>&quot;&gt;&lt;script&gt;x&lt;/script&gt;</title>');
  });

  it('places points left to right by time (whatever their order) on a nice axis, one point in the middle', () => {
    const svg = lineChart({
      title: 't',
      color: '#000',
      format: String,
      width: 192,
      height: 162,
      points: [
        { t: 2000, v: 10, label: 'b' },
        { t: 1000, v: 0, label: 'a' },
      ],
    });
    // Plot area x 76..176, y 28..128; the axis top for 10 is 10.
    expect(svg).toContain('<path d="M76.0,128.0 L176.0,28.0"');
    expect([...svg.matchAll(/font-size="11" fill="#52606d">(\d+)</g)].map((m) => m[1])).toEqual(['0', '5', '10']);
    const one = lineChart({ title: 't', color: '#000', format: String, width: 192, height: 162, points: [{ t: 5, v: 1, label: 'x' }] });
    expect(one).not.toContain('<path');
    expect(one).toContain('<circle cx="126.0" cy="28.0"');
  });

  it('an axis for nothing but zeros is still 1 high (no division by zero)', () => {
    expect(niceMax(0)).toBe(1);
    expect(niceMax(-3)).toBe(1);
    expect(niceBytes(0)).toBe(1024);
    const svg = lineChart({ title: 't', color: '#000', format: String, points: [{ t: 1, v: 0, label: 'z' }] });
    expect(svg).not.toContain('NaN');
  });
});
