/**
 * A password as a fallback (LATCHKEY_PASSWORD_SIGNIN=alone): set in settings
 * after a fresh check, signs in on its own at AAL1 (amr pwd) with the app
 * path's throttle and one answer for every failure, and services at AAL2 step
 * the person up. With the default (with-app) none of it exists.
 */
import * as client from 'openid-client';
import { Secret, TOTP } from 'otpauth';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { authenticator, createTestApp, insertApp, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { discoverRelyingParty, follow } from '../../../test/support/relyingParty.js';
import { startSmtpSink } from '../../../test/support/smtpSink.js';
import type { SoftAuthenticator } from '../../../test/support/softAuthenticator.js';
import { hashToken } from '../../crypto.js';
import { AuditPersister } from '../../db/persisters/audit.js';
import { NO_PASSKEY_COLUMNS } from '../authenticatorKind.js';
import { openDatabase } from '../../db/connect.js';
import { addService } from '../../oidc/services.js';
import { doctorReport } from '../../oidc/doctor.js';
import { createUser } from '../../users/createUser.js';
import { newTotpSecret } from '../totp/totp.js';
import { hashPassword } from './passwords.js';

const PASSWORD = 'correct horse battery staple';
// The provider (oidc-provider) keeps its own time: the test clock starts at the real one.
const T0 = Date.now();
const minutes = (n: number) => n * 60_000;
const ALONE = { LATCHKEY_PASSWORD_SIGNIN: 'alone', LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' };

let t: TestApp;
let clock: number;
afterEach(async () => {
  vi.restoreAllMocks();
  await t?.close();
});

async function open(env: Record<string, string> = ALONE) {
  clock = T0;
  t = await createTestApp(env, { now: () => clock });
  return t.app.latchkey.store;
}

/** Sign up with a passkey and set a password in settings (the sign-up's check is fresh); the signed-in browser. */
async function personWithPassword(email = 'ada@example.com', auth: SoftAuthenticator = authenticator()) {
  const browser = await signUp(t.app, auth, email);
  const set = await browser.postForm('/settings/set-password', { password: PASSWORD, confirmPassword: PASSWORD });
  expect(set.statusCode, set.body).toBe(303);
  expect(set.headers.location).toBe('/settings?passwordset=1');
  return { browser, user: (await t.app.latchkey.store.users.findByEmail(email))! };
}

/** A signed-out browser that has loaded /signin, as a person's would. */
async function signedOut() {
  const browser = new TestBrowser(t.app);
  await browser.get('/signin');
  return browser;
}

const sessionOf = (browser: TestBrowser) => t.app.latchkey.store.sessions.findByHash(hashToken(browser.cookies.get('latchkey_session')!));

describe('LATCHKEY_PASSWORD_SIGNIN=with-app (the default): nothing changes', () => {
  it('has no "Set a password" and no "Use your password instead"; the password page still needs an app code', async () => {
    await open({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' });
    const browser = await signUp(t.app, authenticator());
    const settings = (await browser.get('/settings')).body;
    expect(settings).not.toContain('/settings/set-password');
    expect(settings).toContain('Authenticator apps and work accounts');
    for (const res of [await browser.get('/settings/set-password'), await browser.postForm('/settings/set-password', { password: PASSWORD, confirmPassword: PASSWORD })]) {
      expect(res.statusCode).toBe(404);
    }
    expect((await browser.postJson('/settings/set-password', { password: PASSWORD, confirmPassword: PASSWORD })).json().error.code).toBe('not_found');
    expect((await t.app.latchkey.store.authenticators.listForUser((await t.app.latchkey.store.users.findByEmail('ada@example.com'))!.id)).map((a) => a.type)).toEqual(['passkey']);

    const visitor = await signedOut();
    const signin = (await visitor.get('/signin')).body;
    expect(signin).not.toContain('Use your password instead');
    expect(signin).toContain('Sign in with a password and authenticator app');
    const page = (await visitor.get('/signin/password')).body;
    expect(page).toContain('<h1>Sign in with a password and authenticator app</h1>');
    const noCode = await visitor.postJson('/signin/password', { email: 'ada@example.com', password: PASSWORD });
    expect(noCode.statusCode).toBe(400);
    expect(noCode.json().error.fields.map((f: { field: string }) => f.field)).toEqual(['code']);
  });

  it('the password page has a Back link to /signin that keeps next and the email typed in', async () => {
    await open({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' });
    const visitor = await signedOut();
    const page = (await visitor.get('/signin/password?next=%2Fservices&email=ada%40example.com')).body;
    expect(page).toContain('<a class="back-link" href="/signin?next=%2Fservices&amp;email=ada%40example.com">Back</a>');
    const failed = await visitor.postForm('/signin/password?next=%2Fservices', { email: 'bob@example.com', password: PASSWORD, code: '123456' });
    expect(failed.body).toContain('<a class="back-link" href="/signin?next=%2Fservices&amp;email=bob%40example.com">Back</a>');
    expect((await visitor.get('/signin/password')).body).toContain('<a class="back-link" href="/signin">Back</a>');
  });

  it('a password row left from "alone" is not described as signing in on its own', async () => {
    const store = await open({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' });
    const browser = await signUp(t.app, authenticator());
    const user = (await store.users.findByEmail('ada@example.com'))!;
    await store.users.setPasswordHash(user.id, await hashPassword(PASSWORD), clock);
    await store.authenticators.insert({ id: 'password-1', user_id: user.id, type: 'password', credential_id: `password:${user.id}`, ...NO_PASSKEY_COLUMNS, config: '{}', name: 'Password', created_at: clock, last_used_at: null });
    await insertApp(store, t.app.latchkey.secretBox, { id: 'app-1', user_id: user.id, created_at: clock }, newTotpSecret());
    const change = (await browser.get('/settings/password')).body;
    expect(change).toContain('You use your password with a code from your authenticator app.');
    expect(change).not.toContain('on its own');
  });

  it('a password row left from "alone" signs nobody in once the setting is back to with-app', async () => {
    const db = openDatabase('sqlite::memory:');
    try {
      clock = T0;
      t = await createTestApp(ALONE, { db, now: () => clock });
      await personWithPassword();
      const before = await signedOut();
      expect((await before.postForm('/signin/password', { email: 'ada@example.com', password: PASSWORD, code: '' })).statusCode).toBe(303);
      await t.close();

      t = await createTestApp({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' }, { db, now: () => clock });
      const after = await signedOut();
      const refused = await after.postJson('/signin/password', { email: 'ada@example.com', password: PASSWORD, code: '' });
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error.fields.map((f: { field: string }) => f.field)).toEqual(['code']);
      // Even a code-shaped guess goes down the app path, where this person has no app.
      expect((await after.postJson('/signin/password', { email: 'ada@example.com', password: PASSWORD, code: '123456' })).json().error.code).toBe('signin_failed');
      expect(after.cookies.has('latchkey_session')).toBe(false);
    } finally {
      await t.close();
      await db.close();
    }
  });
});

describe('LATCHKEY_PASSWORD_SIGNIN=alone: setting a password in settings', () => {
  it('offers "Set a password", and asks for a passkey check first when the last one is older than LATCHKEY_REAUTH_MINUTES', async () => {
    await open();
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    const settings = (await browser.get('/settings')).body;
    expect(settings).toContain('Password, authenticator apps and work accounts');
    expect(settings).toContain('If you do not have a passkey set up on another device, you can set a password to sign in with instead.');
    expect(settings).toContain('href="/settings/set-password"');

    clock += minutes(6);
    const page = await browser.get('/settings/set-password');
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/settings/reauth?next=%2Fsettings%2Fset-password');
    const post = await browser.postForm('/settings/set-password', { password: PASSWORD, confirmPassword: PASSWORD });
    expect(post.statusCode).toBe(303);
    expect(post.headers.location).toBe('/settings/reauth?next=%2Fsettings%2Fset-password');
    expect((await browser.postJson('/settings/set-password', { password: PASSWORD, confirmPassword: PASSWORD })).json().error.code).toBe('reauth_required');
    const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
    expect(user.password_hash).toBeNull();

    // The check is a passkey, for someone with one: the page offers no password form.
    const reauthPage = (await browser.get('/settings/reauth?next=%2Fsettings%2Fset-password')).body;
    expect(reauthPage).toContain('id="reauth-button"');
    expect(reauthPage).not.toContain('action="/reauth/password');
    const options = (await browser.postJson('/reauth/options', {})).json().options;
    expect((await browser.postJson('/reauth/verify', { response: phone.getAssertion(options) })).statusCode).toBe(200);
    const form = await browser.get('/settings/set-password');
    expect(form.statusCode).toBe(200);
    expect(form.body).toContain('<h1>Set a password</h1>');
    expect(form.body).toContain('class="back-link" href="/settings"');
  });

  it.each([
    ['nothing', '', '', 'password', 'Enter a password'],
    ['too short', 'abc123', 'abc123', 'password', 'Your password must be at least 8 characters'],
    ['a common password', 'password1', 'password1', 'password', 'This password is too common'],
    ['their email address', 'ada@example.com', 'ada@example.com', 'password', 'Your password must not be your name or email address'],
    ['two that differ', PASSWORD, `${PASSWORD}!`, 'confirmPassword', 'The passwords do not match'],
  ])('refuses %s, in an error summary linked to the field', async (_name, password, confirmPassword, field, message) => {
    await open();
    const browser = await signUp(t.app, authenticator());
    const res = await browser.postForm('/settings/set-password', { password, confirmPassword });
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain('There is a problem');
    expect(res.body).toMatch(new RegExp(`<a href="#${field}">${message}`));
    expect(res.body).toContain(`id="${field}-error"`);
    expect(res.body).toMatch(new RegExp(`id="${field}"[^>]*aria-invalid="true"`));
    const json = await browser.postJson('/settings/set-password', { password, confirmPassword });
    expect(json.statusCode).toBe(400);
    expect(json.json().error).toMatchObject({ code: 'validation_failed', fields: [{ field }] });
    const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
    expect(user.password_hash).toBeNull();
    expect((await t.app.latchkey.store.authenticators.listForUser(user.id)).map((a) => a.type)).toEqual(['passkey']);
  });

  it('sets it: an argon2id hash, a "Password" row, an audit record and an email; then it is changed, not set again', async () => {
    const sink = await startSmtpSink();
    try {
      await open({ ...ALONE, LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'St Elsewhere NHS Trust' });
      const { browser, user } = await personWithPassword();
      expect(user.password_hash).toMatch(/^\$argon2id\$/);
      const rows = await t.app.latchkey.store.authenticators.listForUser(user.id);
      const row = rows.find((a) => a.type === 'password')!;
      expect(row).toMatchObject({ name: 'Password', config: '{}', public_key: '', last_used_at: null });
      const [set] = (await t.app.latchkey.store.audit.listForSubject(user.id, 5)).filter((e) => e.event === 'password.set');
      expect(set).toMatchObject({ authenticator_id: row.id, outcome: 'success' });
      const notice = await sink.waitFor((m) => m.to.includes('ada@example.com'));
      expect(notice.subject).toBe('An authenticator was added to your St Elsewhere NHS Trust profile');
      expect(notice.text).toContain('A password was added to your St Elsewhere NHS Trust profile at');
      expect(notice.text).toContain('you can sign in with it on its own');

      const settings = (await browser.get('/settings?passwordset=1')).body;
      expect(settings).toContain('Your password has been set. You can now use it to sign in.');
      expect(settings).toMatch(new RegExp(`data-authenticator-id="${row.id}" data-kind="password"`));
      expect(settings).toContain(`href="/settings/authenticators/${row.id}/remove"`);
      expect(settings).toContain('Password set for signing in on its own');
      expect(settings).not.toContain('href="/settings/set-password"');
      const again = await browser.get('/settings/set-password');
      expect(again.statusCode).toBe(303);
      expect(again.headers.location).toBe('/settings/password');
      const change = await browser.get('/settings/password');
      expect(change.body).toContain('You use your password to sign in on its own.');
    } finally {
      await sink.close();
    }
  });

  it('someone with an app is told it changes that password too; the app and the password alone then share it', async () => {
    const store = await open();
    const browser = await signUp(t.app, authenticator());
    const user = (await store.users.findByEmail('ada@example.com'))!;
    await store.users.setPasswordHash(user.id, await hashPassword('the old app password'), clock);
    const secret = newTotpSecret();
    await insertApp(store, t.app.latchkey.secretBox, { id: 'app-1', user_id: user.id, created_at: clock }, secret);
    expect((await browser.get('/settings')).body).toContain('You use your password with a code from your authenticator app. You can also let it sign you in on its own');
    const form = (await browser.get('/settings/set-password')).body;
    expect(form).toContain('Setting a password here changes that password too, and lets you sign in with it on its own.');
    expect((await browser.postForm('/settings/set-password', { password: PASSWORD, confirmPassword: PASSWORD })).statusCode).toBe(303);
    expect((await browser.get('/settings/password')).body).toContain('You use your password to sign in on its own, and with a code from your authenticator app.');

    const app = new TOTP({ secret: Secret.fromBase32(secret) });
    const withOld = await (await signedOut()).postJson('/signin/password', { email: user.email, password: 'the old app password', code: app.generate({ timestamp: clock }) });
    expect(withOld.json().error.code).toBe('signin_failed');
    const withApp = await signedOut();
    expect((await withApp.postForm('/signin/password', { email: user.email, password: PASSWORD, code: app.generate({ timestamp: clock }) })).statusCode).toBe(303);
    expect((await sessionOf(withApp))!.aal).toBe(2);
  });
});

describe('LATCHKEY_PASSWORD_SIGNIN=alone: signing in with the password', () => {
  it('"Use your password instead" on /signin, keeping next and email, leads to a password sign-in at AAL1', async () => {
    const store = await open();
    const { user } = await personWithPassword();
    const visitor = await signedOut();
    const signin = (await visitor.get('/signin?next=%2Fservices&email=ada%40example.com')).body;
    expect(signin).toContain('If you do not have a passkey set up on another device, you can use your password instead.');
    expect(signin).toContain('<a href="/signin/password?next=%2Fservices&amp;email=ada%40example.com">Use your password instead</a>');
    expect(signin).not.toContain('Sign in with a password and authenticator app');
    const page = (await visitor.get('/signin/password?next=%2Fservices&email=ada%40example.com')).body;
    expect(page).toContain('<h1>Sign in with your password</h1>');
    expect(page).toContain('value="ada@example.com"');
    expect(page).toContain('Code from your authenticator app (optional)');

    clock += 1000;
    const res = await visitor.postForm('/signin/password?next=%2Fservices', { email: 'ada@example.com', password: PASSWORD, code: '' });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/services');
    const session = (await sessionOf(visitor))!;
    const row = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'password')!;
    expect(session).toMatchObject({ user_id: user.id, aal: 1, authenticator_id: row.id });
    expect(row.last_used_at).toBe(clock);
    const [signedIn] = (await store.audit.listForSubject(user.id, 1));
    expect(signedIn).toMatchObject({ event: 'signin', authenticator_id: row.id });
    expect(JSON.parse(signedIn!.detail)).toEqual({ method: 'password' });
    expect((await visitor.get('/settings')).statusCode).toBe(200);
  });

  it('a wrong password, an unknown address and an account without a password of its own get one answer after the same work', async () => {
    const store = await open();
    await personWithPassword('ada@example.com');
    // Uses a password, but only with an app: it doesn't sign in on its own.
    const appUser = await createUser(store, { email: 'bob@example.com', displayName: 'Bob' }, clock);
    await store.users.setPasswordHash(appUser.id, await hashPassword(PASSWORD), clock);
    await insertApp(store, t.app.latchkey.secretBox, { id: 'app-bob', user_id: appUser.id, created_at: clock }, newTotpSecret());
    await store.users.setStatus(appUser.id, 'enrolled', clock);
    // Passkeys only.
    await signUp(t.app, authenticator(), 'cat@example.com');

    const attempts = [
      { email: 'ada@example.com', password: 'not the password at all' },
      { email: 'bob@example.com', password: PASSWORD },
      { email: 'cat@example.com', password: PASSWORD },
      { email: 'dan@example.com', password: PASSWORD },
    ];
    const queries = {
      account: vi.spyOn(store.users, 'findByEmail'),
      addressCount: vi.spyOn(store.signinFailures, 'find'),
      rows: vi.spyOn(store.authenticators, 'listForUser'),
      accountFailure: vi.spyOn(store.users, 'recordFailedSignin'),
      addressFailure: vi.spyOn(store.signinFailures, 'recordFailure'),
      audit: vi.spyOn(store.audit, 'record'),
    };
    const browser = await signedOut();
    for (const as of ['page', 'json'] as const) {
      const answers = new Set<string>();
      const work = new Set<string>();
      for (const { email, password } of attempts) {
        for (const q of Object.values(queries)) q.mockClear();
        const res = as === 'page' ? await browser.postForm('/signin/password', { email, password, code: '' }) : await browser.postJson('/signin/password', { email, password });
        const { date: _date, ...headers } = res.headers;
        answers.add(JSON.stringify({ status: res.statusCode, headers, body: res.body.replaceAll(email, '<email>').replaceAll(encodeURIComponent(email), '<email>') }));
        work.add(
          `${queries.account.mock.calls.length} account, ${queries.addressCount.mock.calls.length} address-count, ${queries.rows.mock.calls.length} authenticator lookups; ` +
            `${queries.accountFailure.mock.calls.length + queries.addressFailure.mock.calls.length} failures written; ${queries.audit.mock.calls.length} audited`,
        );
      }
      expect([...answers], as).toHaveLength(1);
      expect([...work], as).toEqual(['1 account, 1 address-count, 1 authenticator lookups; 1 failures written; 1 audited']);
      const [answer] = [...answers].map((a) => JSON.parse(a) as { status: number; body: string });
      expect(answer!.status).toBe(400);
      expect(answer!.body).toContain('The email address, password or code is not right.');
    }
    expect(browser.cookies.has('latchkey_session')).toBe(false);
    const failed = (await store.audit.listForSubject((await store.users.findByEmail('ada@example.com'))!.id, 5)).filter((e) => e.event === 'signin.failed');
    expect(JSON.parse(failed[0]!.detail)).toEqual({ method: 'password', code: 'signin_failed' });
  });

  it('counts failures towards the account\'s throttle: after 5, even the right password waits', async () => {
    const store = await open();
    const { user } = await personWithPassword();
    const browser = await signedOut();
    for (let i = 0; i < 5; i++) expect((await browser.postForm('/signin/password', { email: user.email, password: 'wrong horse battery', code: '' })).statusCode).toBe(400);
    expect((await store.users.findById(user.id))!.failed_signins).toBe(5);
    const waiting = await browser.postJson('/signin/password', { email: user.email, password: PASSWORD });
    expect(waiting.statusCode).toBe(429);
    expect(waiting.json().error.code).toBe('signin_throttled');
    clock += 1000;
    expect((await browser.postForm('/signin/password', { email: user.email, password: PASSWORD, code: '' })).statusCode).toBe(303);
    expect((await store.users.findById(user.id))!.failed_signins).toBe(0);
  });

  it('a suspended person is refused with the same answer', async () => {
    const store = await open();
    const { user } = await personWithPassword();
    await store.users.setStatus(user.id, 'suspended', clock);
    const res = await (await signedOut()).postJson('/signin/password', { email: user.email, password: PASSWORD });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('signin_failed');
  });
});

describe('LATCHKEY_PASSWORD_SIGNIN=alone: one password, shared with the apps', () => {
  it('removing the last app keeps a password that signs in alone; removing that then clears it', async () => {
    const store = await open();
    const { browser, user } = await personWithPassword();
    await insertApp(store, t.app.latchkey.secretBox, { id: 'app-1', user_id: user.id, created_at: clock }, newTotpSecret());
    const remove = async (id: string) => {
      expect((await browser.get(`/settings/authenticators/${id}/remove`)).statusCode).toBe(200);
      expect((await browser.postForm(`/settings/authenticators/${id}/remove`, { confirm: 'yes' })).statusCode).toBe(303);
    };
    await remove('app-1');
    expect((await store.users.findById(user.id))!.password_hash).toMatch(/^\$argon2id\$/);
    expect((await (await signedOut()).postForm('/signin/password', { email: user.email, password: PASSWORD, code: '' })).statusCode).toBe(303);

    const row = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'password')!;
    expect((await browser.get(`/settings/authenticators/${row.id}/remove`)).body).toContain('If you use an authenticator app, your password still works with its code.');
    await remove(row.id);
    expect((await store.users.findById(user.id))!.password_hash).toBeNull();
    expect((await (await signedOut()).postJson('/signin/password', { email: user.email, password: PASSWORD })).json().error.code).toBe('signin_failed');
    // Nothing left to change, and "Set a password" is offered again.
    expect((await browser.get('/settings/password')).statusCode).toBe(404);
    expect((await browser.get('/settings')).body).toContain('href="/settings/set-password"');
  });

  it('removing the password alone keeps the password an app still uses', async () => {
    const store = await open();
    const { browser, user } = await personWithPassword();
    await insertApp(store, t.app.latchkey.secretBox, { id: 'app-1', user_id: user.id, created_at: clock }, newTotpSecret());
    const row = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'password')!;
    expect((await browser.postForm(`/settings/authenticators/${row.id}/remove`, { confirm: 'yes' })).statusCode).toBe(303);
    expect((await store.users.findById(user.id))!.password_hash).toMatch(/^\$argon2id\$/);
    expect((await store.authenticators.listForUser(user.id)).map((a) => a.type).sort()).toEqual(['passkey', 'totp']);
  });

  it('"Confirm it is you" takes the password alone only from someone with no passkey or app', async () => {
    const store = await open();
    const { browser, user } = await personWithPassword();
    const passkey = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'passkey')!;
    expect((await browser.postForm(`/settings/passkeys/${passkey.id}/remove`, { confirm: 'yes' })).statusCode).toBe(409); // the last passkey stays
    // A person whose only way in is the password (their passkey removed by an agent, say).
    await store.authenticators.remove(user.id, passkey.id);
    const page = (await browser.get('/settings/reauth?next=%2Fsettings')).body;
    expect(page).toContain('<h2>Use your password</h2>');
    expect(page).not.toContain('Code from your authenticator app');
    expect(page).not.toContain('id="reauth-button"');
    clock += minutes(10);
    const wrong = await browser.postForm('/reauth/password?next=%2Fsettings', { password: 'not the password at all', code: '' });
    expect(wrong.statusCode).toBe(400);
    // The summary links to the field, where the message is said again.
    expect(wrong.body).toContain('<a href="#password">The password is not right. Check it and try again.</a>');
    expect(wrong.body).toMatch(/<p class="error-message" id="password-error"><span class="visually-hidden">Error: <\/span>The password is not right\. Check it and try again\.<\/p>/);
    expect(wrong.body).toMatch(/<input type="password" id="password"[^>]*aria-invalid="true" aria-describedby="password-error"/);
    const ok = await browser.postForm('/reauth/password?next=%2Fsettings', { password: PASSWORD, code: '' });
    expect(ok.statusCode).toBe(303);
    expect((await sessionOf(browser))!.authenticated_at).toBe(clock);
    expect(JSON.parse((await store.audit.listForSubject(user.id, 1))[0]!.detail)).toEqual({ method: 'password' });
    // Recent activity says how it was confirmed.
    const settings = (await browser.get('/settings')).body;
    expect(settings).toContain('<tr data-event="reauth"><td data-label="When">');
    expect(settings).toMatch(/<tr data-event="reauth">[^]*?<td data-label="What">Confirmed it was you with your password<\/td>/);
    expect(settings).toMatch(/<tr data-event="reauth.failed">[^]*?<td data-label="What">Failed password check<\/td>/);
    expect(settings).not.toContain('with a passkey');
  });

  it('a password sign-in is one write: when its audit record fails, no session starts and nothing is recorded as used', async () => {
    const store = await open();
    const { user } = await personWithPassword();
    const browser = await signedOut();
    expect((await browser.postForm('/signin/password', { email: user.email, password: 'wrong horse battery', code: '' })).statusCode).toBe(400);
    const sessionsBefore = (await store.sessions.listForUser(user.id, clock, t.config.sessionIdleSeconds * 1000)).length;
    const record = AuditPersister.prototype.record;
    vi.spyOn(AuditPersister.prototype, 'record').mockImplementation(async function (this: AuditPersister, r) {
      if (r.event === 'signin') throw new Error('disk full');
      return record.call(this, r);
    });
    clock += 1000;
    expect((await browser.postForm('/signin/password', { email: user.email, password: PASSWORD, code: '' })).statusCode).toBe(500);
    vi.restoreAllMocks();
    expect((await store.sessions.listForUser(user.id, clock, t.config.sessionIdleSeconds * 1000)).length).toBe(sessionsBefore);
    expect((await store.authenticators.listForUser(user.id)).find((a) => a.type === 'password')!.last_used_at).toBeNull();
    expect((await store.users.findById(user.id))!.failed_signins).toBe(1);
  });

  it('a password check is one write: when its audit record fails, the session is not stepped up', async () => {
    const store = await open();
    const { browser, user } = await personWithPassword();
    const passkey = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'passkey')!;
    await store.authenticators.remove(user.id, passkey.id);
    clock += minutes(10);
    const before = (await sessionOf(browser))!;
    const record = AuditPersister.prototype.record;
    vi.spyOn(AuditPersister.prototype, 'record').mockImplementation(async function (this: AuditPersister, r) {
      if (r.event === 'reauth') throw new Error('disk full');
      return record.call(this, r);
    });
    expect((await browser.postForm('/reauth/password?next=%2Fsettings', { password: PASSWORD, code: '' })).statusCode).toBe(500);
    vi.restoreAllMocks();
    expect((await sessionOf(browser))!.authenticated_at).toBe(before.authenticated_at);
    expect((await store.authenticators.listForUser(user.id)).find((a) => a.type === 'password')!.last_used_at).toBeNull();
  });
});

describe('LATCHKEY_PASSWORD_SIGNIN=alone: a password alone changes nothing for someone with more', () => {
  it('signed in with the password alone, someone with an app must confirm it is them with the app before adding, removing or changing anything', async () => {
    const store = await open();
    const { user } = await personWithPassword();
    const secret = newTotpSecret();
    await insertApp(store, t.app.latchkey.secretBox, { id: 'app-1', user_id: user.id, created_at: clock }, secret);
    // An attacker with the phished password alone: an AAL1 session, seconds old.
    const browser = await signedOut();
    expect((await browser.postForm('/signin/password', { email: user.email, password: PASSWORD, code: '' })).statusCode).toBe(303);
    expect((await sessionOf(browser))!.aal).toBe(1);
    const toReauth = /^\/settings\/reauth\?next=/;
    expect((await browser.postJson('/settings/passkeys/options', { name: 'Mine', placement: 'this-device' })).json().error.code).toBe('reauth_required');
    expect((await browser.postJson('/passkey-upgrade/options', { conditional: false, next: '/settings' })).json().error.code).toBe('reauth_required');
    expect((await browser.get('/settings/authenticators/app-1/remove')).headers.location).toMatch(toReauth);
    expect((await browser.postForm('/settings/authenticators/app-1/remove', { confirm: 'yes' })).headers.location).toMatch(toReauth);
    expect((await browser.get('/settings/password')).headers.location).toMatch(toReauth);
    expect((await browser.postForm('/settings/password', { password: 'a new one nobody knows', confirmPassword: 'a new one nobody knows' })).headers.location).toMatch(toReauth);
    expect((await store.authenticators.listForUser(user.id)).map((a) => a.type).sort()).toEqual(['passkey', 'password', 'totp']);

    // With the app's code the check reaches AAL2, and the same request goes through.
    const code = new TOTP({ secret: Secret.fromBase32(secret) }).generate({ timestamp: clock });
    expect((await browser.postForm('/reauth/password?next=%2Fsettings', { password: PASSWORD, code })).statusCode).toBe(303);
    expect((await sessionOf(browser))!.aal).toBe(2);
    expect((await browser.get('/settings/authenticators/app-1/remove')).statusCode).toBe(200);
  });

  it('is not offered "Set up a passkey" after a password-alone sign-in it could not use; with the app\'s code it is', async () => {
    const store = await open();
    const { user } = await personWithPassword();
    const secret = newTotpSecret();
    await insertApp(store, t.app.latchkey.secretBox, { id: 'app-1', user_id: user.id, created_at: clock }, secret);
    await store.authenticators.remove(user.id, (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'passkey')!.id);
    const alone = await signedOut();
    expect((await alone.postForm('/signin/password', { email: user.email, password: PASSWORD, code: '' })).headers.location).toBe('/settings');
    // Opened anyway on the way to a service, the page goes on through the continue page, not a redirect chain.
    const onward = await alone.get('/passkey-upgrade?next=%2Finteraction%2Fabc');
    expect(onward.statusCode).toBe(200);
    expect(onward.body).not.toContain('Set up a passkey</h1>');
    const withApp = await signedOut();
    const code = new TOTP({ secret: Secret.fromBase32(secret) }).generate({ timestamp: clock });
    expect((await withApp.postForm('/signin/password', { email: user.email, password: PASSWORD, code })).headers.location).toBe('/passkey-upgrade?next=%2Fsettings');
  });

  it('someone whose only way in is the password alone may add a passkey with it: that is how they move up', async () => {
    const store = await open();
    const { user } = await personWithPassword();
    const passkey = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'passkey')!;
    await store.authenticators.remove(user.id, passkey.id);
    const browser = await signedOut();
    expect((await browser.postForm('/signin/password', { email: user.email, password: PASSWORD, code: '' })).statusCode).toBe(303);
    expect((await browser.postJson('/settings/passkeys/options', { name: 'Mine', placement: 'this-device' })).statusCode).toBe(200);
  });
});

describe('LATCHKEY_PASSWORD_SIGNIN=alone: services (OpenID Connect)', () => {
  const REDIRECT = 'https://rp.example/callback';

  async function service(aal: 1 | 2) {
    const { store, secretBox } = t.app.latchkey;
    const added = await addService(store, secretBox, { name: `Rota AAL${aal}`, redirectUris: [REDIRECT], postLogoutRedirectUris: [], clientType: 'confidential', aal, firstParty: true }, clock);
    return discoverRelyingParty(t.app, added.service.client_id, added.clientSecret!);
  }

  /** From a signed-out browser: the service's request, then "Use your password instead" on the sign-in page it leads to. */
  async function signInThroughService(rp: client.Configuration, browser: TestBrowser) {
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    const { url: atSignIn, res: signInPage } = await follow(browser, url.toString());
    expect(signInPage.body).toContain('Use your password instead');
    const next = new URL(atSignIn).searchParams.get('next')!;
    const signedIn = await browser.postForm(`/signin/password?next=${encodeURIComponent(next)}`, { email: 'ada@example.com', password: PASSWORD, code: '' });
    expect(signedIn.statusCode).toBe(200);
    const link = /id="continue-link" class="button" href="([^"]+)"/.exec(signedIn.body)![1]!.replace(/&amp;/g, '&');
    return { verifier, ...(await follow(browser, link)) };
  }

  it('a service at AAL1 gets an ID token with acr AAL1 and amr ["pwd"]', async () => {
    await open();
    const { user } = await personWithPassword();
    const rp = await service(1);
    const { url: callback, verifier } = await signInThroughService(rp, await signedOut());
    expect(callback.startsWith(REDIRECT)).toBe(true);
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
    expect(tokens.claims()).toMatchObject({ sub: user.id, acr: 'http://idmanagement.gov/ns/assurance/aal/1', amr: ['pwd'] });
  });

  it('a service at AAL2 asks for a passkey first, then gets acr AAL2', async () => {
    await open();
    const phone = authenticator();
    await personWithPassword('ada@example.com', phone);
    const rp = await service(2);
    const browser = await signedOut();
    const { url: atReauth, verifier } = await signInThroughService(rp, browser);
    expect(atReauth).toMatch(/\/settings\/reauth\?next=%2Finteraction%2F/);
    const reauthPage = (await browser.get(atReauth.slice(TEST_ORIGIN.length))).body;
    expect(reauthPage).toContain('needs a stronger sign-in than the one you used');
    expect(reauthPage).not.toContain('action="/reauth/password');
    const options = (await browser.postJson('/reauth/options', {})).json().options;
    expect((await browser.postJson('/reauth/verify', { response: phone.getAssertion(options) })).statusCode).toBe(200);
    const { url: callback } = await follow(browser, decodeURIComponent(new URL(atReauth).searchParams.get('next')!));
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
    expect(tokens.claims()).toMatchObject({ acr: 'http://idmanagement.gov/ns/assurance/aal/2', amr: ['hwk', 'user', 'mfa'] });
  });
});

describe('latchkey doctor', () => {
  it('says which setting is in force and what it means for assurance', async () => {
    await open({});
    const withApp = await doctorReport(t.config, t.app.latchkey.store, clock, { provider: t.app.latchkey.oidc });
    expect(withApp.text).toMatch(/password sign-in +with-app \(LATCHKEY_PASSWORD_SIGNIN\): a password signs in only with an authenticator app code, at AAL2/);
    expect(withApp.warnings.join('\n')).not.toContain('LATCHKEY_PASSWORD_SIGNIN');
    await t.close();

    await open();
    const alone = await doctorReport(t.config, t.app.latchkey.store, clock, { provider: t.app.latchkey.oidc });
    expect(alone.text).toMatch(/password sign-in +alone \(LATCHKEY_PASSWORD_SIGNIN\): a password signs in on its own at AAL1 \(amr pwd, phishable\)/);
    expect(alone.warnings).toContain(
      'LATCHKEY_PASSWORD_SIGNIN=alone: people who set a password can sign in with it on its own, at AAL1 with something phishable; ' +
        'services registered at AAL2 or above ask them for a passkey or an authenticator app first, services at AAL1 let them straight in',
    );
  });
});
