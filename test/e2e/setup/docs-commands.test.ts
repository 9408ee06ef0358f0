import { describe, expect, it } from 'vitest';
import {
  checkDocCommands,
  docCommands,
  docPages,
  helpExamples,
  permafrostInvocations,
  shellWords,
  type DocCommand,
} from '../../harness/doc-commands.js';

// Issue 19 item 9: every page's commands tested where the README's are. The quick start runs for real
// (demo.test.ts); here every `permafrost …` of README.md and docs/*.md is checked against the built CLI:
// code-block lines parsed by commander exactly as typed, synopses and inline mentions by name.
describe('the commands the docs show', () => {
  it('reads shell lines as the shell does: quotes, comments, &&, env, sudo/runuser, redirections', () => {
    const args = (line: string): string[][] => permafrostInvocations(shellWords(line));
    expect(args('permafrost backup                 # one snapshot now')).toEqual([['backup']]);
    expect(args('PGHOST=/run/pg runuser -u postgres -- permafrost restore --passphrase-file - < /root/p')).toEqual([
      ['restore', '--passphrase-file', '-'],
    ]);
    expect(args("sudo permafrost init --force && permafrost doctor; systemctl list-timers 'permafrost-*'")).toEqual([
      ['init', '--force'],
      ['doctor'],
    ]);
    expect(args('echo "permafrost backup" 2>&1 | permafrost list --json 2>&1')).toEqual([['list', '--json']]);
    expect(args('install -d -m 0700 /etc/permafrost')).toEqual([]);
  });

  it('finds code-block lines, inline mentions and the command table of a page', () => {
    const page = [
      'Run `permafrost sync apply` on both sides.',
      '',
      '| command | does |',
      '| --- | --- |',
      '| `restore [SNAPSHOT\\|latest] [--force]` | see `permafrost restore --help` |',
      '| `sync apply [--dry-run]` / `sync status` | … |',
      '| `verify [--identity FILE | --gpg-agent]` | a pipe not escaped cuts the row |',
      '',
      '```sh',
      'permafrost --config /etc/p.yaml init --device \\',
      '  --vault /srv/v   # the defaults',
      '```',
    ].join('\n');
    expect(docCommands('x.md', page)).toEqual<DocCommand[]>([
      { where: 'x.md:1', text: 'permafrost sync apply', args: ['sync', 'apply'], mode: 'names' },
      { where: 'x.md:5', text: 'restore [SNAPSHOT|latest] [--force]', args: ['restore', '[SNAPSHOT|latest]', '[--force]'], mode: 'names' },
      { where: 'x.md:5', text: 'permafrost restore --help', args: ['restore', '--help'], mode: 'names' },
      { where: 'x.md:6', text: 'sync apply [--dry-run]', args: ['sync', 'apply', '[--dry-run]'], mode: 'names' },
      { where: 'x.md:6', text: 'sync status', args: ['sync', 'status'], mode: 'names' },
      { where: 'x.md:7', text: '`verify [--identity FILE', args: [], mode: 'broken' },
      {
        where: 'x.md:10',
        text: 'permafrost --config /etc/p.yaml init --device    --vault /srv/v   # the defaults',
        args: ['--config', '/etc/p.yaml', 'init', '--device', '--vault', '/srv/v'],
        mode: 'parse',
      },
    ]);
  });

  it('the checker fails a flag, a command or a value the CLI does not take, and passes what it does', () => {
    const cmd = (mode: DocCommand['mode'], args: string[]): DocCommand => ({ where: 'self-test', text: args.join(' '), args, mode });
    const problems = checkDocCommands([
      cmd('parse', ['restore', 'latest', '--database', 'x', '--force']),
      cmd('parse', ['restore', 'latest', '--no-such-flag']),
      cmd('parse', ['backupp']),
      cmd('parse', ['restore', '--jobs', '0']),
      cmd('parse', ['systemd', '--install', '--output', 'x']),
      cmd('parse', ['sync', 'apply', '--dry-run']),
      cmd('names', ['restore', '[SNAPSHOT|latest]', '[--no-owner', '[--role', 'NAME]]', '[--gpg-agent]']),
      cmd('names', ['list', '[--bogus]']),
      cmd('names', ['sync', 'nonsense', '--dry-run']),
      cmd('broken', []),
    ]);
    expect(problems.map((p) => p !== null)).toEqual([false, true, true, true, true, false, false, true, true, true]);
    expect(problems[1]).toMatch(/unknown option '--no-such-flag'/);
    expect(problems[7]).toMatch(/permafrost list has no option --bogus/);
  });

  it('every `permafrost …` in README.md, docs/*.md and the --help examples names a command and flags the built CLI has', () => {
    const examples = helpExamples();
    // Every command's help has examples (help.test.ts); reading them must find them all.
    expect(new Set(examples.map((c) => c.where))).toContain('permafrost sync apply --help');
    expect(examples.length).toBeGreaterThan(50);
    const commands = [...docPages().flatMap(([file, text]) => docCommands(file, text)), ...examples];
    // The extraction must reach the pages (a broken reader would pass vacuously).
    const pages = new Set(commands.map((c) => c.where.split(':')[0]));
    expect([...pages]).toEqual(expect.arrayContaining(['README.md', 'docs/commands.md', 'docs/disaster-day.md', 'docs/device.md']));
    expect(commands.filter((c) => c.mode === 'parse').length).toBeGreaterThan(20);
    expect(commands).toContainEqual(
      expect.objectContaining({ args: ['restore', 'latest', '--database', 'mastodon_restored'], mode: 'parse' }),
    );
    const problems = checkDocCommands(commands);
    const wrong = commands.flatMap((c, i) => (problems[i] ? [`${c.where}: ${c.text}\n    → ${problems[i]}`] : []));
    expect(wrong, 'fix the docs (or the CLI) so that these commands exist as written').toEqual([]);
  });
});
