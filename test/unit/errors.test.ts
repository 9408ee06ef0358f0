import { describe, expect, it } from 'vitest';
import {
  BusyError,
  type ErrorKind,
  errorMessage,
  IntegrityError,
  PermafrostError,
  RemoteError,
  ToolError,
  UserError,
} from '../../src/errors.js';

describe('error kinds → the documented exit codes', () => {
  it('user 2, integrity 3, busy 4, internal 70, every other kind 1', () => {
    const expected: Record<ErrorKind, number> = {
      user: 2,
      tool: 1,
      server: 1,
      connection: 1,
      space: 1,
      io: 1,
      stopped: 1,
      part: 1,
      unhealthy: 1,
      remote: 1,
      integrity: 3,
      busy: 4,
      internal: 70,
    };
    for (const [kind, code] of Object.entries(expected)) {
      expect([kind, new PermafrostError(kind as ErrorKind, 'x').exitCode]).toEqual([kind, code]);
    }
  });

  it('each subclass carries its kind and exit code and is a PermafrostError', () => {
    const cases: [PermafrostError, ErrorKind, number][] = [
      [new UserError('u'), 'user', 2],
      [new RemoteError('r'), 'remote', 1],
      [new IntegrityError('i'), 'integrity', 3],
      [new BusyError('b'), 'busy', 4],
      [new ToolError('t', { argv: ['gpg'], exitStatus: 2, stderr: '' }), 'tool', 1],
    ];
    for (const [err, kind, code] of cases) {
      expect(err).toBeInstanceOf(PermafrostError);
      expect(err).toBeInstanceOf(Error);
      expect(err.kind).toBe(kind);
      expect(err.exitCode).toBe(code);
      expect(err.name).toBe('PermafrostError');
    }
  });

  it('keeps the cause and details it was given, and no cause when none was', () => {
    const cause = new Error('ENOSPC');
    const err = new PermafrostError('space', 'The vault disk is full; free space.', { cause, details: ['line 1'] });
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual(['line 1']);
    expect('cause' in new UserError('no cause')).toBe(false);
    expect(new UserError('no details').details).toEqual([]);
  });
});

describe('ToolError', () => {
  it('shows the command, its exit status and only the last five lines of stderr', () => {
    const stderr = `${Array.from({ length: 8 }, (_, i) => `line ${i + 1}`).join('\n')}\n\n`;
    const err = new ToolError('pg_dump failed.', { argv: ['pg_dump', '-Fc', 'mastodon'], exitStatus: 1, stderr });
    expect(err.stderrTail).toBe('line 4\nline 5\nline 6\nline 7\nline 8');
    expect(err.details).toEqual(['command: pg_dump -Fc mastodon (exit 1)', 'line 4', 'line 5', 'line 6', 'line 7', 'line 8']);
    expect(err.signal).toBeNull();
    expect(err.exitStatus).toBe(1);
  });

  it('names the signal that ended a killed program', () => {
    const err = new ToolError('gpg was killed.', { argv: ['gpg'], exitStatus: null, signal: 'SIGKILL', stderr: '' });
    expect(err.details).toEqual(['command: gpg (killed by SIGKILL)']);
    expect(err.signal).toBe('SIGKILL');
    const noStatus = new ToolError('x', { argv: ['redis-cli'], exitStatus: null, stderr: '' });
    expect(noStatus.details[0]).toBe('command: redis-cli (exit signal)');
  });
});

describe('errorMessage', () => {
  it("an Error's message, anything else as a string", () => {
    expect(errorMessage(new UserError('bad flag'))).toBe('bad flag');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(undefined)).toBe('undefined');
  });
});
