import { describe, expect, it } from 'vitest';
import { runCli } from '../../harness/env.js';

/** Names listed under "Commands:" in a help text, without commander's own `help`. */
function commandsIn(help: string): string[] {
  const section = help.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  return section
    .split('\n')
    .map((line) => /^ {2}([a-z][\w-]*)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined && name !== 'help');
}

describe('--help', () => {
  it('every command and subcommand shows examples, found by walking the help texts themselves', async () => {
    const visited: string[] = [];
    const missing: string[] = [];
    const visit = async (path: string[]): Promise<void> => {
      const r = await runCli([...path, '--help']);
      const name = ['permafrost', ...path].join(' ');
      expect(r.code, `${name} --help: ${r.stderr}`).toBe(0);
      visited.push(name);
      if (!/\nExamples:\n {2}\$ permafrost \S/.test(r.stdout)) missing.push(name);
      await Promise.all(commandsIn(r.stdout).map((sub) => visit([...path, sub])));
    };
    await visit([]);
    // The walk must really reach the commands (a broken parser would pass vacuously).
    expect(visited).toEqual(
      expect.arrayContaining(['permafrost backup', 'permafrost restore', 'permafrost sync apply', 'permafrost sync status']),
    );
    expect(missing).toEqual([]);
  });
});
