/**
 * Issue 10 item 5: every backup leaves RESTORE.md and restore.sh at the vault root, replaced
 * atomically, and nothing that reads the vault takes them for snapshots or damage.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeWorkspace, REPO, runCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';

const cluster = clusterPerFile('source');
let ws: Workspace;

beforeEach(() => {
  ws = makeWorkspace(cluster.get(), 'source');
});
afterEach(() => ws.cleanup());

const cli = (...args: string[]) => runCli(['--config', ws.configFile, ...args]);

async function backup(): Promise<{ id: string; stderr: string }> {
  const r = await cli('backup', '--json');
  expect(r.code, r.stderr).toBe(0);
  return { id: (JSON.parse(r.stdout) as { id: string }).id, stderr: r.stderr };
}

describe('the runbook beside the data', () => {
  it('after a backup: restore.sh is the shipped script (0755), RESTORE.md names this instance; a second backup replaces both by rename', async () => {
    const first = await backup();
    expect(first.stderr).not.toContain('warning');
    const script = path.join(ws.vault, 'restore.sh');
    const md = path.join(ws.vault, 'RESTORE.md');
    expect(readFileSync(script, 'utf8')).toBe(readFileSync(path.join(REPO, 'scripts/restore.sh'), 'utf8'));
    expect(statSync(script).mode & 0o777).toBe(0o755);
    const text = readFileSync(md, 'utf8');
    expect(text).toContain(`# Restoring ${hostname()} from this folder`);
    expect(text).toContain('database **source** owned by role');
    expect(text).toContain(`on ${hostname()}: \`${ws.vault}\``);
    expect(text).toContain(`it was \`${ws.passFile}\``);
    expect(text).toContain('permafrost restore --vault "$PWD" --passphrase-file - < /root/passphrase');
    expect(text).toContain('RAILS_ENV=production bin/tootctl search deploy');

    // Unchanged text is not rewritten: a device's Syncthing would keep a version of every rewrite.
    const inodes = [statSync(md).ino, statSync(script).ino];
    await backup();
    expect([statSync(md).ino, statSync(script).ino]).toEqual(inodes);
    // A temp file a killed run left is removed; a changed file is replaced by rename (a new inode).
    const stale = path.join(ws.vault, '.permafrost-tmp-RESTORE.md-999999');
    writeFileSync(stale, 'half written');
    writeFileSync(md, 'damaged');
    await backup();
    expect(readFileSync(md, 'utf8')).toBe(text);
    expect(statSync(md).ino).not.toBe(inodes[0]);
    expect(statSync(script).ino).toBe(inodes[1]);
    expect(existsSync(stale)).toBe(false);
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.permafrost-tmp-'))).toEqual([]);
  });

  it('list, check, prune, verify (its sweep) and doctor leave RESTORE.md and restore.sh alone and report no damage', async () => {
    await backup();
    ws.writeConfig({ vault: { keep: { last: 1 } } });
    const { id } = await backup();
    const list = await cli('list', '--json');
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ id: string; problem: string | null }>).map((s) => [s.id, s.problem])).toEqual([[id, null]]);
    const check = await cli('check');
    expect(check.code, check.stderr).toBe(0);
    const prune = await cli('prune');
    expect(prune.code, prune.stderr).toBe(0);
    const verify = await cli('verify');
    expect(verify.code, verify.stderr).toBe(0);
    const doctor = await cli('doctor');
    for (const r of [list, check, prune, verify, doctor]) expect(r.stdout + r.stderr).not.toMatch(/RESTORE\.md|restore\.sh/);
    expect(existsSync(path.join(ws.vault, 'RESTORE.md'))).toBe(true);
    expect(existsSync(path.join(ws.vault, 'restore.sh'))).toBe(true);
  });

  it('a runbook that cannot be written: the backup still succeeds (exit 0) and says so in a warning', async () => {
    // A folder in the way: the rename onto RESTORE.md fails even for root.
    mkdirSync(path.join(ws.vault, 'RESTORE.md', 'in-the-way'), { recursive: true });
    const r = await cli('backup');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^snapshot \S+ written to/);
    expect(r.stderr).toMatch(
      new RegExp(
        `warning: RESTORE\\.md and restore\\.sh could not be written in ${ws.vault} \\(.*\\); the snapshot is complete, and the next backup tries again`,
      ),
    );
    expect(readdirSync(ws.vault).filter((n) => n.startsWith('.permafrost-tmp-'))).toEqual([]);
    const list = await cli('list', '--json');
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(1);
  });
});
