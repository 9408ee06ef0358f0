import { describe, expect, it } from 'vitest';

describe('requestedCommand (which command module main.ts loads)', () => {
  it.each([
    [['backup'], 'backup'],
    [['--config', 'backup', 'list', '--json'], 'list'],
    [['-c', '/etc/p.yaml', 'device-id'], 'device-id'],
    [['--help'], undefined],
    [['help', 'backup'], undefined],
    [['bakup'], undefined],
  ])('%j → %s', async (args, expected) => {
    const { requestedCommand } = await import('../../../src/cli/registry.js');
    expect(requestedCommand(args)).toBe(expected);
  });
});
