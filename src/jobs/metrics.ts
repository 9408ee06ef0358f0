import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../vault/fs-durable.js';
import { renderMetrics } from '../web/prometheus.js';
import { readOverview, type ReplicationReader } from '../web/overview.js';

/** Prometheus text computed from the vault; written atomically to `textfile` when given (node_exporter's textfile collector). */
export async function collectMetrics(
  config: Config,
  opts: { textfile?: string; replication?: ReplicationReader } = {},
): Promise<{ text: string; written: string | null }> {
  const text = await renderMetrics(await readOverview(config, { replication: opts.replication }));
  if (!opts.textfile) return { text, written: null };
  const file = path.resolve(opts.textfile);
  if (!file.endsWith('.prom')) {
    throw new UserError(`--textfile: ${file} must end in .prom, or node_exporter's textfile collector ignores it.`);
  }
  const folder = path.dirname(file);
  // A missing folder is a typo or node_exporter not installed: creating it would hide that.
  const isDir = await stat(folder).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!isDir)
    throw new UserError(
      `--textfile: folder ${folder} does not exist; create it or point --textfile at node_exporter's textfile directory.`,
    );
  try {
    // Readable by node_exporter's user; the metrics hold no secret.
    await writeFileAtomic(file, text, 0o644);
  } catch (err) {
    throw new UserError(`--textfile: cannot write ${file}; check this user may write to ${folder}.`, { cause: err });
  }
  return { text, written: file };
}
