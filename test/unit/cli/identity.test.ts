import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { agentOption, identityOptions, secretFlags } from '../../../src/cli/identity.js';
import type { Io } from '../../../src/cli/run.js';

const io: Io = { out: () => undefined, err: () => undefined, isTTY: false };
const tty = process.stdin.isTTY;
afterEach(() => {
  process.stdin.isTTY = tty;
});

describe('identity flags', () => {
  it('identityOptions and agentOption declare --identity, --identity-passphrase-file, --gpg-agent', () => {
    const cmd = agentOption(identityOptions(new Command('restore')));
    expect(cmd.options.map((o) => o.long)).toEqual(['--identity', '--identity-passphrase-file', '--gpg-agent']);
    cmd.parse(['--identity', '/k.asc', '--identity-passphrase-file', '/p', '--gpg-agent'], { from: 'user' });
    expect(cmd.opts()).toEqual({ identity: '/k.asc', identityPassphraseFile: '/p', gpgAgent: true });
  });

  it('secretFlags passes the flags on; without a terminal on stdin there is no prompt for a protected key', () => {
    process.stdin.isTTY = false;
    const flags = secretFlags(io, { passphraseFile: '/pp', identity: '/k.asc', identityPassphraseFile: '/p', gpgAgent: true });
    expect(flags).toEqual({ passphraseFile: '/pp', gpgAgent: true, identity: '/k.asc', identityPassphraseFile: '/p' });
    expect('askIdentityPassphrase' in flags).toBe(false);
  });

  it('on a terminal it offers the hidden prompt', () => {
    process.stdin.isTTY = true;
    expect(secretFlags(io, {}).askIdentityPassphrase).toBeTypeOf('function');
  });
});
