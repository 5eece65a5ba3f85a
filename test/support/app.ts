/**
 * Test helpers: an app over a fresh database (SQLite in memory by default) and
 * a tiny cookie-keeping client over `app.inject`.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp, type BuildOptions } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { openDatabase, type Db } from '../../src/db/connect.js';
import { SoftAuthenticator, type SoftAuthenticatorOptions } from './softAuthenticator.js';
import { hashToken } from '../../src/crypto.js';
import type { Store } from '../../src/db/store.js';
import type { NewAuthenticator } from '../../src/db/schema.js';
import type { SecretBox } from '../../src/secretBox.js';
import { NO_PASSKEY_COLUMNS } from '../../src/strategies/authenticatorKind.js';

export const TEST_ORIGIN = 'http://localhost:3000';

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    LATCHKEY_ORIGIN: TEST_ORIGIN,
    LOG_LEVEL: 'silent',
    DATABASE_URL: 'sqlite::memory:',
    // A fixed key: tests never create ./data/secret.key in the checkout.
    LATCHKEY_SECRET_KEY: 'dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMzJieXQ',
    // Light proof of work: tests solve it in Node.
    LATCHKEY_CAPTCHA_MAX_NUMBER: '2000',
    // Mail without an SMTP server goes to an outbox: never the checkout's ./data.
    LATCHKEY_OUTBOX_DIR: join(tmpdir(), `latchkey-test-outbox-${process.pid}`),
    // No background webhook delivery or expiry sweep: tests that want them run them (src/webhooks) or turn this on.
    LATCHKEY_WEBHOOK_POLL_SECONDS: '0',
    ...env,
  });
}

export interface TestApp {
  app: FastifyInstance;
  db: Db;
  config: Config;
  close(): Promise<void>;
}

export async function createTestApp(env: Record<string, string> = {}, options: Omit<BuildOptions, 'db'> & { db?: Db } = {}): Promise<TestApp> {
  const config = testConfig(env);
  const db = options.db ?? openDatabase(config.databaseUrl);
  await db.migrate();
  const app = await buildApp(config, { logger: false, ...options, db });
  await app.ready();
  return {
    app,
    db,
    config,
    close: async () => {
      await app.close();
      if (!options.db) await db.close();
    },
  };
}

/** A browser stand-in: keeps cookies, knows the page's CSRF token, sends JSON like the bundle does. */
export class TestBrowser {
  readonly cookies = new Map<string, string>();
  csrf = '';
  constructor(readonly app: FastifyInstance, readonly userAgent = 'Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36') {}

  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private keep(res: LightMyRequestResponse): LightMyRequestResponse {
    for (const c of res.cookies as { name: string; value: string; maxAge?: number; expires?: Date }[]) {
      if (c.value === '' || c.maxAge === 0 || (c.expires && c.expires.getTime() < Date.now())) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
    const m = /<meta name="csrf-token" content="([^"]+)"/.exec(res.body);
    if (m) this.csrf = m[1]!;
    return res;
  }

  /** What the server calls this browser: the hash of its binding cookie (after a first request). */
  bindingHash(): string {
    const binding = this.cookies.get('latchkey_binding');
    if (!binding) throw new Error('no binding cookie yet: make a request first');
    return hashToken(binding);
  }

  async get(url: string, accept = 'text/html'): Promise<LightMyRequestResponse> {
    return this.keep(await this.app.inject({ method: 'GET', url, headers: { cookie: this.cookieHeader(), accept, 'user-agent': this.userAgent } }));
  }

  async postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.keep(
      await this.app.inject({
        method: 'POST',
        url,
        payload: body as object,
        headers: { cookie: this.cookieHeader(), accept: 'application/json', origin: TEST_ORIGIN, 'x-csrf-token': this.csrf, 'user-agent': this.userAgent, ...headers },
      }),
    );
  }

  /** A form with a file input, sent as a browser sends it (multipart/form-data), with the page's CSRF token. */
  async postMultipart(url: string, fields: Record<string, string>, file?: { field: string; filename: string; content: string | Buffer }): Promise<LightMyRequestResponse> {
    const { payload, contentType } = multipartBody({ _csrf: this.csrf, ...fields }, file);
    return this.keep(
      await this.app.inject({
        method: 'POST',
        url,
        payload,
        headers: { cookie: this.cookieHeader(), accept: 'text/html', origin: TEST_ORIGIN, 'content-type': contentType, 'user-agent': this.userAgent },
      }),
    );
  }

  async postForm(url: string, fields: Record<string, string>): Promise<LightMyRequestResponse> {
    return this.keep(
      await this.app.inject({
        method: 'POST',
        url,
        payload: new URLSearchParams({ _csrf: this.csrf, ...fields }).toString(),
        // Like a browser: a form post carries our Origin.
        headers: {
          cookie: this.cookieHeader(),
          accept: 'text/html',
          origin: TEST_ORIGIN,
          'content-type': 'application/x-www-form-urlencoded',
          'user-agent': this.userAgent,
        },
      }),
    );
  }
}

