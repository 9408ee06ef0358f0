import { timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import type { Secret } from '../config/secret-values.js';
import type { Config } from '../config/schema.js';
import { UserError } from '../errors.js';
import { isLoopback } from '../net/loopback.js';
import { gatherOverview, isHealthy, judge, type JobView, type ReplicationReader } from '../ops/overview.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './prometheus.js';
import { FAVICON_SVG, renderPage, STYLE_CSS } from './page.js';

export const DEFAULT_LISTEN = '127.0.0.1:9580';

/** No script, no inline style, nothing from elsewhere; the page cannot be framed. */
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(\[([0-9a-fA-F:]+)\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UserError(`web.listen: "${listen}" is not host:port; use e.g. ${DEFAULT_LISTEN}.`);
  return { host: m[2] ?? m[1]!, port };
}

export interface WebServerOptions {
  listen?: string;
  /** web.tokenFile's token, read when the service starts (ops/secrets.ts); a page without it is open to whoever can reach it. */
  token?: Secret | undefined;
  /** The daemon's job states (next runs, last results), when served by the daemon. */
  jobs?: () => JobView[];
  replication?: ReplicationReader;
}

export interface WebServer {
  url: string;
  close(): Promise<void>;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  let given: string | null = null;
  const bearer = /^Bearer\s+(.+)$/i.exec(header);
  const basic = /^Basic\s+(.+)$/i.exec(header);
  if (bearer) given = bearer[1]!.trim();
  // Browsers: any user name, the token as password.
  else if (basic) given = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':').slice(1).join(':');
  if (given === null) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The Hono app: `/`, `/style.css`, `/metrics`, `/api/status.json`; read-only. */
export function buildApp(config: Config, opts: Omit<WebServerOptions, 'token'> & { token: string | null }): Hono {
  const app = new Hono();
  // One overview and one judgement per request: the page, /metrics and status.json show the same verdict.
  const overview = async () => {
    const o = await gatherOverview(config, { replication: opts.replication, jobs: opts.jobs });
    return { o, problems: judge(o) };
  };
  app.use('*', async (c, next) => {
    if (opts.token !== null && !tokenMatches(c.req.header('authorization'), opts.token)) {
      c.header('WWW-Authenticate', 'Basic realm="permafrost", charset="UTF-8"');
      return c.text('permafrost: this page needs the token from web.tokenFile (as a bearer token, or as the password).\n', 401);
    }
    await next();
    c.header('Content-Security-Policy', CSP);
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Cache-Control', 'no-store');
  });
  const readOnly = (c: Context) => c.text('read-only\n', 405, { Allow: 'GET, HEAD' });
  app.get('/', async (c) => {
    const { o, problems } = await overview();
    return c.html(renderPage(o, problems));
  });
  app.get('/style.css', (c) => c.body(STYLE_CSS, 200, { 'Content-Type': 'text/css; charset=utf-8' }));
  app.get('/favicon.svg', (c) => c.body(FAVICON_SVG, 200, { 'Content-Type': 'image/svg+xml' }));
  app.get('/metrics', async (c) => {
    const { o, problems } = await overview();
    return c.body(await renderMetrics(o, problems), 200, { 'Content-Type': METRICS_CONTENT_TYPE });
  });
  app.get('/api/status.json', async (c) => {
    const { o, problems } = await overview();
    return c.json({ ...o, jobs: o.schedule, healthy: isHealthy(problems), problems });
  });
  app.on(['POST', 'PUT', 'PATCH', 'DELETE'], '*', readOnly);
  app.notFound((c) => c.text('not found\n', 404));
  app.onError((err, c) => c.text(`permafrost: ${err.message}\n`, 500));
  return app;
}

/**
 * Starts the status page. Binding anything but loopback requires a token (web.tokenFile), so the vault's
 * state is never open to the network by accident.
 */
export async function startWebServer(config: Config, opts: WebServerOptions = {}): Promise<WebServer> {
  const { host, port } = parseListen(opts.listen ?? config.web?.listen ?? DEFAULT_LISTEN);
  if (!isLoopback(host) && !opts.token) {
    throw new UserError(
      `web.listen: ${host} is reachable from other machines; set web.tokenFile (a 0600 file holding a long random token) or listen on 127.0.0.1.`,
    );
  }
  const token = opts.token ? opts.token.reveal() : null;
  const app = buildApp(config, { ...opts, token });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: host, port }) as Server;
    s.once('listening', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new UserError(
          `web.listen: cannot listen on ${host}:${port} (${err.code ?? err.message}); choose another port or stop what uses it.`,
          { cause: err },
        ),
      ),
    );
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shown}:${addr.port}/`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
