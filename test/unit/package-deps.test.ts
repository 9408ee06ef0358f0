import { readdirSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO } from '../harness/env.js';

/**
 * The installed package has no devDependencies (`npm i -g`, `npm install --omit=dev`, Nix's
 * buildNpmPackage): every package src/ loads at run time must be in `dependencies`, and nothing else.
 */

interface PackageJson {
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

/** Module specifiers that survive compilation: value imports, re-exports and `import()` calls. */
function runtimeSpecifiers(source: string, fileName = 'x.ts'): string[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      // `import type …`, and `import { type A, type B }` (tsc drops the statement: no verbatimModuleSyntax).
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      if (!typeOnly) found.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push(node.arguments[0].text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      // A computed import() cannot be checked: refuse it rather than miss a package.
      throw new Error(`${fileName}: import() of a computed specifier; use a string literal`);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

/** 'pg-copy-streams/x' → 'pg-copy-streams', '@hono/node-server/y' → '@hono/node-server'; relative and builtins → undefined. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:') || isBuiltin(specifier)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('runtimeSpecifiers', () => {
  it('keeps value imports, re-exports and import() calls; drops what tsc erases', () => {
    const src = [
      "import a from 'a';",
      "import { b } from 'b/sub';",
      "import * as c from '@s/c';",
      "import 'd';",
      "import type { E } from 'e';",
      "import { type F } from 'f';",
      "import { type G, h } from 'gh';",
      "export { i } from 'i';",
      "export type { J } from 'j';",
      "const k = await import('k');",
      "type L = import('l').L;",
      "import { m } from './m.js';",
    ].join('\n');
    expect(runtimeSpecifiers(src)).toEqual(['a', 'b/sub', '@s/c', 'd', 'gh', 'i', 'k', './m.js']);
  });

  it('refuses an import() it cannot read', () => {
    expect(() => runtimeSpecifiers('const n = "x"; await import(n);')).toThrow(/computed specifier/);
  });

  it('packageOf: the package name, or nothing for relative paths and builtins', () => {
    expect(['pg', 'pg-copy-streams/x', '@hono/node-server', '@a/b/c', './x.js', 'node:fs', 'fs', 'stream/promises'].map(packageOf)).toEqual(
      ['pg', 'pg-copy-streams', '@hono/node-server', '@a/b', undefined, undefined, undefined, undefined],
    );
  });
});

describe('package.json dependencies', () => {
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as PackageJson;
  const dependencies = Object.keys(pkg.dependencies ?? {});
  const importedBy = new Map<string, string[]>();
  for (const file of tsFiles(path.join(REPO, 'src'))) {
    for (const spec of runtimeSpecifiers(readFileSync(file, 'utf8'), file)) {
      const name = packageOf(spec);
      if (name !== undefined) importedBy.set(name, [...(importedBy.get(name) ?? []), path.relative(REPO, file)]);
    }
  }

  it('src/ really imports packages (the scan is not vacuous)', () => {
    expect([...importedBy.keys()]).toEqual(expect.arrayContaining(['commander', 'zod', 'pg']));
  });

  it('every package src/ imports at run time is in dependencies (not devDependencies)', () => {
    const missing = [...importedBy]
      .filter(([name]) => !dependencies.includes(name))
      .map(([name, files]) => `${name} (${files.join(', ')})`);
    expect(missing, 'add these to "dependencies" in package.json').toEqual([]);
  });

  it('every dependency is imported by src/ at run time', () => {
    const unused = dependencies.filter((name) => !importedBy.has(name));
    expect(unused, 'move these to "devDependencies" or drop them').toEqual([]);
  });
});
