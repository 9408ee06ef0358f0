import { RemoteError } from '../errors.js';

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
}

export interface HttpResponse {
  status: number;
  text: string;
}

/** Only the scheme, host and port of a URL: paths and queries of webhook and ping URLs can be secrets. */
export function urlOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * The one place that talks HTTP to alert receivers (node's fetch). Network failures and timeouts
 * become a RemoteError naming the method and the URL's origin only, keeping `cause`; any HTTP status
 * is returned, for the caller to judge.
 */
export async function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const where = `${req.method} ${urlOrigin(req.url)}`;
  let res: Response;
  try {
    res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: 'error',
      signal: AbortSignal.timeout(req.timeoutMs),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${req.timeoutMs} ms` : (cause?.code ?? (err as Error).message);
    throw new RemoteError(`${where} failed: ${why}; check the receiver is up and reachable.`, { cause: err });
  }
  const text = await res.text().catch(() => '');
  return { status: res.status, text };
}
