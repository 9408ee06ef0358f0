/**
 * Secret values read once when a job starts (ops/secrets.ts readJobSecrets) and handed down to the
 * steps that use them: a step never reads a secret file. A secret that could not be read keeps the
 * error reading it gave, thrown where the value is used, so a job fails with the same sentence and
 * exit code at the same point as when the step read the file itself, and a job that never uses it
 * (an alert channel, a part marked optional) does not fail for it.
 */

const HIDDEN = '[secret]';

export class Secret {
  readonly #value: string | undefined;
  readonly #error: Error | undefined;

  private constructor(value: string | undefined, error: Error | undefined) {
    this.#value = value;
    this.#error = error;
  }

  /** A secret that was read. */
  static of(value: string): Secret {
    return new Secret(value, undefined);
  }

  /** A secret that could not be read: `error` is thrown where the value is used. */
  static unreadable(error: Error): Secret {
    return new Secret(undefined, error);
  }

  /** Reads a secret now, keeping a failure for later (see the module's comment). */
  static read(reader: () => string): Secret {
    try {
      return Secret.of(reader());
    } catch (err) {
      return Secret.unreadable(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** The value, for the one place that hands it on (an environment variable, a header); throws the reading error. */
  reveal(): string {
    if (this.#error) throw this.#error;
    return this.#value!;
  }

  /** The value when it was read, else null (for cutting known secrets out of alerts). */
  valueOrNull(): string | null {
    return this.#value ?? null;
  }

  // A secret that ends up in a log line, a JSON dump or an error's detail shows as a placeholder.
  toString(): string {
    return HIDDEN;
  }

  toJSON(): string {
    return HIDDEN;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return HIDDEN;
  }
}

/** Every secret a config names, read at the job's start; undefined where the config names none. */
export interface JobSecrets {
  /** database.passwordFile (a server's config): PGPASSWORD and the `pg` client's password. */
  readonly database: Secret | undefined;
  /** verify.connection.passwordFile: the scratch server's password, when verify has its own. */
  readonly verifyDatabase: Secret | undefined;
  /** redis.passwordFile: REDISCLI_AUTH. */
  readonly redis: Secret | undefined;
  /** syncthing.apiKeyFile, or the GUI API key in syncthing.home's config.xml. */
  readonly syncthing: Secret | undefined;
  /** notify.mastodon.tokenFile. */
  readonly mastodon: Secret | undefined;
  /** web.tokenFile. */
  readonly web: Secret | undefined;
  /** vault.passphraseFile, as stock gpg will read it. */
  readonly vaultPassphrase: Secret | undefined;
}

/** The values read, to be cut out of alerts (notify/redact.ts). */
export function knownValues(secrets: JobSecrets): string[] {
  return Object.values(secrets).flatMap((s: Secret | undefined) => {
    const v = s?.valueOrNull();
    return v ? [v] : [];
  });
}
