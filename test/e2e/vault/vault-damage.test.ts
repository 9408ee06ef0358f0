import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { errorSentence, makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { fingerprint } from '../../harness/fingerprint.js';
import { deadPort } from '../../harness/http-sinks.js';
import { parsePromText, sampleValue } from '../../harness/prom-text.js';
import { clusterPerFile } from '../../harness/suite.js';
import { waitFor } from '../../harness/wait.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { snapshotIdFor } from '../../../src/vault/store.js';

// Bad entries in the vault (issue 9 items 1, 10 and 11): each is reported, the rest keeps working,
// and nothing a manifest says can make permafrost touch a file outside the snapshot or temp folder.
const cluster = clusterPerFile('source', 'target');
let ws: Workspace;
const extraDirs: string[] = [];
afterEach(() => {
  ws?.cleanup();
  for (const d of extraDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function backup(): Promise<Manifest> {
  const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Manifest;
}

/** A second snapshot, one hour older than `m`: a copy of its folder under a new name, its manifest edited to match. */
function copySnapshot(m: Manifest, edit: (copy: Manifest) => unknown = (c) => c): { id: string; manifestFile: string } {
  const id = snapshotIdFor(new Date(Date.parse(m.startedAt) - 3600_000));
  cpSync(path.join(ws.vault, m.id), path.join(ws.vault, id), { recursive: true });
  const manifestFile = path.join(ws.vault, id, 'manifest.json');
  writeFileSync(manifestFile, JSON.stringify(edit({ ...m, id })));
  return { id, manifestFile };
}

/** Files of the workspace outside the vault: what a run may leave behind (it must leave nothing). */
function outsideVault(): string[] {
  return readdirSync(ws.dir)
    .filter((n) => n !== 'vault')
    .sort();
}

describe('a damaged entry in the vault is reported and the rest keeps working', () => {
  it('a manifest of the wrong shape: list, verify and restore exit 3 naming manifest.json; list still lists the good snapshot', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const good = await backup();
    const bad = copySnapshot(good, (c) => ({ ...c, files: [{ ...good.files[0], bytes: 'many' }] }));
    const before = outsideVault();

    const list = await runCli(['--config', ws.configFile, 'list']);
    expect(list.code).toBe(3);
    expect(errorSentence(list.stderr)).toContain(bad.manifestFile);
    expect(errorSentence(list.stderr)).toContain('files[0].bytes');
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toBe(['SNAPSHOT', 'AGE', 'SIZE', 'KIND', 'VERIFIED', 'CHECKED', 'CONTENTS', 'KEY'].join('\t'));
    expect(lines[1]!.split('\t')).toEqual([
      good.id,
      expect.any(String),
      expect.stringMatching(/KiB|MiB/),
      'full',
      'never',
      'never',
      'database,roles',
      'passphrase',
    ]);
    const badRow = lines[2]!.split('\t');
    expect(badRow.slice(0, 6)).toEqual([bad.id, expect.any(String), '?', '?', 'never', 'never']);
    expect(badRow[6]).toContain(`${bad.manifestFile} is not a valid manifest`);

    const json = await runCli(['--config', ws.configFile, 'list', '--json']);
    expect(json.code).toBe(3);
    const rows = JSON.parse(json.stdout) as Array<{ id: string; problem: string | null }>;
    expect(rows.map((r) => [r.id, r.problem === null])).toEqual([
      [good.id, true],
      [bad.id, false],
    ]);

    const verify = await runCli(['--config', ws.configFile, 'verify', bad.id]);
    expect(verify.code).toBe(3);
    expect(errorSentence(verify.stderr)).toContain(bad.manifestFile);

    const target = fingerprint(cluster.get(), 'target');
    const restore = await runCli(['--config', ws.configFile, 'restore', bad.id, '--database', 'target', '--force']);
    expect(restore.code).toBe(3);
    expect(errorSentence(restore.stderr)).toContain(bad.manifestFile);
    expect(fingerprint(cluster.get(), 'target')).toEqual(target);
    expect(outsideVault()).toEqual(before);
  });

  it("the daemon's status page answers 200 and shows the damaged snapshot beside the good one", async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const good = await backup();
    const bad = copySnapshot(good, (c) => ({ ...c, files: 'none' }));
    const port = await deadPort();
    ws.writeConfig({ extra: { web: { listen: `127.0.0.1:${port}` }, schedule: { backup: '0 0 1 1 *', verify: '0 0 1 1 *' } } });
    const daemon = startCli(['--config', ws.configFile, 'daemon']);
    let out = '';
    daemon.child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the web service to start', () => out.includes('"service.start"'));
      const page = await fetch(`http://127.0.0.1:${port}/`);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain(`<code id="newest">${good.id}</code>`);
      expect(html).toContain(`<code>${bad.id}</code>`);
      expect(html).toContain(`snapshot ${bad.id} is damaged: ${bad.manifestFile} is not a valid manifest`);
      const status = await fetch(`http://127.0.0.1:${port}/api/status.json`);
      expect(status.status).toBe(200);
      const body = (await status.json()) as { snapshots: Array<{ id: string; problem: string | null }> };
      expect(body.snapshots.map((s) => s.id)).toEqual([good.id, bad.id]);
      expect(body.snapshots[1]!.problem).toContain(bad.manifestFile);
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(metrics.status).toBe(200);
      expect(sampleValue(parsePromText(await metrics.text()), 'permafrost_snapshots_unreadable')).toBe(1);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.result;
    }
  });

  it('a hostile manifest naming ../../victim: verify and restore exit 3, the victim is untouched and nothing appears outside', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    const good = await backup();
    // The victim lives outside the vault; beside it, a real encrypted part under the name the manifest points at.
    const victimDir = mkdtempSync(path.join(tmpdir(), 'permafrost-victim-'));
    extraDirs.push(victimDir);
    writeFileSync(path.join(victimDir, 'victim'), 'precious\n');
    cpSync(path.join(ws.vault, good.id, 'database.pgdump.gpg'), path.join(victimDir, 'victim.gpg'));
    const hostile = `${'../'.repeat(30)}${victimDir.slice(1)}/victim.gpg`;
    const bad = copySnapshot(good, (c) => ({ ...c, files: [{ ...good.files[0]!, name: hostile }] }));
    const victimBefore = readdirSync(victimDir).sort();
    const before = outsideVault();

    const verify = await runCli(['--config', ws.configFile, 'verify', bad.id]);
    expect(verify.code).toBe(3);
    expect(errorSentence(verify.stderr)).toContain(bad.manifestFile);
    const restore = await runCli(['--config', ws.configFile, 'restore', bad.id, '--database', 'target', '--force']);
    expect(restore.code).toBe(3);
    expect(errorSentence(restore.stderr)).toContain(bad.manifestFile);
    const secrets = path.join(ws.dir, 'restored.env');
    const parts = await runCli(['--config', ws.configFile, 'restore', bad.id, '--secrets', secrets]);
    expect(parts.code).toBe(3);

    expect(readFileSync(path.join(victimDir, 'victim'), 'utf8')).toBe('precious\n');
    expect(readdirSync(victimDir).sort()).toEqual(victimBefore);
    expect(outsideVault()).toEqual(before);
    expect(readdirSync(path.join(ws.vault, bad.id)).sort()).toEqual(['database.pgdump.gpg', 'manifest.json', 'roles.sql.gpg']);
  });

  it('a dangling symlink, a symlinked snapshot folder and a manifest of another snapshot do not break list, prune --dry-run or metrics', async () => {
    ws = makeWorkspace(cluster.get(), 'source');
    ws.writeConfig({ vault: { keep: { last: 5 } } });
    const good = await backup();
    const t = Date.parse(good.startedAt);
    const dangling = snapshotIdFor(new Date(t - 1 * 3600_000));
    symlinkSync(path.join(ws.dir, 'nowhere'), path.join(ws.vault, dangling));
    // A real snapshot outside the vault, linked in: never followed.
    const linked = snapshotIdFor(new Date(t - 2 * 3600_000));
    const outside = path.join(ws.dir, 'elsewhere');
    cpSync(path.join(ws.vault, good.id), outside, { recursive: true });
    writeFileSync(path.join(outside, 'manifest.json'), JSON.stringify({ ...good, id: linked }));
    symlinkSync(outside, path.join(ws.vault, linked));
    // A folder whose manifest is another snapshot's (the folder name must equal manifest.id).
    const renamed = snapshotIdFor(new Date(t - 3 * 3600_000));
    cpSync(path.join(ws.vault, good.id), path.join(ws.vault, renamed), { recursive: true });

    const list = await runCli(['--config', ws.configFile, 'list', '--json']);
    expect(list.code).toBe(3);
    const rows = JSON.parse(list.stdout) as Array<{ id: string; problem: string | null }>;
    expect(rows.map((r) => r.id)).toEqual([good.id, dangling, linked, renamed]);
    expect(rows[0]!.problem).toBeNull();
    expect(rows[1]!.problem).toContain('is a symbolic link');
    expect(rows[2]!.problem).toContain('is a symbolic link');
    expect(rows[3]!.problem).toBe(
      `${path.join(ws.vault, renamed, 'manifest.json')} belongs to snapshot ${good.id}, not to its folder ${renamed}`,
    );
    expect(errorSentence(list.stderr)).toContain(`Snapshot ${dangling} failed its integrity check`);
    expect(list.stderr).toContain(`${renamed}: `);

    const prune = await runCli(['--config', ws.configFile, 'prune', '--dry-run', '--json']);
    expect(prune.code, prune.stderr).toBe(0);
    const plan = JSON.parse(prune.stdout) as { kept: Array<{ id: string }>; removed: string[]; ignored: Array<{ id: string }> };
    expect(plan.kept.map((k) => k.id)).toEqual([good.id]);
    expect(plan.removed).toEqual([]);
    expect(plan.ignored.map((i) => i.id)).toEqual([dangling, linked, renamed]);

    const metrics = await runCli(['--config', ws.configFile, 'metrics']);
    expect(metrics.code, metrics.stderr).toBe(0);
    const families = parsePromText(metrics.stdout);
    expect(sampleValue(families, 'permafrost_snapshots')).toBe(1);
    expect(sampleValue(families, 'permafrost_snapshots_unreadable')).toBe(3);

    // The good snapshot still restores.
    const restore = await runCli(['--config', ws.configFile, 'restore', good.id, '--database', 'target', '--force']);
    expect(restore.code, restore.stderr).toBe(0);
    expect(readFileSync(path.join(outside, 'manifest.json'), 'utf8')).toContain(linked);
  });
});
