import http from 'node:http';
import https from 'node:https';
import { RemoteError } from '../errors.js';

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  /** http:// or https:// URL; with `socketPath`, only its path and query are used. */
  url: string;
  /** Absolute path of a unix socket to send the request over instead of TCP. */
  socketPath?: string;
  headers?: Record<string, string>;
  body?: string;
  /** For the whole exchange, connect to last byte. */
  timeoutMs: number;
  /**
   * Whether errors may show the URL's path and query. Off by default: paths of webhook and ping
   * URLs can be secrets, so only the origin is named.
   */
  showPath?: boolean;
  /** What to do when nothing answers, ending the error sentence; default: check the server is up. */
  fix?: string;
}

export interface HttpResponse {
  status: number;
  text: string;
}

/** An HTTP exchange that failed: no answer (status null), or an answer its caller cannot use. */
export class HttpError extends RemoteError {
  readonly method: string;
  /** The URL as it may be shown: never a secret path, never a credential. */
  readonly url: string;
  readonly status: number | null;
  /** The server's own answer (first line, shortened), for callers that map it to a setting. */
  readonly body: string;

  /** The unix socket the request went over, when it did not go over TCP. */
  readonly socketPath: string | null;

  constructor(
    message: string,
    info: { method: string; url: string; socketPath?: string; status: number | null; body?: string; cause?: unknown },
  ) {
    super(message, {
      cause: info.cause,
      details: [
        `request: ${info.method} ${info.url} → ${info.status ?? 'no answer'}`,
        ...(info.socketPath ? [`over the unix socket ${info.socketPath}`] : []),
        ...(info.body ? [`server said: ${info.body}`] : []),
      ],
    });
    this.socketPath = info.socketPath ?? null;
    this.method = info.method;
    this.url = info.url;
    this.status = info.status;
    this.body = info.body ?? '';
  }

  /** Connection refused, socket missing, timeout: nothing answered. */
  get unreachable(): boolean {
    return this.status === null;
  }
}

/** Only the scheme, host and port of a URL: paths and queries of webhook and ping URLs can be secrets. */
export function urlOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** How a request's target may be named in messages (over a unix socket: the path only; the socket is named apart). */
export function displayUrl(req: Pick<HttpRequest, 'url' | 'socketPath' | 'showPath'>): string {
  let u: URL;
  try {
    u = new URL(req.url);
  } catch {
    return '(invalid URL)';
  }
  const rest = req.showPath ? `${u.pathname}${u.search}` : '';
  return req.socketPath ? rest || '/' : `${u.origin}${rest}`;
}

/** The first line of a reply body, short enough for an error message. */
export function firstLine(text: string): string {
  return text.trim().split('\n', 1)[0]?.slice(0, 300) ?? '';
}

/**
 * The one place in the product that talks HTTP (alert receivers, Syncthing's REST API), over TCP
 * or a unix socket. Redirects are not followed (a 3xx is returned like any status). Network
 * failures and timeouts become an HttpError with status null, keeping `cause`; any HTTP status is
 * returned, for the caller to judge.
 */
export function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const where = displayUrl(req);
  const noAnswer = (err: Error): HttpError => {
    const why = (err as NodeJS.ErrnoException).code ?? err.message;
    const target = req.socketPath ? `unix:${req.socketPath}` : where;
    return new HttpError(`${req.method} ${target} failed: ${why}; ${req.fix ?? 'check the server is up and reachable'}.`, {
      method: req.method,
      url: where,
      socketPath: req.socketPath,
      status: null,
      cause: err,
    });
  };
  let u: URL;
  try {
    u = new URL(req.url);
  } catch (err) {
    return Promise.reject(noAnswer(new Error('not a valid URL', { cause: err })));
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return Promise.reject(noAnswer(new Error(`unsupported scheme ${u.protocol}`)));
  const payload = req.body === undefined ? undefined : Buffer.from(req.body);
  const headers = { ...req.headers, ...(payload ? { 'content-length': String(payload.length) } : {}) };
  const target = req.socketPath
    ? { socketPath: req.socketPath, path: `${u.pathname}${u.search}` }
    : { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || undefined, path: `${u.pathname}${u.search}` };
  const lib = u.protocol === 'https:' && !req.socketPath ? https : http;
  return new Promise<HttpResponse>((resolve, reject) => {
    const request = lib.request({ ...target, method: req.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => fail(err));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(noAnswer(err));
    };
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${req.timeoutMs} ms`)), req.timeoutMs);
    request.on('error', fail);
    request.end(payload);
  });
}
