/**
 * Issue 21 items 7 (init) and 8: `init` writes the optional web, schedule, notify and syncthing
 * sections commented out, each valid once uncommented; `init --device` writes a complete backup
 * device config (vault, media, receiver, keep) and says what to do next.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { errorSentence, makeWorkspace, runCli, type Workspace } from '../../harness/env.js';

let ws: Workspace;
afterEach(() => ws?.cleanup());

/** The config text with the lines of `section` uncommented: from "# section:" down to the next blank line. */
function uncomment(text: string, section: string): string {
  const lines = text.split('\n');
  const start = lines.indexOf(`# ${section}:`);
  expect(start, `"# ${section}:" in the config`).toBeGreaterThan(0);
  for (let i = start; i < lines.length && lines[i] !== ''; i++) {
    expect(lines[i]!.startsWith('# ')).toBe(true);
    lines[i] = lines[i]!.slice(2);
  }
  return lines.join('\n');
}

function load(text: string, name: string) {
  const file = path.join(ws.dir, name);
  writeFileSync(file, text);
  return loadConfig(file);
}

describe('init: the optional sections', () => {
  it('are written commented out: the config loads without them, and each one uncommented (and all four) is a valid config with the defaults', async () => {
    ws = makeWorkspace(null, 'unused');
    const live = path.join(ws.dir, 'live');
    mkdirSync(path.join(live, 'public', 'system'), { recursive: true });
    writeFileSync(
      path.join(live, '.env.production'),
      'DB_HOST=127.0.0.1\nDB_PORT=5432\nDB_NAME=mastodon_production\nDB_USER=mastodon\nDB_PASS=pw\nREDIS_URL=redis://127.0.0.1:6379\nSECRET_KEY_BASE=x\n',
      { mode: 0o600 },
    );
    const configFile = path.join(ws.dir, 'etc', 'permafrost.yaml');
    const r = await runCli(['--config', configFile, 'init', '--mastodon', live, '--vault', path.join(ws.dir, 'snapshots')]);
    expect(r.code, r.stderr).toBe(0);
    const text = readFileSync(configFile, 'utf8');
    for (const s of ['web', 'schedule', 'notify', 'syncthing']) expect(text).toContain(`\n# ${s}:\n`);

    const plain = loadConfig(configFile);
    expect(plain.role).toBe('source');
    expect(plain.web).toBeUndefined();
    expect(plain.notify).toBeUndefined();
    expect(plain.syncthing).toBeUndefined();

    const web = load(uncomment(text, 'web'), 'web.yaml');
    expect(web.web).toEqual({ listen: '127.0.0.1:9580' });
    const schedule = load(uncomment(text, 'schedule'), 'schedule.yaml');
    expect(schedule.schedule).toEqual({ backup: '40 * * * *', verify: '10 4 * * *', check: '25 * * * *' });
    const notify = load(uncomment(text, 'notify'), 'notify.yaml');
    expect(notify.notify?.webhook?.url).toBe('https://alerts.example.org/hook');
    const st = load(uncomment(text, 'syncthing'), 'syncthing.yaml');
    expect(st.role).toBe('source');
    expect(st.syncthing).toMatchObject({ url: 'http://127.0.0.1:8384', role: 'source', devices: [], staleAfter: 7200 });
    expect(st.syncthing?.home).toMatch(/syncthing$/);
    const all = load(
      ['web', 'schedule', 'notify', 'syncthing'].reduce((t, s) => uncomment(t, s), text),
      'all.yaml',
    );
    expect([all.web, all.notify, all.syncthing].every(Boolean)).toBe(true);
  }, 60_000);
});

describe('init --device', () => {
  it("writes a device's complete config (vault.dir, media.dir, receiver, vault.keep; notify, web, schedule commented) and prints the next steps", async () => {
    ws = makeWorkspace(null, 'unused');
    const configFile = path.join(ws.dir, 'etc', 'permafrost.yaml');
    const vault = path.join(ws.dir, 'nas', 'snapshots');
    const media = path.join(ws.dir, 'nas', 'media');
    const stHome = path.join(ws.dir, 'syncthing');
    const r = await runCli(['--config', configFile, 'init', '--device', '--vault', vault, '--media', media, '--syncthing-home', stHome]);
    expect(r.code, r.stderr).toBe(0);
    const config = loadConfig(configFile);
    expect(config.role).toBe('receiver');
    expect(config.vault).toEqual({ dir: vault, keep: { last: 6, hourly: 24, daily: 7, weekly: 4, monthly: 12 } });
    expect(config.media).toEqual({ dir: media, ignore: ['cache/**'] });
    expect(config.syncthing).toMatchObject({ role: 'receiver', home: stHome, url: 'http://127.0.0.1:8384', staleAfter: 7200 });
    expect('database' in config).toBe(false);
    const text = readFileSync(configFile, 'utf8');
    expect(text).not.toContain('\n# syncthing:\n');
    const notify = load(uncomment(text, 'notify'), 'notify.yaml');
    expect(notify.role).toBe('receiver');
    expect(notify.notify?.webhook?.url).toBe('https://alerts.example.org/hook');
    expect(load(uncomment(text, 'web'), 'web.yaml').web).toEqual({ listen: '127.0.0.1:9580' });
    expect(load(uncomment(text, 'schedule'), 'schedule.yaml').schedule.check).toBe('25 * * * *');
    // The next steps, in order: the device's ID for the server, sync apply, the daemon's unit.
    const steps = ['device-id', 'sync apply', 'systemd --daemon --install'].map((s) => r.stdout.indexOf(`--config ${configFile} ${s}`));
    expect(steps.every((i) => i > 0)).toBe(true);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
    expect(r.stdout).toContain(`the server's media in ${media}`);

    // The device config needs no server-only flag, and a device-only flag needs --device.
    let bad = await runCli(['--config', path.join(ws.dir, 'x.yaml'), 'init', '--device', '--mastodon', ws.dir]);
    expect(bad.code).toBe(2);
    expect(errorSentence(bad.stderr)).toMatch(/--mastodon is for the server's config/);
    bad = await runCli(['--config', path.join(ws.dir, 'x.yaml'), 'init', '--mastodon', ws.dir, '--media', media]);
    expect(bad.code).toBe(2);
    expect(errorSentence(bad.stderr)).toMatch(/--media is for a backup device's config; add --device/);
    bad = await runCli(['--config', path.join(ws.dir, 'x.yaml'), 'init', '--device', '--vault', media, '--media', path.join(media, 'm')]);
    expect(bad.code).toBe(2);
    expect(errorSentence(bad.stderr)).toMatch(/overlap/);
    bad = await runCli(['--config', configFile, 'init', '--device']);
    expect(bad.code).toBe(2);
    expect(errorSentence(bad.stderr)).toMatch(/already exists; pass --force/);
  }, 60_000);
});
