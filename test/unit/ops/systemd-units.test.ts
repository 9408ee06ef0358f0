import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installedCommand } from '../../../src/ops/systemd-units.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'permafrost-path-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const SELF = ['/usr/bin/node', '/home/me/permafrost/dist/cli/main.js'];

function bin(name: string, mode = 0o755): string {
  const d = path.join(dir, name);
  mkdirSync(d);
  writeFileSync(path.join(d, 'permafrost'), '#!/bin/sh\n');
  chmodSync(path.join(d, 'permafrost'), mode);
  return d;
}

describe('installedCommand', () => {
  it('runs the first executable permafrost on PATH, as that path (a symlink stays a symlink)', () => {
    const noexec = bin('noexec', 0o644);
    const linked = path.join(dir, 'linked');
    mkdirSync(linked);
    symlinkSync(path.join(bin('target'), 'permafrost'), path.join(linked, 'permafrost'));
    const later = bin('later');
    const r = installedCommand(['relative/bin', path.join(dir, 'empty'), noexec, linked, later].join(':'), SELF);
    expect(r).toEqual({ command: [path.join(linked, 'permafrost')], warning: null });
  });

  it('falls back to this very CLI, warning how to install it, when permafrost is not on PATH', () => {
    const noexec = bin('noexec', 0o644);
    mkdirSync(path.join(dir, 'adir', 'permafrost'), { recursive: true }); // a folder is not a program
    for (const p of [undefined, '', `${noexec}:${path.join(dir, 'adir')}`]) {
      const r = installedCommand(p, SELF);
      expect(r.command).toEqual(SELF);
      expect(r.warning).toBe(
        'permafrost is not on PATH, so the units run /usr/bin/node /home/me/permafrost/dist/cli/main.js; run `bash scripts/install.sh` (it links permafrost into /usr/local/bin) and generate them again.',
      );
    }
  });
});
