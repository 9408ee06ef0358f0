/** A strict reader of the Prometheus text exposition format (0.0.4), enough to check what we emit. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

function parseValue(v: string): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  if (!/^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(v)) throw new Error(`bad sample value "${v}"`);
  return Number(v);
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL_RE.lastIndex = 0;
  while (LABEL_RE.lastIndex < text.length) {
    const m = LABEL_RE.exec(text);
    if (!m) throw new Error(`bad label set {${text}}`);
    labels[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  }
  return labels;
}

/** Parses exposition text; throws on any line that does not follow the format. */
export function parsePromText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const help = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (help) {
      if (families.has(help[1]!)) throw new Error(`line ${i + 1}: family ${help[1]} described twice`);
      current = { name: help[1]!, help: help[2]!, type: 'untyped', samples: [] };
      families.set(current.name, current);
    } else if (type) {
      if (!current || current.name !== type[1]) throw new Error(`line ${i + 1}: TYPE without HELP for ${type[1]}`);
      current.type = type[2] as Family['type'];
    } else if (line.startsWith('#')) {
      continue;
    } else {
      const m = SAMPLE_RE.exec(line);
      if (!m) throw new Error(`line ${i + 1}: not a sample: ${line}`);
      if (!current || (m[1] !== current.name && !m[1]!.startsWith(`${current.name}_`))) {
        throw new Error(`line ${i + 1}: sample ${m[1]} outside its family`);
      }
      current.samples.push({ name: m[1]!, labels: m[2] ? parseLabels(m[2]) : {}, value: parseValue(m[3]!) });
    }
  }
  return families;
}

/** The value of one sample, by name and labels; throws when absent. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels)) return s.value;
    }
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
}
