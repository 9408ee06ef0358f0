#!/usr/bin/env node
// Lists every function, method and arrow function under src/ with its length in lines,
// longest first, and prints those over the limit (default 80; `--limit N`, `--all` for every one).
// Issue 19 item 6: no function over ~80 lines outside templates; test/unit/scripts/long-functions.test.ts
// holds it with LIMIT and TEMPLATES below. Run: node scripts/long-functions.mjs
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The longest a function in src/ may be, in lines (its first to its last, both counted). */
export const LIMIT = 80;

/**
 * Functions allowed over LIMIT because they are templates: text laid out as the reader gets it,
 * where splitting would only scatter one document over several functions. `file:name` each, with why.
 */
export const TEMPLATES = new Map([
  // RESTORE.md, the runbook a stranger follows on the disaster day: one document, top to bottom.
  ['src/vault/runbook.ts:renderRestoreMd', 'RESTORE.md written as the reader sees it'],
]);

function sourceFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx|mts)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function nameOf(node) {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  if (node.name && ts.isPrivateIdentifier(node.name)) return node.name.text;
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (parent && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (parent && ts.isCallExpression(parent)) {
    const callee = parent.expression.getText().replace(/\s+/g, '');
    return `<callback of ${callee.length > 40 ? `${callee.slice(0, 40)}…` : callee}>`;
  }
  return '<anonymous>';
}

const isFunction = (node) =>
  ts.isFunctionDeclaration(node) ||
  ts.isFunctionExpression(node) ||
  ts.isArrowFunction(node) ||
  ts.isMethodDeclaration(node) ||
  ts.isConstructorDeclaration(node) ||
  ts.isGetAccessorDeclaration(node) ||
  ts.isSetAccessorDeclaration(node);

/**
 * Every function with a body in the .ts files under `srcDir`: { lines, name, file, line }, `file`
 * relative to `root`, longest first.
 */
export function functionLengths(srcDir, root = join(srcDir, '..')) {
  const rows = [];
  for (const file of sourceFiles(srcDir)) {
    const text = readFileSync(file, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (isFunction(node) && node.body) {
        const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
        const end = source.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
        rows.push({ lines: end - start + 1, name: nameOf(node), file: relative(root, file), line: start });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return rows.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
}

/** The rows over `limit` lines that no TEMPLATES entry allows. */
export function overLimit(rows, limit = LIMIT, templates = TEMPLATES) {
  return rows.filter((row) => row.lines > limit && !templates.has(`${row.file}:${row.name}`));
}

const invoked = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) {
  const args = process.argv.slice(2);
  const limitAt = args.indexOf('--limit');
  const limit = limitAt >= 0 ? Number(args[limitAt + 1]) : LIMIT;
  const all = args.includes('--all');
  const root = fileURLToPath(new URL('..', import.meta.url));
  const rows = functionLengths(join(root, 'src'), root);
  const shown = all ? rows : rows.filter((row) => row.lines > limit);
  for (const row of shown) {
    const template = TEMPLATES.has(`${row.file}:${row.name}`) ? '  (template: allowed)' : '';
    console.log(`${String(row.lines).padStart(5)}  ${row.name}  ${row.file}:${row.line}${template}`);
  }
  console.log(`${shown.length} of ${rows.length} functions${all ? '' : ` over ${limit} lines`}`);
}
