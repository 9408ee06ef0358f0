import { describeIssues } from '../schema-issues.js';
import type { Secret } from '../config/secret-values.js';
import type { SyncthingConfig } from '../config/schema-replicate.js';
import type { z } from 'zod';
import { UserError } from '../errors.js';
import { displayUrl, firstLine, HttpError, httpRequest, type HttpRequest, type HttpResponse } from '../net/http.js';

export interface SyncthingClientOptions {
  /** http://HOST:PORT, or the absolute path of the GUI's unix socket. */
  url: string;
  apiKey: string;
  timeoutMs?: number;
}

/** Where a request goes: a TCP host/port or a unix socket. */
export function parseSyncthingUrl(url: string): { socketPath: string } | { host: string; port: number; basePath: string } {
  if (url.startsWith('/')) return { socketPath: url };
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new UserError(`syncthing.url: ${url} is not a URL; use http://127.0.0.1:8384 or the path of Syncthing's GUI socket.`, {
      cause: err,
    });
  }
  if (u.protocol !== 'http:') {
    throw new UserError(
      `syncthing.url: only http:// (on loopback) or a unix socket path is supported, not ${u.protocol}; fix syncthing.url.`,
    );
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80), basePath: u.pathname.replace(/\/$/, '') };
}

/** Minimal Syncthing REST client on src/net/http.ts; failures are HttpErrors naming the setting to fix. */
export class SyncthingClient {
  readonly url: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly target: ReturnType<typeof parseSyncthingUrl>;

  constructor(opts: SyncthingClientOptions) {
    this.url = opts.url;
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.target = parseSyncthingUrl(opts.url);
  }

  /** GET, the reply checked against `schema` (only the fields permafrost uses; the rest passes through). */
  get<T>(p: string, schema: z.ZodType<T>): Promise<T> {
    return this.request('GET', p, undefined, schema);
  }
  post(p: string, body?: unknown): Promise<void> {
    return this.request('POST', p, body);
  }
  put(p: string, body: unknown): Promise<void> {
    return this.request('PUT', p, body);
  }
  patch(p: string, body: unknown): Promise<void> {
    return this.request('PATCH', p, body);
  }

  /** One call, JSON in; with a schema, JSON out. Throws HttpError naming the setting to fix. */
  async request(method: HttpRequest['method'], p: string, body?: unknown): Promise<void>;
  async request<T>(method: HttpRequest['method'], p: string, body: unknown, schema: z.ZodType<T>): Promise<T>;
  async request<T>(method: HttpRequest['method'], p: string, body?: unknown, schema?: z.ZodType<T>): Promise<T | void> {
    const headers: Record<string, string> = { 'X-API-Key': this.apiKey, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const req: HttpRequest = {
      method,
      ...('socketPath' in this.target
        ? { url: `http://localhost${p}`, socketPath: this.target.socketPath }
        : {
            url: `http://${this.target.host.includes(':') ? `[${this.target.host}]` : this.target.host}:${this.target.port}${this.target.basePath}${p}`,
          }),
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs: this.timeoutMs,
      // The API key travels in a header; paths and queries (folder and file names) are not secret.
      showPath: true,
    };
    const at = { method, url: displayUrl(req), socketPath: req.socketPath };
    let res: HttpResponse;
    try {
      res = await httpRequest(req);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      const why = (err.cause as NodeJS.ErrnoException | undefined)?.code ?? (err.cause as Error | undefined)?.message ?? err.message;
      throw new HttpError(`Syncthing's API at ${this.url} is unreachable (${why}): start Syncthing, or fix syncthing.url.`, {
        ...at,
        status: null,
        cause: err,
      });
    }
    const reply = { ...at, status: res.status, body: firstLine(res.text) };
    const endpoint = `${method} ${p.split('?')[0]}`;
    if (reply.status === 401 || reply.status === 403) {
      throw new HttpError(
        `Syncthing at ${this.url} refused the API key (HTTP ${reply.status}): fix syncthing.apiKeyFile (or syncthing.home) so it holds this Syncthing's API key.`,
        reply,
      );
    }
    if (reply.status < 200 || reply.status >= 300) {
      throw new HttpError(`Syncthing at ${this.url} answered HTTP ${reply.status} to ${endpoint}: ${reply.body || 'no details'}.`, reply);
    }
    if (!schema) return;
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch (err) {
      throw new HttpError(
        `Syncthing at ${this.url} answered ${endpoint} with something that is not JSON; check syncthing.url points at Syncthing's API.`,
        {
          ...reply,
          cause: err,
        },
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new HttpError(
        `Syncthing at ${this.url} answered ${endpoint} in a shape permafrost does not know (${describeIssues(parsed.error.issues).slice(0, 3).join('; ')}); use a Syncthing version permafrost supports.`,
        { ...reply, cause: parsed.error },
      );
    }
    return parsed.data;
  }
}

/**
 * The client for this config's Syncthing, with the API key read when the job started
 * (ops/secrets.ts); a UserError when the config has no syncthing section.
 */
export function clientFor(
  config: { syncthing?: SyncthingConfig; configPath: string },
  apiKey: Secret | undefined,
  opts: { timeoutMs?: number } = {},
): SyncthingClient {
  const cfg = requireSyncthing(config);
  if (!apiKey) throw new Error('clientFor: the Syncthing API key was not read at the start of the job');
  return new SyncthingClient({ url: cfg.url, apiKey: apiKey.reveal(), timeoutMs: opts.timeoutMs });
}

export function requireSyncthing(config: { syncthing?: SyncthingConfig; configPath: string }): SyncthingConfig {
  if (!config.syncthing) {
    throw new UserError(
      `Config ${config.configPath} has no syncthing section: add syncthing.url, syncthing.apiKeyFile and syncthing.devices.`,
    );
  }
  return config.syncthing;
}
