import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { authenticator, createTestApp, insertPasskey, signUp, TEST_ORIGIN, TestBrowser, testConfig, type TestApp } from '../../../test/support/app.js';
import { buildApp } from '../../app.js';
import { openDatabase } from '../../db/connect.js';
import { safeNext } from './routes.js';
import { createUser } from '../../users/createUser.js';

describe('sign in with a passkey', () => {
  let t: TestApp;

  /** Someone signed up with `auth`, then a signed-out browser that asked for discoverable sign-in options. */
  async function signedUpThenSignInOptions(options: Parameters<typeof authenticator>[0] = {}) {
    const auth = authenticator(options);
    await signUp(t.app, auth);
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const res = await browser.postJson('/signin/options', { mode: 'discoverable' });
    return { auth, browser, options: res.json().options };
  }
  beforeEach(async () => {
    t = await createTestApp();
  });
  afterEach(async () => t.close());

  it('returns to a page on this site after sign-in (?next=), never to another site', async () => {
    const browser = new TestBrowser(t.app);
    const page = await browser.get('/signin?next=%2Fadmin%2Fusers%3Fq%3Dada');
    expect(page.body).toContain('data-next="/admin/users?q=ada"');
    for (const evil of ['//evil.example', '/\\evil.example', 'https://evil.example', 'javascript:alert(1)', '/ok path']) {
      expect((await browser.get(`/signin?next=${encodeURIComponent(evil)}`)).body).not.toContain('data-next');
    }
    expect(safeNext('/admin')).toBe('/admin');
    expect(safeNext('//evil.example')).toBeUndefined();
    const signedIn = await signUp(t.app, authenticator());
    const again = await signedIn.get('/signin?next=%2Fadmin');
    expect(again.statusCode).toBe(302);
    expect(again.headers.location).toBe('/admin');
  });

  it('signs in with a discoverable passkey and starts a new session', async () => {
    const auth = authenticator();
    const first = await signUp(t.app, auth);
    expect((await first.get('/settings')).statusCode).toBe(200);

    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const opts = await browser.postJson('/signin/options', { mode: 'discoverable' });
    expect(opts.statusCode).toBe(200);
    const options = opts.json().options;
    expect(options.allowCredentials ?? []).toHaveLength(0);
    expect(Buffer.from(options.challenge, 'base64url').length).toBeGreaterThanOrEqual(32);
    const verify = await browser.postJson('/signin/verify', { response: auth.getAssertion(options) });
    expect(verify.statusCode).toBe(200);
    expect(verify.json().redirect).toBe('/settings');
    const settings = await browser.get('/settings');
    expect(settings.statusCode).toBe(200);
    expect(settings.body).toContain('Ada Lovelace');
    // a different session from the first browser's
    expect(browser.cookies.get('latchkey_session')).not.toBe(first.cookies.get('latchkey_session'));
  });

  it('email first sends allowCredentials, and an unknown email gets a stable decoy', async () => {
    const auth = authenticator();
    await signUp(t.app, auth);
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const known = (await browser.postJson('/signin/options', { mode: 'email', email: 'ADA@example.com' })).json().options;
    expect(known.allowCredentials.map((c: { id: string }) => c.id)).toEqual([...auth.credentials.keys()]);
    const unknown1 = (await browser.postJson('/signin/options', { mode: 'email', email: 'nobody@example.com' })).json().options;
    const unknown2 = (await browser.postJson('/signin/options', { mode: 'email', email: 'nobody@example.com' })).json().options;
    expect(unknown1.allowCredentials.length).toBeGreaterThanOrEqual(1);
    expect(unknown1.allowCredentials).toEqual(unknown2.allowCredentials);
    expect(Object.keys(unknown1).sort()).toEqual(Object.keys(known).sort());
    const verify = await browser.postJson('/signin/verify', { response: auth.getAssertion(known) });
    expect(verify.statusCode).toBe(200);
  });

  it('email first: no field but the ids tells an account with one, two or three passkeys from an unknown address', async () => {
    await t.close();
    t = await createTestApp({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' });
    const { store } = t.app.latchkey;
    // Transports as browsers store them (in any order), plus a set no decoy uses: it is sent as no hint at all.
    const stored = [['internal', 'hybrid'], ['usb', 'nfc'], ['internal'], ['usb'], ['hybrid'], [], ['ble', 'usb']];
    const known: string[] = [];
    let n = 0;
    for (const count of [1, 2, 3]) {
      for (let i = 0; i < stored.length; i++) {
        const user = await createUser(store, { email: `known${count}-${i}@example.com`, displayName: 'Known Person' }, Date.now());
        for (let k = 0; k < count; k++) {
          await insertPasskey(store, {
            id: `a${n}`,
            user_id: user.id,
            credential_id: Buffer.from(`credential-${n++}`).toString('base64url'),
            public_key: 'AA',
            transports: JSON.stringify(stored[(i + k) % stored.length]),
          });
        }
        known.push(user.email);
      }
    }
    // An account that has only an authenticator app has no passkey to offer: it must look like anyone else.
    const appOnly = await createUser(store, { email: 'app-only@example.com', displayName: 'App Person' }, Date.now());
    await store.authenticators.insert({
      id: 'app', user_id: appOnly.id, type: 'totp', credential_id: 'totp-app', public_key: '', counter: 0, transports: '[]',
      aaguid: '', backup_eligible: 0, backed_up: 0, attestation_format: '', name: 'App', created_at: Date.now(), last_used_at: null,
    });
    const unknown = [appOnly.email, ...Array.from({ length: 400 }, (_, i) => `nobody-${i}@example.org`)];

    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    /** Everything in the answer except what is random for everyone (challenge) and the credential ids. */
    const answer = async (email: string) => {
      const res = await browser.postJson('/signin/options', { mode: 'email', email });
      expect(res.statusCode).toBe(200);
      const { challenge, allowCredentials, ...rest } = res.json().options;
      expect(typeof challenge).toBe('string');
      return {
        status: res.statusCode,
        contentType: res.headers['content-type'],
        outerKeys: Object.keys(res.json()).join(),
        keys: Object.keys(res.json().options).join(),
        rest: JSON.stringify(rest),
        count: allowCredentials.length as number,
        entries: (allowCredentials as Record<string, unknown>[]).map(({ id, ...entry }) => {
          expect(typeof id).toBe('string');
          return JSON.stringify({ keys: Object.keys({ id, ...entry }), ...entry });
        }),
      };
    };
    const knownAnswers = await Promise.all(known.map(answer));
    const unknownAnswers = await Promise.all(unknown.map(answer));
    const seen = (answers: typeof knownAnswers) => ({
      status: new Set(answers.map((a) => a.status)),
      contentType: new Set(answers.map((a) => a.contentType)),
      outerKeys: new Set(answers.map((a) => a.outerKeys)),
      keys: new Set(answers.map((a) => a.keys)),
      rest: new Set(answers.map((a) => a.rest)),
      count: new Set(answers.map((a) => a.count)),
      entries: new Set(answers.flatMap((a) => a.entries)),
    });
    const fromKnown = seen(knownAnswers);
    const fromUnknown = seen(unknownAnswers);
    expect(fromKnown.count).toEqual(new Set([1, 2, 3]));
    // Every value a real account's answer shows, in every field, is one unknown addresses show too.
    for (const field of Object.keys(fromKnown) as (keyof typeof fromKnown)[]) {
      for (const value of fromKnown[field]) expect(fromUnknown[field], `${field}: ${String(value)}`).toContain(value);
    }
    // Fields that are not drawn per address are the same for everyone.
    for (const field of ['status', 'contentType', 'outerKeys', 'keys', 'rest'] as const) expect(fromUnknown[field].size).toBe(1);
    // The app-only account's answer, and any unknown address's, is the same every time it is asked for.
    for (const email of unknown.slice(0, 5)) {
      const first = (await browser.postJson('/signin/options', { mode: 'email', email })).json().options.allowCredentials;
      expect((await browser.postJson('/signin/options', { mode: 'email', email: email.toUpperCase() })).json().options.allowCredentials).toEqual(first);
    }
  });

  it('refuses an assertion without user verification with a clear message', async () => {
    const auth = authenticator();
    await signUp(t.app, auth);
    auth.options.userVerification = false;
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const options = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    const verify = await browser.postJson('/signin/verify', { response: auth.getAssertion(options) });
    expect(verify.statusCode).toBe(400);
    expect(verify.json().error.code).toBe('user_verification_required');
    expect(verify.json().error.message).toMatch(/fingerprint, face, PIN/);
    expect((await browser.get('/settings')).statusCode).toBe(302);
  });

  // The assertion checks /fido2 runs too (src/webauthn/responseChecks.ts; issue 13 item 6, src/fido2/fido2.test.ts).
  it('refuses an assertion without user presence, and a cross-origin or framed one, and starts no session', async () => {
    const auth = authenticator();
    await signUp(t.app, auth);
    for (const change of [
      { userPresence: false },
      { clientDataExtra: { crossOrigin: true, topOrigin: 'https://evil.example' } },
      { clientDataExtra: { topOrigin: 'https://evil.example' } },
    ]) {
      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      const options = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
      Object.assign(auth.options, change);
      const verify = await browser.postJson('/signin/verify', { response: auth.getAssertion(options) });
      expect(verify.statusCode, JSON.stringify(change)).toBe(400);
      expect(verify.json().error.code).toBe('ceremony_failed');
      if ('userPresence' in change) expect(verify.json().error.message).toMatch(/did not confirm you were present/);
      expect((await browser.get('/settings')).statusCode).toBe(302);
      // Control: the same authenticator, put right, signs in.
      Object.assign(auth.options, { userPresence: true, clientDataExtra: {} });
      const again = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
      expect((await browser.postJson('/signin/verify', { response: auth.getAssertion(again) })).statusCode).toBe(200);
    }
  });

  it('requires the user handle in a discoverable sign-in (WebAuthn L3 §7.2 step 6)', async () => {
    const { auth, browser, options } = await signedUpThenSignInOptions();
    const response = auth.getAssertion(options);
    delete response.response.userHandle;
    const verify = await browser.postJson('/signin/verify', { response });
    expect(verify.json().error.code).toBe('credential_unknown');
    const other = authenticator();
    await signUp(t.app, other, 'bob@example.com', 'Bob');
    const again = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    const swapped = auth.getAssertion(again);
    swapped.response.userHandle = other.getAssertion(again).response.userHandle;
    expect((await browser.postJson('/signin/verify', { response: swapped })).json().error.code).toBe('credential_unknown');
  });

  it('burns the challenge when a response fails: one response, one try', async () => {
    const { auth, browser, options } = await signedUpThenSignInOptions();
    const good = auth.getAssertion(options);
    const bad = { ...good, response: { ...good.response, signature: Buffer.from('not a signature').toString('base64url') } };
    expect((await browser.postJson('/signin/verify', { response: bad })).json().error.code).toBe('ceremony_failed');
    expect((await browser.postJson('/signin/verify', { response: good })).json().error.code).toBe('challenge_invalid');
  });

  it('audits a replayed response as a failed sign-in', async () => {
    const { auth, browser, options } = await signedUpThenSignInOptions();
    const response = auth.getAssertion(options);
    expect((await browser.postJson('/signin/verify', { response })).statusCode).toBe(200);
    expect((await browser.postJson('/signin/verify', { response })).statusCode).toBe(400);
    const failures = await t.app.latchkey.store.audit.listByEvent('signin.failed');
    expect(failures.map((e) => JSON.parse(e.detail).code)).toEqual(['challenge_invalid']);
  });

  it('accepts exactly one of two concurrent submissions of one ceremony', async () => {
    const { auth, browser, options } = await signedUpThenSignInOptions({ counter: 'zero' });
    const response = auth.getAssertion(options);
    const results = await Promise.all([browser.postJson('/signin/verify', { response }), browser.postJson('/signin/verify', { response })]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 400]);
    expect(results.find((r) => r.statusCode === 400)!.json().error.code).toBe('challenge_invalid');
  });

  it('signs in several people at the same time, each with a session of their own and an audit record', async () => {
    const people = ['ada', 'grace', 'alan', 'edsger', 'barbara'].map((name) => ({ name, auth: authenticator() }));
    for (const p of people) await signUp(t.app, p.auth, `${p.name}@example.com`, p.name);
    const browsers = await Promise.all(
      people.map(async (p) => {
        const browser = new TestBrowser(t.app);
        await browser.get('/signin');
        const options = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
        return { ...p, browser, response: p.auth.getAssertion(options) };
      }),
    );
    const results = await Promise.all(browsers.map((b) => b.browser.postJson('/signin/verify', { response: b.response })));
    expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200]);
    for (const b of browsers) expect((await b.browser.get('/settings')).body).toContain(`${b.name}@example.com`);
    expect(new Set(browsers.map((b) => b.browser.cookies.get('latchkey_session'))).size).toBe(5);
    const signins = await t.app.latchkey.store.audit.listByEvent('signin');
    expect(signins).toHaveLength(5);
  });

  it('of two sign-ins at the same time with a copied passkey (same counter), refuses one as a possible clone', async () => {
    const { auth, browser, options } = await signedUpThenSignInOptions({ counter: 'increment' });
    const copy = authenticator({ counter: 'increment' });
    for (const [id, credential] of auth.credentials) copy.credentials.set(id, { ...credential });
    const other = new TestBrowser(t.app);
    await other.get('/signin');
    const otherOptions = (await other.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    const results = await Promise.all([
      browser.postJson('/signin/verify', { response: auth.getAssertion(options) }),
      other.postJson('/signin/verify', { response: copy.getAssertion(otherOptions) }),
    ]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 400]);
    expect(results.find((r) => r.statusCode === 400)!.json().error.code).toBe('counter_regressed');
    expect(await t.app.latchkey.store.audit.listByEvent('passkey.counter_regressed')).toHaveLength(1);
    expect(await t.app.latchkey.store.audit.listByEvent('signin')).toHaveLength(1);
  });
});