/** A multipart/form-data body, as a browser sends a form with a file input (`file` omitted: no file chosen). */
export function multipartBody(fields: Record<string, string>, file?: { field: string; filename: string; content: string | Buffer }): { payload: Buffer; contentType: string } {
  const boundary = `----latchkey${Math.random().toString(16).slice(2)}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  if (file) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.field}"; filename="${file.filename}"\r\nContent-Type: text/csv\r\n\r\n`));
    parts.push(Buffer.isBuffer(file.content) ? file.content : Buffer.from(file.content));
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

export function authenticator(options: Partial<SoftAuthenticatorOptions> = {}): SoftAuthenticator {
  return new SoftAuthenticator({ origin: TEST_ORIGIN, ...options });
}

/** Sign up through the real endpoints; returns the browser, signed in. */
export async function signUp(app: FastifyInstance, auth: SoftAuthenticator, email = 'ada@example.com', displayName = 'Ada Lovelace', browser = new TestBrowser(app)) {
  await browser.get('/signup');
  const opts = await browser.postJson('/signup/options', { displayName, email, placement: 'this-device' });
  if (opts.statusCode !== 200) throw new Error(`signup options: ${opts.statusCode} ${opts.body}`);
  const response = auth.createCredential(opts.json().options);
  const verify = await browser.postJson('/signup/verify', { response });
  if (verify.statusCode !== 200) throw new Error(`signup verify: ${verify.statusCode} ${verify.body}`);
  return browser;
}

/** Store a passkey straight into the database (for tests about what is stored, not how it was registered). */
/** An authenticator app (the totp kind) with this base32 secret, stored as the self-service flow stores one. */
export async function insertApp(store: Store, secretBox: SecretBox, fields: Pick<NewAuthenticator, 'id' | 'user_id'> & Partial<NewAuthenticator>, secret: string): Promise<void> {
  await store.authenticators.insert({
    type: 'totp',
    credential_id: `totp:${fields.id}`,
    ...NO_PASSKEY_COLUMNS,
    config: JSON.stringify({ sealedSecret: secretBox.seal(secret, `totp:${fields.id}`), lastStep: 0 }),
    name: 'Authenticator app',
    created_at: Date.now(),
    last_used_at: null,
    ...fields,
  });
}

export async function insertPasskey(store: Store, fields: Pick<NewAuthenticator, 'id' | 'user_id' | 'credential_id' | 'public_key' | 'transports'>): Promise<void> {
  await store.authenticators.insert({
    type: 'passkey',
    counter: 0,
    aaguid: '00000000-0000-0000-0000-000000000000',
    backup_eligible: 1,
    backed_up: 1,
    attestation_format: 'none',
    name: 'Passkey',
    created_at: Date.now(),
    last_used_at: null,
    ...fields,
  });
}
