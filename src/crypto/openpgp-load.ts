/**
 * openpgp.js, loaded when first needed: a backup with a passphrase never needs it, and loading it
 * costs ~0.1 s of every run's start-up (recipients, signatures and identities load it on use).
 */
export type OpenPgp = typeof import('openpgp');

let loading: Promise<OpenPgp> | null = null;

export function loadOpenpgp(): Promise<OpenPgp> {
  loading ??= import('openpgp');
  return loading;
}
