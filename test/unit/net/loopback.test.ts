import { describe, expect, it } from 'vitest';
import { isLoopback } from '../../../src/net/loopback.js';

describe('isLoopback', () => {
  it.each(['127.0.0.1', '127.255.3.4', 'localhost', '::1', '[::1]'])('%s is loopback', (h) => expect(isLoopback(h)).toBe(true));

  it.each([
    '0.0.0.0',
    '::',
    '[::]',
    '10.0.0.1',
    '127.0.0.1.evil.example',
    'evil.127.0.0.1',
    'localhost.evil.example',
    '127.1',
    '0177.0.0.1',
    '[127.0.0.1',
    '',
  ])('%s is not', (h) => expect(isLoopback(h)).toBe(false));
});
