import { stat } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../errors.js';
import { writeFileAtomic } from '../vault/fs-durable.js';

/**
 * Writes Prometheus text atomically to `textfile` (node_exporter's textfile collector) and returns
 * the absolute path. The text is rendered by the edge (src/web/prometheus.ts) from the overview.
 */
export async function writeMetricsTextfile(textfile: string, text: string): Promise<string> {
  const file = path.resolve(textfile);
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
  return file;
}
