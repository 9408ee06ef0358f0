import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { readSecretFile } from '../config/secret-file.js';
import type { SyncthingConfig } from '../config/schema-replicate.js';
import { RemoteError, UserError } from '../errors.js';

/** A Syncthing REST call that failed: keeps the method, path and HTTP status (null: no answer). */
export class SyncthingError extends RemoteError {
  readonly method: string;
  readonly path: string;
  readonly status: number | null;
  /** Syncthing's own answer (first line), for callers that map it to a setting. */
  readonly body: string;

  constructor(message: string, info: { method: string; path: string; status: number | null; body?: string; cause?: unknown }) {
    super(message, {
      cause: info.cause,
      details: [`request: ${info.method} ${info.path} → ${info.status ?? 'no answer'}`, ...(info.body ? [`syncthing said: ${info.body}`] : [])],
    });
    this.method = info.method;
    this.path = info.path;
    this.status = info.status;
    this.body = info.body ?? '';
  }

  /** Connection refused, socket missing, timeout: Syncthing is not there. */
  get unreachable(): boolean {
    return this.status === null;
  }
}

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
    throw new UserError(`syncthing.url: ${url} is not a URL; use http://127.0.0.1:8384 or the path of Syncthing's GUI socket.`, { cause: err });
  }
  if (u.protocol !== 'http:') {
    throw new UserError(`syncthing.url: only http:// (on loopback) or a unix socket path is supported, not ${u.protocol}; fix syncthing.url.`);
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80), basePath: u.pathname.replace(/\/$/, '') };
}

/** Minimal Syncthing REST client (node:http; no global fetch, so unix sockets work). */
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

  get<T>(p: string): Promise<T> {
    return this.request<T>('GET', p);
  }
  post<T>(p: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', p, body);
  }
  put<T>(p: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', p, body);
  }
  patch<T>(p: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', p, body);
  }

  /** One call; JSON in and out. Throws SyncthingError naming the setting to fix. */
  request<T>(method: string, p: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { 'X-API-Key': this.apiKey, Accept: 'application/json' };
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const where =
      'socketPath' in this.target
        ? { socketPath: this.target.socketPath, path: p }
        : { host: this.target.host, port: this.target.port, path: this.target.basePath + p };
    return new Promise<T>((resolve, reject) => {
      const req = http.request({ ...where, method, headers, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(this.unreachable(method, p, err)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            if (text.trim() === '') return resolve(undefined as T);
            try {
              resolve(JSON.parse(text) as T);
            } catch {
              // Some endpoints answer plain text; callers of those ignore the body.
              resolve(text as T);
            }
            return;
          }
          reject(this.httpError(method, p, status, text));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs / 1000}s`)));
      req.on('error', (err) => reject(this.unreachable(method, p, err)));
      if (payload) req.write(payload);
      req.end();
    });
  }

  private unreachable(method: string, p: string, err: Error): SyncthingError {
    const code = (err as NodeJS.ErrnoException).code;
    return new SyncthingError(
      `Syncthing's API at ${this.url} is unreachable (${code ?? err.message}): start Syncthing, or fix syncthing.url.`,
      { method, path: p, status: null, cause: err },
    );
  }

  private httpError(method: string, p: string, status: number, text: string): SyncthingError {
    const firstLine = text.trim().split('\n', 1)[0]?.slice(0, 300) ?? '';
    if (status === 401 || status === 403) {
      return new SyncthingError(
        `Syncthing at ${this.url} refused the API key (HTTP ${status}): fix syncthing.apiKeyFile (or syncthing.home) so it holds this Syncthing's API key.`,
        { method, path: p, status, body: firstLine },
      );
    }
    return new SyncthingError(`Syncthing at ${this.url} answered HTTP ${status} to ${method} ${p.split('?')[0]}: ${firstLine || 'no details'}.`, {
      method,
      path: p,
      status,
      body: firstLine,
    });
  }
}

/** The API key from syncthing.apiKeyFile, or from <gui><apikey> in syncthing.home's config.xml. */
export function readApiKey(cfg: SyncthingConfig): string {
  if (cfg.apiKeyFile) return readSecretFile(cfg.apiKeyFile, 'syncthing.apiKeyFile');
  const file = path.join(cfg.home!, 'config.xml');
  let xml: string;
  try {
    xml = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`syncthing.home: cannot read ${file}; point syncthing.home at Syncthing's folder (the one holding config.xml).`, {
      cause: err,
    });
  }
  const m = /<gui\b[\s\S]*?<apikey>([^<]+)<\/apikey>[\s\S]*?<\/gui>/.exec(xml);
  if (!m?.[1]) throw new UserError(`syncthing.home: ${file} has no GUI API key; set one in Syncthing's settings, or use syncthing.apiKeyFile.`);
  return m[1].trim();
}

/** The client for this config's Syncthing; a UserError when the config has no syncthing section. */
export function clientFor(config: { syncthing?: SyncthingConfig; configPath: string }, opts: { timeoutMs?: number } = {}): SyncthingClient {
  const cfg = requireSyncthing(config);
  return new SyncthingClient({ url: cfg.url, apiKey: readApiKey(cfg), timeoutMs: opts.timeoutMs });
}

export function requireSyncthing(config: { syncthing?: SyncthingConfig; configPath: string }): SyncthingConfig {
  if (!config.syncthing) {
    throw new UserError(`Config ${config.configPath} has no syncthing section: add syncthing.url, syncthing.apiKeyFile and syncthing.devices.`);
  }
  return config.syncthing;
}
