import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, startCli, type Workspace } from '../../harness/env.js';
import { clusterPerFile } from '../../harness/suite.js';
import { deadPort } from '../../harness/http-sinks.js';
import { parsePromText, sampleValue } from '../../harness/prom-text.js';
import { waitFor } from '../../harness/wait.js';
import { loadConfig } from '../../../src/config/load.js';
import { startWebServer } from '../../../src/web/server.js';
import { Secret } from '../../../src/config/secret-values.js';
import { readSecretFile } from '../../../src/config/secret-file.js';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const cluster = clusterPerFile('growing');
let ws: Workspace;
let browser: Browser;

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});
afterAll(async () => {
  await browser?.close();
});
afterEach(() => ws?.cleanup());

describe('status page', () => {
  it('the daemon serves a page that shows the real snapshots, in headless Chromium', async () => {
    const pg = cluster.get();
    ws = makeWorkspace(pg, 'growing');
    // Three snapshots of a growing database, so the chart has a shape; the newest is verified.
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      pg.psql(
        'growing',
        `INSERT INTO statuses (id, text, account_id) SELECT 120000000000000000 + ${i * 5000} + g, md5(g::text) || repeat(md5(random()::text), 8), 1 FROM generate_series(1, ${2000 * (i + 1)}) g`,
      );
      const r = await runCli(['--config', ws.configFile, 'backup', '--json']);
      expect(r.code, r.stderr).toBe(0);
      ids.push((JSON.parse(r.stdout) as { id: string }).id);
    }
    expect((await runCli(['--config', ws.configFile, 'verify'])).code).toBe(0);

    const port = await deadPort();
    // A schedule that will not fire during the test: the page is what is tested here.
    ws.writeConfig({ extra: { web: { listen: `127.0.0.1:${port}` }, schedule: { backup: '0 0 1 1 *', verify: '0 0 1 1 *' } } });
    const daemon = startCli(['--config', ws.configFile, 'daemon']);
    let out = '';
    daemon.child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the web service to start', () => out.includes('"service.start"'));
      const url = `http://127.0.0.1:${port}/`;

      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const consoleErrors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') consoleErrors.push(m.text());
      });
      const res = await page.goto(url);
      expect(res?.status()).toBe(200);
      const headers = res!.headers();
      expect(headers['content-security-policy']).toContain("default-src 'none'");
      expect(headers['content-security-policy']).not.toContain('unsafe-inline');

      expect(await page.title()).toMatch(/^permafrost/);
      expect(await page.textContent('#newest')).toBe(ids[2]);
      const rows = await page.$$eval('#snapshots tbody tr', (trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')),
      );
      expect(rows.map((r) => r[0])).toEqual([...ids].reverse());
      expect(rows[0]![5]).toBe('✓ verified');
      expect(rows[1]![5]).toBe('never verified');
      expect(rows.every((r) => /\d+(\.\d)? (B|KiB|MiB)/.test(r[2]!))).toBe(true);
      // Sizes on the page are the manifests' sizes.
      const manifest = JSON.parse(readFileSync(path.join(ws.vault, ids[2]!, 'manifest.json'), 'utf8')) as {
        files: Array<{ bytes: number }>;
      };
      const kib = manifest.files.reduce((n, f) => n + f.bytes, 0) / 1024;
      expect(rows[0]![2]).toBe(kib >= 1024 ? `${(kib / 1024).toFixed(1)} MiB` : `${kib.toFixed(1)} KiB`);
      // Two charts, one point per snapshot each, drawn server-side.
      expect(await page.$$eval('svg', (s) => s.length)).toBe(2);
      expect(await page.$$eval('svg circle', (c) => c.length)).toBe(6);
      // The schedule table comes from the daemon.
      const jobs = await page.$$eval('#jobs tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
      expect(jobs).toEqual(['backup', 'verify', 'check']);
      // The stylesheet loaded under the CSP (a table header is styled bold).
      expect(await page.$eval('th', (th) => getComputedStyle(th).fontWeight)).toBe('600');
      expect(consoleErrors, consoleErrors.join('\n')).toEqual([]);
      await page.screenshot({ path: '/tmp/permafrost-status.png', fullPage: true });
      await page.close();

      const metrics = await fetch(`${url}metrics`);
      expect(metrics.headers.get('content-type')).toContain('text/plain');
      expect(sampleValue(parsePromText(await metrics.text()), 'permafrost_snapshots')).toBe(3);
      const status = (await (await fetch(`${url}api/status.json`)).json()) as {
        snapshots: Array<{ id: string }>;
        jobs: Array<{ name: string }>;
      };
      expect(status.snapshots.map((s) => s.id)).toEqual([...ids].reverse());
      expect(status.jobs.map((j) => j.name)).toEqual(['backup', 'verify', 'check']);
      expect((await fetch(url, { method: 'POST' })).status).toBe(405);
    } finally {
      daemon.child.kill('SIGTERM');
      await daemon.result;
    }
  });

  it('asks for the token when one is set, and refuses to bind beyond loopback without one', async () => {
    ws = makeWorkspace(cluster.get(), 'growing');
    const tokenFile = path.join(ws.dir, 'web-token');
    writeFileSync(tokenFile, 'page-token-123456789\n', { mode: 0o600 });
    ws.writeConfig({ extra: { web: { listen: '0.0.0.0:9580' } } });
    const config = loadConfig(ws.configFile);
    await expect(startWebServer(config)).rejects.toThrow(/web.listen: 0.0.0.0 is reachable from other machines; set web.tokenFile/);

    const server = await startWebServer(config, {
      listen: '127.0.0.1:0',
      token: Secret.read(() => readSecretFile(tokenFile, 'web.tokenFile')),
    });
    try {
      expect((await fetch(server.url)).status).toBe(401);
      expect((await fetch(`${server.url}metrics`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${server.url}metrics`, { headers: { authorization: 'Bearer page-token-123456789' } })).status).toBe(200);
      const ctx = await browser.newContext({ httpCredentials: { username: 'admin', password: 'page-token-123456789' } });
      const page = await ctx.newPage();
      const res = await page.goto(server.url);
      expect(res?.status()).toBe(200);
      expect(await page.textContent('.headline')).toContain('No snapshot yet');
      await ctx.close();
    } finally {
      await server.close();
    }
  });
});
