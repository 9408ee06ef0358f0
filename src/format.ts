/** Human-readable figures shared by the CLI's plain output and the status page. */

/** Binary units, one decimal above bytes: `512 B`, `1.5 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

const AGE_UNITS = {
  /** `45s`, `12m`, `3h`, `2d`: for tab-separated CLI columns. */
  short: ['s', 'm', 'h', 'd'],
  /** `45 s`, `12 min`, `3 h`, `2 d`: for prose (the status page). */
  spaced: [' s', ' min', ' h', ' d'],
} as const;

/** An age in the one unit read at a glance: seconds under 90 s, minutes under 90 min, hours under 48 h, else days. */
export function formatAge(ms: number, style: keyof typeof AGE_UNITS = 'short'): string {
  const [sec, min, hour, day] = AGE_UNITS[style];
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}${sec}`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m}${min}`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h}${hour}`;
  return `${Math.round(h / 24)}${day}`;
}
