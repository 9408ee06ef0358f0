import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './env.js';

/** tsc's build of the CLI (the shipped bundle has no program.js to import): the same commands and flags. */
const CLI = path.join(REPO, 'dist/cli/main.js');

/**
 * One `permafrost …` the docs show. `parse`: a line of a code block, which a reader copies as it is:
 * commander parses it exactly as the CLI would (every action replaced by a no-op). `names`: a
 * synopsis or an inline mention (`restore [SNAPSHOT|latest] [--force]`, `permafrost metrics --textfile …`),
 * with brackets and placeholders: its command must exist and so must every flag it names. `broken`:
 * a row of a command table that markdown cuts apart (fails as it is).
 */
export interface DocCommand {
  where: string;
  text: string;
  args: string[];
  mode: 'parse' | 'names' | 'broken';
}

/** Inline code that starts with the word permafrost without being a command, each with what it is. */
const NOT_COMMANDS = new Map([
  // docs/configuration.md: the pg_ident.conf line doctor prints (map permafrost, OS user root, role mastodon).
  ['permafrost root mastodon', 'a pg_ident.conf line'],
]);

/** README.md and every docs/*.md page, as [path relative to the repo, text]. */
export function docPages(): Array<[string, string]> {
  const docs = readdirSync(path.join(REPO, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs].map((f) => [f, readFileSync(path.join(REPO, f), 'utf8')]);
}

/** Shell words of one line: quotes kept together, `#` comments dropped, `&& || ; | &` as words of their own. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      const stop = end < 0 ? line.length : end;
      word = (word ?? '') + line.slice(i + 1, stop);
      i = stop;
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null) {
      break;
    } else if ('&|;'.includes(c)) {
      if (word !== null) words.push(word);
      word = null;
      const two = line.slice(i, i + 2);
      words.push(two === '&&' || two === '||' ? two : c);
      if (two === '&&' || two === '||') i++;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

const SEPARATORS = new Set(['&&', '||', ';', '|', '&']);

/** The arguments after `permafrost` in each simple command of these words (env assignments, sudo, runuser … -- skipped). */
export function permafrostInvocations(words: readonly string[]): string[][] {
  const found: string[][] = [];
  let start = 0;
  for (let i = 0; i <= words.length; i++) {
    if (i < words.length && !SEPARATORS.has(words[i]!)) continue;
    const simple = words.slice(start, i);
    start = i + 1;
    let at = 0;
    for (;;) {
      const w = simple[at];
      if (w === undefined) break;
      if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w) || w === 'sudo' || w === 'exec' || w === 'env') at++;
      else if (w === 'runuser' && simple[at + 1] === '-u' && simple[at + 3] === '--') at += 4;
      else break;
    }
    if (simple[at] !== 'permafrost') continue;
    const args: string[] = [];
    for (let j = at + 1; j < simple.length; j++) {
      const w = simple[j]!;
      // Redirections are the shell's: `< file`, `> file`, `2>&1`, `>>file`.
      if (/^\d*[<>]/.test(w)) {
        if (/^\d*(<|>|>>)$/.test(w)) j++;
        continue;
      }
      args.push(w);
    }
    found.push(args);
  }
  return found;
}

/**
 * The synopses in the first cell of a command table (`restore [SNAPSHOT\\|latest] …`, or several
 * joined by ` / `); a cell that is not made of whole code spans (an unescaped `|` cut it) is `broken`.
 */
