import type { z } from 'zod';

// One wording for every schema problem: the config, manifests, state files and Syncthing's replies.

function formatIssuePath(p: readonly PropertyKey[]): string {
  return (
    p
      .map((k) => (typeof k === 'number' ? `[${k}]` : String(k)))
      .join('.')
      .replace(/\.\[/g, '[') || '(top level)'
  );
}

/** Turns zod issues into `key.path: what was expected` lines, unknown keys one line each. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        lines.push(`${formatIssuePath([...issue.path, key])}: unknown key (remove it or check its spelling)`);
      }
    } else {
      lines.push(`${formatIssuePath(issue.path)}: ${issue.message}`);
    }
  }
  return lines;
}
