import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { SecretsConfig } from '../config/schema-parts.js';
import { PermafrostError, UserError } from '../errors.js';

/** Opens Mastodon's secrets file (.env.production) for reading as it is, byte for byte. */
export async function openSecrets(secrets: SecretsConfig): Promise<Readable> {
  try {
    const handle = await open(secrets.file, 'r');
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw new UserError(`secrets.file: ${secrets.file} is not a regular file; point it at Mastodon's .env.production.`);
    }
    return handle.createReadStream();
  } catch (err) {
    if (err instanceof PermafrostError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const fix = code === 'ENOENT' ? 'check secrets.file' : 'run permafrost as a user that can read it';
    throw new UserError(`Secrets part failed: cannot read ${secrets.file} (${code ?? 'error'}); ${fix}, or set secrets.optional: true.`, {
      cause: err,
    });
  }
}
