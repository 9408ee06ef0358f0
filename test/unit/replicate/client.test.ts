import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { clientFor, parseSyncthingUrl, requireSyncthing, SyncthingClient } from '../../../src/replicate/client.js';
import { Secret } from '../../../src/config/secret-values.js';
import { syncthingSchema } from '../../../src/config/schema-replicate.js';
import { HttpError } from '../../../src/net/http.js';
import { UserError } from '../../../src/errors.js';
import { deadPort, startSink, type Received, type Sink } from '../../harness/http-sinks.js';

describe('parseSyncthingUrl (where a request goes)', () => {
  it.each([
    ['http://127.0.0.1:8384', { host: '127.0.0.1', port: 8384, basePath: '' }],
    ['http://[::1]:8384/', { host: '::1', port: 8384, basePath: '' }],
    ['http://localhost/syncthing/', { host: 'localhost', port: 80, basePath: '/syncthing' }],
    ['/run/syncthing/gui.sock', { socketPath: '/run/syncthing/gui.sock' }],
  ])('url %s', (url, expected) => expect(parseSyncthingUrl(url)).toEqual(expected));
  it('refuses https (not supported) and what is no URL, with the key to fix', () => {
    expect(() => parseSyncthingUrl('https://127.0.0.1:8384')).toThrow(
      'syncthing.url: only http:// (on loopback) or a unix socket path is supported, not https:; fix syncthing.url.',
    );
    expect(() => parseSyncthingUrl('127.0.0.1:8384')).toThrow(UserError);
    expect(() => parseSyncthingUrl('localhost 8384')).toThrow(
      "syncthing.url: localhost 8384 is not a URL; use http://127.0.0.1:8384 or the path of Syncthing's GUI socket.",
    );
  });
});

// A local HTTP server standing in for Syncthing's REST API: the answers a real one cannot be made
// to give (a wrong shape, not JSON, a 500) as well as a refused key.
let answer: (r: Received) => { status: number; body?: string };
let sink: Sink;
beforeAll(async () => {
  sink = await startSink((r) => answer(r));
});
afterAll(() => sink.close());
beforeEach(() => {
  sink.received.length = 0;
  answer = () => ({ status: 200, body: '{"myID":"ABC","extra":1}' });
});

const status = z.object({ myID: z.string() });

describe('SyncthingClient', () => {
  it('GET: the API key in a header, the reply checked by the schema (unknown fields pass)', async () => {
    const c = new SyncthingClient({ url: `${sink.url}/base/`, apiKey: 'k3y' });
    await expect(c.get('/rest/system/status', status)).resolves.toMatchObject({ myID: 'ABC' });
    expect(sink.received[0]).toMatchObject({ method: 'GET', path: '/base/rest/system/status' });
    expect(sink.received[0]!.headers['x-api-key']).toBe('k3y');
  });

  it('POST/PUT/PATCH send JSON', async () => {
    const c = new SyncthingClient({ url: sink.url, apiKey: 'k' });
    await c.put('/rest/config/folders/f', { id: 'f' });
    await c.patch('/rest/config/folders/f', { paused: false });
    await c.post('/rest/db/scan?folder=f');
    expect(sink.received.map((r) => [r.method, r.path, r.body, r.headers['content-type'] ?? null])).toEqual([
      ['PUT', '/rest/config/folders/f', '{"id":"f"}', 'application/json'],
      ['PATCH', '/rest/config/folders/f', '{"paused":false}', 'application/json'],
      ['POST', '/rest/db/scan?folder=f', '', null],
    ]);
  });

  it.each([
    [
      403,
      'CSRF Error',
      `refused the API key (HTTP 403): fix syncthing.apiKeyFile (or syncthing.home) so it holds this Syncthing's API key.`,
    ],
    [401, '', 'refused the API key (HTTP 401)'],
    [500, 'folder "f" does not exist\nmore', 'answered HTTP 500 to POST /rest/db/scan: folder "f" does not exist.'],
  ])('HTTP %d: one sentence naming what to fix', async (code, body, sentence) => {
    answer = () => ({ status: code, body });
    const err = (await new SyncthingClient({ url: sink.url, apiKey: 'k' })
      .post('/rest/db/scan?folder=f')
      .catch((e: unknown) => e)) as HttpError;
    expect(err).toBeInstanceOf(HttpError);
    expect(err.message).toContain(sentence);
    expect(err.status).toBe(code);
    expect(err.unreachable).toBe(false);
  });

  it('a reply that is not JSON, or not of the known shape, names the endpoint', async () => {
    const c = new SyncthingClient({ url: sink.url, apiKey: 'k' });
    answer = () => ({ status: 200, body: '<html>' });
    await expect(c.get('/rest/system/status?x=1', status)).rejects.toThrow(
      `Syncthing at ${sink.url} answered GET /rest/system/status with something that is not JSON; check syncthing.url points at Syncthing's API.`,
    );
    answer = () => ({ status: 200, body: '{"myID":7}' });
    await expect(c.get('/rest/system/status', status)).rejects.toThrow(
      /answered GET \/rest\/system\/status in a shape permafrost does not know \(myID: /,
    );
  });

  it('nothing listening: unreachable, saying to start Syncthing or fix syncthing.url', async () => {
    const url = `http://127.0.0.1:${await deadPort()}`;
    const err = (await new SyncthingClient({ url, apiKey: 'k', timeoutMs: 2000 })
      .post('/rest/db/scan')
      .catch((e: unknown) => e)) as HttpError;
    expect(err.unreachable).toBe(true);
    expect(err.message).toBe(`Syncthing's API at ${url} is unreachable (ECONNREFUSED): start Syncthing, or fix syncthing.url.`);
  });
});

describe('clientFor / requireSyncthing', () => {
  const st = syncthingSchema.parse({ url: 'http://127.0.0.1:8384', apiKeyFile: '/k' });
  it('no syncthing section: a UserError naming the config and the keys to add', () => {
    expect(() => requireSyncthing({ configPath: '/etc/p.yaml' })).toThrow(
      new UserError('Config /etc/p.yaml has no syncthing section: add syncthing.url, syncthing.apiKeyFile and syncthing.devices.'),
    );
    expect(requireSyncthing({ configPath: '/p', syncthing: st })).toBe(st);
  });
  it('the client of the config, with the key read at the start of the job; without the key it is a bug', () => {
    const c = clientFor({ configPath: '/p', syncthing: st }, Secret.of('k'));
    expect(c.url).toBe('http://127.0.0.1:8384');
    expect(() => clientFor({ configPath: '/p', syncthing: st }, undefined)).toThrow('the Syncthing API key was not read');
  });
});