describe('a sign-in whose browser goes away', () => {
  it('still records where it came from, and the log has no server error', async () => {
    const logLines: { level: number; msg: string }[] = [];
    const config = testConfig({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' });
    const db = openDatabase(config.databaseUrl);
    await db.migrate();
    // At "warn" no "incoming request" line is written: the default serializer of those reads the client's address,
    // which would keep it readable after the socket closes (Latchkey's own logger never reads it).
    const app = await buildApp(config, { db, logger: { level: 'warn', stream: { write: (line: string) => void logLines.push(JSON.parse(line)) } } });
    // Holds the verify request until its browser has gone (as when a page navigates away during a sign-in).
    const reachedHandler = new Promise<void>((resolve) => {
      app.addHook('preHandler', async (request) => {
        if (request.url !== '/signin/verify' || !request.headers['x-test-leave']) return;
        const closed = new Promise((r) => request.raw.socket.once('close', r));
        resolve();
        await closed;
      });
    });
    // Whatever the outcome, the answer (with nobody left to read it) passes through onSend once the handler is done.
    const answered = new Promise<void>((resolve) => {
      app.addHook('onSend', async (request, _reply, payload) => {
        if (request.url === '/signin/verify' && request.headers['x-test-leave']) resolve();
        return payload;
      });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const auth = authenticator();
      await signUp(app, auth);
      const browser = new TestBrowser(app);
      await browser.get('/signin');
      const options = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
      const body = JSON.stringify({ response: auth.getAssertion(options), mode: 'discoverable' });
      const request = http.request(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/signin/verify`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          origin: TEST_ORIGIN,
          'x-csrf-token': browser.csrf,
          cookie: [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
          'user-agent': 'Leaving Browser/1.0',
          'x-test-leave': '1',
        },
      });
      request.on('error', () => {});
      request.end(body);
      await reachedHandler;
      request.destroy();
      await answered;
      // The sign-in finished on the server (its answer had nowhere to go): a session with the address it came from.
      const session = await db.kysely.selectFrom('sessions').select(['ip', 'user_agent']).where('user_agent', '=', 'Leaving Browser/1.0').executeTakeFirst();
      expect(session?.ip).toMatch(/127\.0\.0\.1/);
      expect(logLines.filter((l) => l.level >= 50)).toEqual([]);
    } finally {
      await app.close();
      await db.close();
    }
  });

  /** An app on a real port logging to `logLines`, with `/test/late-failure` failing for real only once its client has gone. */
  async function listeningApp(logLines: { level: number; msg: string; err?: { code?: string } }[]) {
    const config = testConfig();
    const db = openDatabase(config.databaseUrl);
    await db.migrate();
    const app = await buildApp(config, { db, logger: { level: 'info', stream: { write: (line: string) => void logLines.push(JSON.parse(line)) } } });
    let failing!: () => void;
    const reachedFailure = new Promise<void>((resolve) => (failing = resolve));
    app.get('/test/late-failure', async (request) => {
      const closed = new Promise((r) => request.raw.socket.once('close', r));
      failing();
      await closed;
      throw new Error('a real failure');
    });
    const bodyStarted = new Promise<void>((resolve) => {
      app.addHook('onRequest', async (request) => {
        if (request.url === '/test/slow-body') resolve();
      });
    });
    const bodyRead = new Promise<void>((resolve) => {
      app.addHook('onError', async (request) => {
        if (request.url === '/test/slow-body') resolve();
      });
    });
    app.post('/test/slow-body', async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = (path: string) => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}${path}`;
    return { app, db, url, reachedFailure, bodyStarted, bodyRead, close: async () => (await app.close(), await db.close()) };
  }

  it('logs a server failure as one even when the browser had already gone', async () => {
    const logLines: { level: number; msg: string }[] = [];
    const t = await listeningApp(logLines);
    try {
      const request = http.get(t.url('/test/late-failure'));
      request.on('error', () => {});
      await t.reachedFailure;
      request.destroy();
      await expect.poll(() => logLines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual(['request failed']);
      expect(logLines.find((l) => l.msg === 'client went away before the answer')).toBeUndefined();
    } finally {
      await t.close();
    }
  });

  it('logs a browser that left in the middle of sending its request as the client going away, not as a server failure', async () => {
    const logLines: { level: number; msg: string; err?: { code?: string } }[] = [];
    const t = await listeningApp(logLines);
    try {
      // Half the body it announced, then gone: Node reports the request as aborted (ECONNRESET).
      const request = http.request(t.url('/test/slow-body'), { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': 100 } });
      request.on('error', () => {});
      request.write('{"half":');
      request.flushHeaders();
      await t.bodyStarted;
      request.destroy();
      await t.bodyRead;
      await expect.poll(() => logLines.find((l) => l.msg === 'client went away before the answer')?.level).toBe(30);
      expect(logLines.find((l) => l.msg === 'client went away before the answer')?.err?.code).toBe('ECONNRESET');
      expect(logLines.filter((l) => l.level >= 50)).toEqual([]);
    } finally {
      await t.close();
    }
  });
});
