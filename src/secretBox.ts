/**
 * Encryption at rest for secrets Latchkey must read back (TOTP secrets):
 * AES-256-GCM under a key kept outside the database — LATCHKEY_SECRET_KEY, or
 * a key file created on first use (mode 0600) — so a copy of the database
 * alone does not reveal them.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, type Config } from './config/index.js';

const VERSION = 'v1';

export class SecretBox {
  private key: Buffer | undefined;
  constructor(private readonly config: Pick<Config, 'secretKey' | 'secretKeyFile'>) {}

  private loadKey(): Buffer {
    if (this.key) return this.key;
    if (this.config.secretKey) return (this.key = this.config.secretKey);
    const file = this.config.secretKeyFile;
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      // wx: two processes starting together must not overwrite each other's key.
      try {
        writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
    if (key.length !== 32) throw new Error(`${file} must hold 32 bytes, base64url`);
    return (this.key = key);
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.loadKey(), iv);
    // The context (e.g. the authenticator id) is authenticated: a sealed value can't be moved to another row.
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
  }

  /**
   * The plaintext sealed under `context`. A value that does not open (changed in the database, moved to another row,
   * sealed under another key) throws {@link SealedValueError}: an ordinary server failure, logged and answered 500.
   * Whether the key itself is the wrong one is asked once, at start ({@link checkKeyOpens}), not guessed here.
   */
  open(sealed: string, context: string): string {
    const [version, iv, body, tag] = sealed.split('.');
    if (version !== VERSION || !iv || !body || !tag) throw new SealedValueError(context, 'it is not a sealed value');
    const decipher = createDecipheriv('aes-256-gcm', this.loadKey(), Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      // GCM's tag check failed: the value, its context or the key is not what sealed it.
      throw new SealedValueError(context, 'it was changed, belongs to another row, or was sealed under another key');
    }
  }

  /**
   * At start, with something every instance stored under the key (the signing keys): a value that does not open
   * there means this instance has another key than the one that sealed it (another instance's key, or a key file
   * made afresh), so the operator is told which variable to fix. Anywhere else a failure to open is not a setting.
   */
  checkKeyOpens(sealed: string, context: string): void {
    try {
      this.open(sealed, context);
    } catch (err) {
      if (err instanceof SealedValueError) throw this.wrongKey(context);
      throw err;
    }
  }

  /** One line naming the variable to fix (main.ts prints a ConfigError and exits 2). */
  private wrongKey(context: string): ConfigError {
    const what = sealedThings[context.split(':')[0]!] ?? 'a value';
    const problem =
      `${what} in the database was sealed with another secret key. Every instance sharing a database needs the same key: ` +
      'the same LATCHKEY_SECRET_KEY, or the same contents in LATCHKEY_SECRET_KEY_FILE';
    return this.config.secretKey
      ? new ConfigError('LATCHKEY_SECRET_KEY', `this key does not open what is stored: ${problem}`)
      : new ConfigError('LATCHKEY_SECRET_KEY_FILE', `the key in ${this.config.secretKeyFile} does not open what is stored: ${problem}`);
  }
}

/** A stored sealed value that does not open: a server failure (500), its details for the log only. */
export class SealedValueError extends Error {
  constructor(
    readonly context: string,
    why: string,
  ) {
    super(`${sealedThings[context.split(':')[0]!] ?? 'a sealed value'} (${context}) could not be opened: ${why}`);
    this.name = 'SealedValueError';
  }
}

/** What a sealed value's context says it is, for the message above. */
const sealedThings: Record<string, string> = {
  'signing-key': 'the OpenID Connect signing key',
  'service-secret': "a service's client secret",
  'totp': "an authenticator app's secret",
  'self-service': "the secret of an authenticator app being set up",
  'enrolment-reveal': 'an issued link or code waiting to be shown',
  'webhook-secret': "a webhook endpoint's signing secret",
};
