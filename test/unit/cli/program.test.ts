import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/program.js';
import { VERSION } from '../../../src/version.js';
import { runInProcess } from '../../harness/cli-inproc.js';
import type { Io } from '../../../src/cli/run.js';

const io: Io = { out: () => undefined, err: () => undefined, isTTY: false };

describe('main: the exit code of a command line', () => {
  it('--version alone prints the version and exits 0; so does -V after a global option', async () => {
    let r = await runInProcess(['--version']);
    expect([r.code, r.out]).toEqual([0, [VERSION]]);
    r = await runInProcess(['--config', '/nowhere.yaml', '-V']);
    expect([r.code, r.out]).toEqual([0, [VERSION]]);
  });

  it('--help, help CMD and CMD --help exit 0 with the help on stdout', async () => {
    for (const args of [['--help'], ['help', 'backup'], ['backup', '--help']]) {
      const r = await runInProcess(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.out.join('\n'), args.join(' ')).toContain('Usage: permafrost');
    }
    const top = await runInProcess(['--help']);
    expect(top.out.join('\n')).toContain('$ permafrost restore latest --database mastodon_restored');
  });

  it('an unknown command, an unknown option and a missing option value exit 2 with the usage on stderr', async () => {
    let r = await runInProcess(['bakup']);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain("error: unknown command 'bakup'");
    expect(r.err.join('\n')).toContain('(Did you mean backup?)');
    r = await runInProcess(['--colour', 'list']);
    expect(r.code).toBe(2);
    r = await runInProcess(['list', '--config']);
    expect(r.code).toBe(2);
  });

  it('a PermafrostError from a command: its sentence and code (a config that cannot be read: 2)', async () => {
    const r = await runInProcess(['--config', '/nowhere/permafrost.yaml', 'status']);
    expect(r.code).toBe(2);
    expect(r.err).toEqual(['permafrost: Cannot read config /nowhere/permafrost.yaml: check the path and its permissions.']);
  });
});

describe('buildProgram', () => {
  it('loads only the command asked for; every command for help or a typo; none for --version', async () => {
    const names = async (args: string[]) => (await buildProgram(io, args)).commands.map((c) => c.name());
    expect(await names(['--config', 'x.yaml', 'list', '--json'])).toEqual(['list']);
    expect(await names(['offsite', 'push'])).toEqual(['offsite']);
    const all = await names(['--help']);
    expect(all.slice(0, 4)).toEqual(['init', 'doctor', 'backup', 'list']);
    expect(all).toHaveLength(16);
    expect(await names(['bakup'])).toHaveLength(16);
    expect(await names(['--version', 'list'])).toEqual(['list']);
    expect(await names(['-V'])).toEqual([]);
  });

  it('every command and subcommand throws on a bad flag instead of exiting the process (exitOverride)', async () => {
    const program = await buildProgram(io, ['--help']);
    const bad = (args: string[]) => program.parseAsync(['node', 'permafrost', ...args]);
    await expect(bad(['sync', 'apply', '--nope'])).rejects.toMatchObject({ code: 'commander.unknownOption' });
  });
});
