import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A local HTTP receiver on 127.0.0.1 that records every request; `answer` picks the status and body. */
export interface Sink {
  url: string;
  port: number;
  received: Received[];
  close(): Promise<void>;
}

export async function startSink(answer: (r: Received) => { status: number; body?: string } = () => ({ status: 200 })): Promise<Sink> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body };
      received.push(r);
      const a = answer(r);
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body ?? '{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Speaks Mastodon's POST /api/v1/statuses, accepting only the given bearer token. */
export function startMastodon(token: string): Promise<Sink> {
  let id = 1;
  return startSink((r) => {
    if (r.method !== 'POST' || r.path !== '/api/v1/statuses') return { status: 404, body: '{"error":"Record not found"}' };
    if (r.headers.authorization !== `Bearer ${token}`) return { status: 401, body: '{"error":"The access token is invalid"}' };
    const status = (JSON.parse(r.body) as { status?: string }).status;
    if (!status) return { status: 422, body: '{"error":"Validation failed: Text can\'t be blank"}' };
    return { status: 200, body: JSON.stringify({ id: String(id++), visibility: 'direct' }) };
  });
}

/** A port on 127.0.0.1 where nothing listens (bound, then closed). */
export async function deadPort(): Promise<number> {
  const s = await startSink();
  await s.close();
  return s.port;
}
