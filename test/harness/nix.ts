import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './env.js';

/** nixpkgs' lib/ (vendored, see its README): $NIXPKGS_LIB, or shared/vendor/nixpkgs-lib beside the checkout or its worktree folder. */
export const NIXPKGS_LIB =
  [process.env.NIXPKGS_LIB, path.resolve(REPO, '../shared/vendor/nixpkgs-lib'), path.resolve(REPO, '../../shared/vendor/nixpkgs-lib')].find(
    (dir): dir is string => dir !== undefined && existsSync(path.join(dir, 'modules.nix')),
  ) ?? null;

/** The nix-instantiate on PATH, or null. */
export const NIX_INSTANTIATE = spawnSync('which', ['nix-instantiate'], { encoding: 'utf8' }).stdout.trim() || null;

/** Why the Nix module tests cannot run here, or null when they can. */
export function nixSkipReason(): string | null {
  if (!NIX_INSTANTIATE) return 'nix-instantiate is not installed (apt-get install nix-bin)';
  if (!NIXPKGS_LIB) return 'the vendored nixpkgs lib is absent (set NIXPKGS_LIB to a nixpkgs lib/ folder)';
  return null;
}

/** What nix/test/eval.nix returns: the failed assertions' messages, or (when none failed) what the module set. */
export interface NixEval {
  failedAssertions: string[];
  units?: Record<string, string>;
  timers?: Record<string, string>;
  configText?: string;
  users?: Record<string, { isSystemUser: boolean; group: string; extraGroups: string[] }>;
  groups?: string[];
  tmpfiles?: string[];
  postgresql?: { identMap: string; authentication: string };
}

/**
 * Evaluates nix/module.nix with lib.evalModules and the stubs in nix/test, for a NixOS
 * configuration given as JSON (written to `dir`) or as the text of a Nix module. Stub packages are
 * folders under `storeRoot`.
 */
export function evalModule(dir: string, storeRoot: string, configuration: Record<string, unknown> | string): NixEval {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'configuration.nix');
  if (typeof configuration === 'string') writeFileSync(file, configuration);
  else {
    writeFileSync(path.join(dir, 'configuration.json'), JSON.stringify(configuration));
    writeFileSync(file, '{ ... }: builtins.fromJSON (builtins.readFile ./configuration.json)\n');
  }
  const args = ['--argstr', 'libPath', NIXPKGS_LIB!, '--argstr', 'configuration', file, '--argstr', 'storeRoot', storeRoot];
  const r = spawnSync(NIX_INSTANTIATE!, ['--eval', '--strict', '--json', path.join(REPO, 'nix/test/eval.nix'), ...args], {
    encoding: 'utf8',
    // No channels, no NIX_PATH: the evaluation must need nothing but the files named above.
    env: { PATH: process.env.PATH, HOME: dir, NIX_PATH: '' },
  });
  if (r.status !== 0) throw new Error(`nix-instantiate failed (exit ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as NixEval;
}
