const REDACTED = '[redacted]';

/**
 * Removes secrets from text bound for an alert: every known secret value (the job's, config/secret-values.ts knownValues), passwords in URLs
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
