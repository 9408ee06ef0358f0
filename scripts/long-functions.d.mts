// Types of scripts/long-functions.mjs for the tests that import it.
export interface FunctionLength {
  lines: number;
  name: string;
  file: string;
  line: number;
}
export const LIMIT: number;
export const TEMPLATES: ReadonlyMap<string, string>;
export function functionLengths(srcDir: string, root?: string): FunctionLength[];
export function overLimit(rows: readonly FunctionLength[], limit?: number, templates?: ReadonlyMap<string, string>): FunctionLength[];
