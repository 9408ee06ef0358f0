import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A real small filesystem, for full-disk and read-only faults (needs root to mount). */
export interface Tmpfs {
  dir: string;
  unmount(): void;
}

/**
 * Mounts a tmpfs of `bytes` (rounded up to pages by the kernel) at a new folder, mode 0700 so it
 * passes vault.tempDir's check; `readOnly` mounts it read-only.
 */
export function mountTmpfs(bytes: number, opts: { readOnly?: boolean } = {}): Tmpfs {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-tmpfs-'));
  const options = [`size=${bytes}`, 'mode=0700', ...(opts.readOnly ? ['ro'] : [])].join(',');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmdirSync(dir);
    throw new Error(`cannot mount a tmpfs (run the tests as root): ${r.stderr}`);
  }
  return {
    dir,
    unmount() {
      spawnSync('umount', [dir]);
      rmdirSync(dir);
    },
  };
}
