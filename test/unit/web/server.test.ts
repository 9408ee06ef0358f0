import { describe, expect, it } from 'vitest';
import { isLoopback } from '../../../src/net/loopback.js';
import { parseListen } from '../../../src/web/server.js';

describe('listen address', () => {
  it.each([
    ['127.0.0.1:9580', '127.0.0.1', 9580, true],
    ['localhost:80', 'localhost', 80, true],
    ['[::1]:9580', '::1', 9580, true],
    ['0.0.0.0:9580', '0.0.0.0', 9580, false],
    ['192.168.1.5:9580', '192.168.1.5', 9580, false],
    ['[::]:9580', '::', 9580, false],
  ])('%s', (listen, host, port, loop) => {
    expect(parseListen(listen)).toEqual({ host, port });
    expect(isLoopback(host)).toBe(loop);
  });

  it('rejects what is not host:port', () => {
    expect(() => parseListen('9580')).toThrow(/web.listen: "9580" is not host:port/);
    expect(() => parseListen('127.0.0.1:70000')).toThrow(/not host:port/);
  });
});
