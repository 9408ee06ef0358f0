import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';

const REDACTED = '[redacted]';

/**
 * Removes secrets from text bound for an alert: every known secret value, passwords in URLs
 * (scheme://user:pass@host), bearer tokens and KEY=value pairs whose key names a secret.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join(REDACTED);
  return (
    out
      .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s@/]+@/gi, `$1${REDACTED}@`)
      .replace(/(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${REDACTED}`)
      // Environment-style names only (upper case), so "vault.passphraseFile: /etc/…" stays readable.
      .replace(/\b([A-Z0-9_]*(?:PASS|SECRET|TOKEN|KEY)[A-Z0-9_]*)\s*[=:]\s*\S+/g, `$1=${REDACTED}`)
  );
}

function firstLine(file: string | undefined): string | null {
  if (!file) return null;
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/, 1)[0] || null;
  } catch {
    return null;
  }
}

/** The secret values this config can reach, read best-effort, to be cut out of alerts. */
export function knownSecrets(config: Config): string[] {
  const files = [
    config.vault.passphraseFile,
    config.role === 'source' ? config.database.passwordFile : undefined,
    config.verify?.connection?.passwordFile,
    config.notify?.mastodon?.tokenFile,
    config.web?.tokenFile,
  ];
  return files.map(firstLine).filter((s): s is string => s !== null);
}