function commandCell(where: string, cell: string): DocCommand[] {
  const spans = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\\\|/g, '|'));
  if (spans.length === 0 || (cell.match(/`/g) ?? []).length % 2 !== 0) return [{ where, text: cell, args: [], mode: 'broken' }];
  // README's table names them as typed (`permafrost doctor`), docs/commands.md without the program.
  return spans.map((text) => ({ where, text, args: text.split(/\s+/).filter((w, at) => at > 0 || w !== 'permafrost'), mode: 'names' }));
}

/**
 * Every `permafrost …` of a page: each line of its code blocks (continuations joined), inline code
 * that starts with `permafrost`, and the first cell of a table whose header is `command`.
 */
export function docCommands(file: string, markdown: string): DocCommand[] {
  const found: DocCommand[] = [];
  const lines = markdown.split('\n');
  let fence: string | null = null;
  let inCommandTable = false;
  let prose: Array<{ text: string; line: number }> = [];
  const flushProse = (): void => {
    const text = prose.map((p) => p.text).join(' ');
    for (const m of text.matchAll(/`([^`]+)`/g)) {
      const span = m[1]!.replace(/\s+/g, ' ').trim();
      if (!/^permafrost(\s|$)/.test(span) || NOT_COMMANDS.has(span)) continue;
      found.push({ where: `${file}:${prose[0]!.line}`, text: span, args: span.split(' ').slice(1), mode: 'names' });
    }
    prose = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fenceMark = /^\s*(```|~~~)/.exec(line)?.[1];
    if (fenceMark) {
      flushProse();
      fence = fence === null ? fenceMark : null;
      continue;
    }
    if (fence !== null) {
      let text = line;
      const first = i + 1;
      while (text.endsWith('\\') && i + 1 < lines.length) text = `${text.slice(0, -1)} ${lines[++i]!}`;
      for (const args of permafrostInvocations(shellWords(text))) {
        found.push({ where: `${file}:${first}`, text: text.trim(), args, mode: 'parse' });
      }
      continue;
    }
    if (/^\s*\|/.test(line)) {
      flushProse();
      // A table row: cells split at `|` not escaped as `\|`.
      const cells = line
        .trim()
        .slice(1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
      if (/^-+$/.test(cells[0] ?? '')) continue;
      if (!inCommandTable && cells[0] === 'command') {
        inCommandTable = true;
        continue;
      }
      if (inCommandTable) found.push(...commandCell(`${file}:${i + 1}`, cells[0] ?? ''));
      prose.push({ text: cells.slice(inCommandTable ? 1 : 0).join(' | '), line: i + 1 });
      flushProse();
      continue;
    }
    inCommandTable = false;
    if (line.trim() === '') flushProse();
    else prose.push({ text: line, line: i + 1 });
  }
  flushProse();
  return found;
}

/**
 * Run in a child against the built CLI: dist/cli/program.js (main.js only runs it); per command, buildProgram makes
 * the program as `permafrost ARGS` would, with every action a no-op.
 */
const CHECKER = `
import { readFileSync } from 'node:fs';
const input = JSON.parse(readFileSync(0, 'utf8'));
const { buildProgram } = await import(input.cli.replace(/main\.js$/, 'program.js'));
const all = (cmd) => [cmd, ...cmd.commands.flatMap(all)];
const flagsOf = (cmd) => new Set(['-h', '--help', ...cmd.options.flatMap((o) => [o.short, o.long].filter(Boolean))]);
const results = [];
for (const c of input.commands) {
  const said = [];
  const io = { out: () => {}, err: (s) => said.push(s), isTTY: false };
  try {
    if (c.mode === 'broken') throw new Error('this row of the command table is cut: its first cell is not whole code spans (escape a | inside one as \\\\|)');
    if (c.mode === 'parse') {
      const program = await buildProgram(io, c.args);
      // Only commands that run something: one that just holds subcommands (sync) keeps commander's own answer.
      for (const cmd of all(program)) if (cmd._actionHandler) cmd.action(() => {});
      try {
        await program.parseAsync(['node', 'permafrost', ...c.args]);
      } catch (err) {
        if (!['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(err.code)) throw err;
      }
    } else {
      const program = await buildProgram(io, []);
      const global = flagsOf(program);
      global.add('-V').add('--version');
      const words = c.args.map((w) => w.replace(/^[\\[(]+|[\\])]+$/g, '')).filter(Boolean);
      let cmd = program;
      let at = 0;
      // Global options before the command (--config FILE takes a value).
      while (at < words.length && words[at].startsWith('-')) {
        const option = program.options.find((o) => o.long === words[at] || o.short === words[at]);
        at += option?.required ? 2 : 1;
      }
      for (;;) {
        const sub = cmd.commands.find((s) => s.name() === words[at]);
        if (!sub) break;
        cmd = sub;
        at++;
      }
      // \`permafrost <cmd> --help\`: any command, so only the flags every command has.
      if (cmd === program && at < words.length && !words[at].startsWith('-') && !/^<.+>$/.test(words[at])) throw new Error('no command ' + JSON.stringify(words[at]));
      const known = flagsOf(cmd);
      for (const w of words.slice(at)) {
        const flag = /^(--?[A-Za-z][\\w-]*)/.exec(w)?.[1];
        if (flag && !known.has(flag) && !global.has(flag)) throw new Error((cmd === program ? 'permafrost' : 'permafrost ' + cmd.name()) + ' has no option ' + flag);
      }
    }
    results.push({ ok: true });
  } catch (err) {
    results.push({ ok: false, error: [err.message, ...said].join(' / ') });
  }
}
process.stdout.write('\\n@@RESULTS ' + JSON.stringify(results) + '\\n');
`;

/** Each command's problem with the built CLI (null: it parses), in order. */
export function checkDocCommands(commands: readonly DocCommand[]): Array<string | null> {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', CHECKER], {
    input: JSON.stringify({ cli: CLI, commands }),
    encoding: 'utf8',
    timeout: 60_000,
    cwd: REPO,
    env: { ...process.env, PERMAFROST_CONFIG: '/nonexistent/permafrost.yaml' },
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('@@RESULTS '));
  if (r.status !== 0 || line === undefined) throw new Error(`the checker failed (${r.status}): ${r.stderr}${r.stdout}`);
  const results = JSON.parse(line.slice('@@RESULTS '.length)) as Array<{ ok: boolean; error?: string }>;
  return results.map((x) => (x.ok ? null : (x.error ?? 'failed')));
}

/** Prints every command's --help (examples included) as JSON lines: [command path, help text]. */
const HELP_TEXTS = `
const { buildProgram } = await import(process.argv[1].replace(/main\.js$/, 'program.js'));
let text = '';
const program = await buildProgram({ out: (s) => (text += s + '\\n'), err: () => {}, isTTY: false }, []);
const all = (cmd, path) => [[cmd, path], ...cmd.commands.flatMap((c) => all(c, [...path, c.name()]))];
const texts = [];
for (const [cmd, path] of all(program, [])) {
  text = '';
  cmd.outputHelp();
  texts.push([path.join(' '), text]);
}
process.stdout.write('\\n@@RESULTS ' + JSON.stringify(texts) + '\\n');
`;

/** The `$ permafrost …` examples of every command's --help (the docs a reader meets first), to parse as the pages' code. */
export function helpExamples(): DocCommand[] {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', HELP_TEXTS, CLI], { encoding: 'utf8', timeout: 60_000, cwd: REPO });
  const line = r.stdout.split('\n').find((l) => l.startsWith('@@RESULTS '));
  if (r.status !== 0 || line === undefined) throw new Error(`reading the help texts failed (${r.status}): ${r.stderr}${r.stdout}`);
  const texts = JSON.parse(line.slice('@@RESULTS '.length)) as Array<[string, string]>;
  return texts.flatMap(([path, help]) =>
    help
      .split('\n')
      .flatMap((l) => /^ {2}\$ (.+)$/.exec(l)?.[1] ?? [])
      .flatMap((text) =>
        permafrostInvocations(shellWords(text)).map(
          (args): DocCommand => ({ where: `permafrost ${path} --help`.replace('  ', ' '), text, args, mode: 'parse' }),
        ),
      ),
  );
}
