import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { displayUrl, firstLine, HttpError, httpRequest, urlOrigin } from '../../../src/net/http.js';
import { deadPort } from '../../harness/http-sinks.js';

/** A real HTTP server (TCP on loopback and a unix socket): /echo answers with what it got, /slow never answers, /moved redirects. */
let server: Server;
let sockServer: Server;
let base: string;
const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-http-'));
const sock = path.join(dir, 'api.sock');

function handler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  let body = '';
  req.on('data', (d: Buffer) => (body += d.toString()));
  req.on('end', () => {
    if (req.url === '/slow') return;
    if (req.url === '/moved') {
      res.writeHead(302, { location: '/echo' });
      return res.end('moved\nsecond line');
    }
    res.writeHead(418);
    res.end(
      JSON.stringify({
        method: req.method,
        url: req.url,
        body,
        length: req.headers['content-length'] ?? null,
        key: req.headers['x-api-key'],
      }),
    );
  });
}

beforeAll(async () => {
  server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sockServer = createServer(handler);
  await new Promise<void>((r) => sockServer.listen(sock, r));
});
afterAll(async () => {
  server.closeAllConnections();
  sockServer.closeAllConnections();
  await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => sockServer.close(r))]);
  rmSync(dir, { recursive: true, force: true });
});

describe('httpRequest', () => {
  it('sends method, path, query, headers and the body with its length; any status comes back for the caller to judge', async () => {
    const r = await httpRequest({ method: 'PUT', url: `${base}/echo?x=1`, headers: { 'X-API-Key': 'k' }, body: 'héllo', timeoutMs: 5000 });
    expect(r.status).toBe(418);
    expect(JSON.parse(r.text)).toEqual({ method: 'PUT', url: '/echo?x=1', body: 'héllo', length: '6', key: 'k' });
  });

  it('over a unix socket only the path and query of the URL are used', async () => {
    const r = await httpRequest({ method: 'GET', url: 'http://localhost/echo?y=2', socketPath: sock, timeoutMs: 5000 });
    expect(JSON.parse(r.text)).toMatchObject({ method: 'GET', url: '/echo?y=2', length: null });
  });

  it('a redirect is returned, not followed', async () => {
    const r = await httpRequest({ method: 'GET', url: `${base}/moved`, timeoutMs: 5000 });
    expect(r).toEqual({ status: 302, text: 'moved\nsecond line' });
  });

  it('nothing listening: an HttpError with no status, naming the origin only (paths can be secrets) and the fix', async () => {
    const port = await deadPort();
    const err = await httpRequest({
      method: 'POST',
      url: `http://127.0.0.1:${port}/secret-token/ping`,
      timeoutMs: 5000,
      fix: 'check notify.ping.url',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    const e = err as HttpError;
    expect(e.unreachable).toBe(true);
    expect(e.message).toBe(`POST http://127.0.0.1:${port} failed: ECONNREFUSED; check notify.ping.url.`);
    expect(e.message).not.toContain('secret-token');
    expect(e.details).toEqual([`request: POST http://127.0.0.1:${port} → no answer`]);
    expect(e.exitCode).toBe(1);
  });

  it('a missing socket and a server that never answers (timeout) are "no answer" too', async () => {
    const gone = (await httpRequest({
      method: 'GET',
      url: 'http://localhost/x',
      socketPath: path.join(dir, 'none.sock'),
      timeoutMs: 5000,
    }).catch((e: unknown) => e)) as HttpError;
    expect(gone.message).toBe(`GET unix:${path.join(dir, 'none.sock')} failed: ENOENT; check the server is up and reachable.`);
    expect(gone.details).toContain(`over the unix socket ${path.join(dir, 'none.sock')}`);
    const slow = (await httpRequest({ method: 'GET', url: `${base}/slow`, timeoutMs: 200 }).catch((e: unknown) => e)) as HttpError;
    expect(slow.unreachable).toBe(true);
    expect(slow.message).toContain('failed: no answer within 200 ms;');
  });

  it('an invalid URL or another scheme is refused without a connection', async () => {
    await expect(httpRequest({ method: 'GET', url: 'not a url', timeoutMs: 100 })).rejects.toThrow(
      'GET (invalid URL) failed: not a valid URL;',
    );
    await expect(httpRequest({ method: 'GET', url: 'ftp://127.0.0.1/x', timeoutMs: 100 })).rejects.toThrow(
      'failed: unsupported scheme ftp:;',
    );
  });
});

describe('how a URL may be named', () => {
  it('urlOrigin and displayUrl keep only the origin unless showPath; over a socket the path alone', () => {
    expect(urlOrigin('https://hc-ping.com/uuid-secret?x=1')).toBe('https://hc-ping.com');
    expect(urlOrigin('::')).toBe('(invalid URL)');
    expect(displayUrl({ url: 'https://hooks.example/T0/B1/secret' })).toBe('https://hooks.example');
    expect(displayUrl({ url: 'http://127.0.0.1:8384/rest/db/scan?folder=f', showPath: true })).toBe(
      'http://127.0.0.1:8384/rest/db/scan?folder=f',
    );
    expect(displayUrl({ url: 'http://localhost/rest/system/status', socketPath: '/s', showPath: true })).toBe('/rest/system/status');
    expect(displayUrl({ url: 'http://localhost/rest', socketPath: '/s' })).toBe('/');
  });

  it('firstLine: the first line of a reply, trimmed, at most 300 characters', () => {
    expect(firstLine('\n  error: bad key\nstack…')).toBe('error: bad key');
    expect(firstLine('x'.repeat(400))).toHaveLength(300);
    expect(firstLine('')).toBe('');
  });

  it('HttpError: details name the request, the status, the socket and what the server said', () => {
    const e = new HttpError('Syncthing refused', { method: 'GET', url: '/rest', socketPath: '/s', status: 403, body: 'CSRF Error' });
    expect(e.details).toEqual(['request: GET /rest → 403', 'over the unix socket /s', 'server said: CSRF Error']);
    expect([e.unreachable, e.status, e.body, e.socketPath]).toEqual([false, 403, 'CSRF Error', '/s']);
  });
});
