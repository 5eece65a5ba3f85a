/**
 * Self-service "Add an authenticator" over HTTP: the identity check (with a
 * real ALTCHA solution and a real SMTP server), the emailed code, the passkey
 * and authenticator-app branches, and signing in with password + app code.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { solveChallenge } from 'altcha-lib/v1';
import { Secret, TOTP } from 'otpauth';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { startSmtpSink, type SmtpSink } from '../../../test/support/smtpSink.js';
import { expectConfirmError } from '../../../test/support/pages.js';
import { createUser } from '../../users/createUser.js';
import { hashNationalId } from '../../users/nationalId.js';
import type { User } from '../../db/schema.js';

const T0 = Date.UTC(2026, 10, 22, 9, 0, 10);
const NINO = 'QQ123456C';

let sink: SmtpSink;
beforeAll(async () => {
  sink = await startSmtpSink();
});
afterAll(async () => sink.close());

describe('self-service: add an authenticator', () => {
  let t: TestApp;
  let clock: number;
  beforeEach(async () => {
    clock = T0;
    sink.clear();
    // Metrics on (nothing listens: the tests read app.latchkey.metrics), so what self-service counts is checked here.
    t = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'Care Identity', LATCHKEY_METRICS_PORT: '0' }, { now: () => clock });
  });
  afterEach(async () => t.close());
  const store = () => t.app.latchkey.store;

  async function person(email = 'nell@example.org', nino: string | null = NINO, status: User['status'] = 'pending'): Promise<User> {
    const user = await createUser(store(), { email, displayName: 'Nell Gwyn' }, clock);
    if (nino) await store().users.setNationalIdHash(user.id, hashNationalId(t.app.latchkey.secret, nino), clock);
    if (status !== 'pending') await store().users.setStatus(user.id, status, clock);
    return (await store().users.findById(user.id))!;
  }

  async function solvedCaptcha(browser: TestBrowser): Promise<string> {
    const c = (await browser.get('/add-authenticator/captcha', 'application/json')).json();
    const solution = await solveChallenge(c.challenge, c.salt, c.algorithm, c.maxnumber).promise;
    return Buffer.from(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: solution!.number, salt: c.salt, signature: c.signature })).toString('base64');
  }

  /** Start, and land on the details page; returns the flow's path. */
  async function start(browser = new TestBrowser(t.app)) {
    const page = await browser.get('/add-authenticator');
    expect(page.body).toContain('Add an authenticator to your profile');
    const started = await browser.postForm('/add-authenticator', {});
    expect(started.statusCode).toBe(303);
    const details = started.headers.location as string;
    expect(details).toMatch(/^\/add-authenticator\/[A-Za-z0-9_-]+\/details$/);
    return { browser, base: details.replace(/\/details$/, '') };
  }

  async function submitDetails(browser: TestBrowser, base: string, email: string, nationalId: string, captcha?: string) {
    return browser.postForm(`${base}/details`, { email, nationalId, captcha: captcha ?? (await solvedCaptcha(browser)) });
  }

  /** Through the identity check and the emailed code, to the choice of authenticator. */
  async function verified(email = 'nell@example.org') {
    const { browser, base } = await start();
    const details = await submitDetails(browser, base, email, 'qq 12 34 56 c');
    expect(details.headers.location).toBe(`${base}/code`);
    const mail = await sink.waitFor((m) => m.to.includes(email) && /code/i.test(m.subject));
    const code = /\b(\d{6})\b/.exec(mail.text)![1]!;
    const ok = await browser.postForm(`${base}/code`, { code });
    expect(ok.headers.location).toBe(`${base}/choose`);
    sink.clear();
    return { browser, base };
  }

  it('every page has a Back link to the page before and says which step it is (GOV.UK / NHS patterns)', async () => {
    await person();
    const back = (html: string) => /<a href="([^"]+)" class="back-link">Back<\/a>/.exec(html)?.[1];
    const step = (html: string) => /<p class="caption step">([^<]+)<\/p>/.exec(html)?.[1];
    const { browser, base } = await start();
    expect(back((await browser.get('/add-authenticator')).body)).toBe('/signin');
    const details = (await browser.get(`${base}/details`)).body;
    expect([back(details), step(details)]).toEqual(['/add-authenticator', 'Step 1 of 4']);
    expect((await submitDetails(browser, base, 'nell@example.org', NINO)).headers.location).toBe(`${base}/code`);
    await sink.waitFor((m) => m.to.includes('nell@example.org'));
    const code = (await browser.get(`${base}/code`)).body;
    expect([back(code), step(code)]).toEqual([`${base}/details`, 'Step 2 of 4']);
    // Back from the code: the details page again, the email address kept; sending them again sends a new code.
    const again = await browser.get(`${base}/details`);
    expect(again.statusCode).toBe(200);
    expect(again.body).toContain('value="nell@example.org"');
    expect((await submitDetails(browser, base, 'nell@example.org', NINO)).headers.location).toBe(`${base}/code`);
    await sink.waitFor(() => sink.messages.length === 2);
    const fresh = /\b(\d{6})\b/.exec(sink.messages[1]!.text)![1]!;
    expect((await browser.postForm(`${base}/code`, { code: fresh })).headers.location).toBe(`${base}/choose`);

    const choose = (await browser.get(`${base}/choose`)).body;
    expect([back(choose), step(choose)]).toEqual(['/add-authenticator', 'Step 3 of 4']);
    for (const page of ['passkey', 'app']) {
      const body = (await browser.get(`${base}/${page}`)).body;
      expect([back(body), step(body)], page).toEqual([`${base}/choose`, 'Step 4 of 4']);
    }
    await browser.postForm(`${base}/app`, { confirm: 'yes' });
    const password = (await browser.get(`${base}/app/password`)).body;
    expect([back(password), step(password)]).toEqual([`${base}/app`, 'Step 4 of 4']);
    await browser.postForm(`${base}/app/password`, { password: 'correct horse battery', confirmPassword: 'correct horse battery' });
    const scan = (await browser.get(`${base}/app/setup`)).body;
    expect([back(scan), step(scan)]).toEqual([`${base}/app/password`, 'Step 4 of 4']);
  });

  it('from settings, two steps, and Back from the choice goes to settings', async () => {
    const me = await signUp(t.app, authenticator(), 'grace@example.org', 'Grace Hopper');
    const choose = (await me.postForm('/settings/add-authenticator', {})).headers.location as string;
    const page = (await me.get(choose)).body;
    expect(page).toContain('<a href="/settings" class="back-link">Back</a>');
    expect(page).toContain('Step 1 of 2');
    expect((await me.get(choose.replace(/choose$/, 'passkey'))).body).toContain('Step 2 of 2');
  });

  it('re-sending the details after a code counts as asking for a new code', async () => {
    await person();
    const { browser, base } = await start();
    await submitDetails(browser, base, 'nell@example.org', NINO);
    for (let i = 0; i < 3; i++) expect((await submitDetails(browser, base, 'nell@example.org', NINO)).headers.location).toBe(`${base}/code`);
    const fourth = await submitDetails(browser, base, 'nell@example.org', NINO);
    expect(fourth.statusCode).toBe(429);
    expect(fourth.body).toContain('We have already sent 3 new codes');
  });

  it('every reason the details do not match ends on the same problem page', async () => {
    await person('nell@example.org');
    await person('nonino@example.org', null);
    await person('gone@example.org', NINO, 'suspended');
    const answers: string[] = [];
    for (const [email, nino] of [
      ['nobody@example.org', NINO],
      ['nell@example.org', 'AB123456C'],
      ['nonino@example.org', NINO],
      ['gone@example.org', NINO],
    ] as const) {
      const { browser, base } = await start();
      const res = await submitDetails(browser, base, email, nino);
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe(`${base}/problem`);
      const problem = await browser.get(res.headers.location as string);
      expect(problem.body).toContain('Problem adding authenticator');
      expect(problem.body).toContain('Contact your organisation’s registration authority or IT service desk.');
      // The same page whoever asked: only the flow id and CSRF token differ.
      answers.push(problem.body.replaceAll(base, 'BASE').replace(/content="[^"]+"/g, ''));
    }
    expect(new Set(answers).size).toBe(1);
    expect(sink.messages).toEqual([]);
  });

  it('checks the fields, the national identifier format and the CAPTCHA, which works once', async () => {
    await person();
    const { browser, base } = await start();
    const bad = await browser.postForm(`${base}/details`, { email: 'nope', nationalId: 'QQ 12', captcha: '' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('Enter an email address in the correct format');
    expect(bad.body).toContain('National Insurance number in the correct format');
    const noCaptcha = await browser.postForm(`${base}/details`, { email: 'nell@example.org', nationalId: NINO, captcha: '' });
    expect(noCaptcha.statusCode).toBe(400);
    expect(noCaptcha.body).toContain('The check that you are a person did not finish');
    const solution = await solvedCaptcha(browser);
    expect((await submitDetails(browser, base, 'nobody@example.org', NINO, solution)).statusCode).toBe(303);
    const { browser: other, base: otherBase } = await start();
    const replayed = await submitDetails(other, otherBase, 'nell@example.org', NINO, solution);
    expect(replayed.statusCode).toBe(400);
    expect(replayed.body).toContain('The check that you are a person did not finish');
  });

  it('the emailed code: 5 wrong tries burn it, a new code does not reset the count, and it expires after 10 minutes', async () => {
    await person();
    const { browser, base } = await start();
    await submitDetails(browser, base, 'nell@example.org', NINO);
    await sink.waitFor((m) => m.to.includes('nell@example.org'));
    for (let i = 0; i < 3; i++) expect((await browser.postForm(`${base}/code`, { code: '000000' })).statusCode).toBe(400);
    expect((await browser.postForm(`${base}/code/resend`, {})).headers.location).toBe(`${base}/code?resent=1`);
    await sink.waitFor(() => sink.messages.length === 2);
    const fresh = /\b(\d{6})\b/.exec(sink.messages[1]!.text)![1]!;
    const wrong = fresh === '000000' ? '111111' : '000000';
    const fourth = await browser.postForm(`${base}/code`, { code: wrong });
    expect(fourth.body).toContain('1 try left');
    const fifth = await browser.postForm(`${base}/code`, { code: wrong });
    expect(fifth.statusCode).toBe(410);
    // It was a code, not a link; and the page says what to do next.
    expect(fifth.body).toContain('<h1>This code can no longer be used</h1>');
    expect(fifth.body).toContain('The code was entered wrongly 5 times, so it has stopped working. Start again to get a new code.');
    expect(fifth.body).toContain('<a href="/add-authenticator">Start again to get a new code</a>');
    expect((await browser.postForm(`${base}/code`, { code: fresh })).statusCode).toBe(410);

    const second = await start();
    await submitDetails(second.browser, second.base, 'nell@example.org', NINO);
    const mail = await sink.waitFor((m) => m.to.includes('nell@example.org') && sink.messages.indexOf(m) === 2);
    clock += 10 * 60_000;
    const late = await second.browser.postForm(`${second.base}/code`, { code: /\b(\d{6})\b/.exec(mail.text)![1]! });
    expect(late.statusCode).toBe(410);
    expect(late.body).toContain('This code has expired');
  });

  it('limits identity checks per email address, whether or not it has an account', async () => {
    for (let i = 0; i < 5; i++) {
      const { browser, base } = await start();
      expect((await submitDetails(browser, base, 'Someone@Example.org', NINO)).statusCode).toBe(303);
    }
    const { browser, base } = await start();
    const limited = await submitDetails(browser, base, 'someone@example.org', NINO);
    expect(limited.statusCode).toBe(429);
    expect(limited.body).toContain('too many attempts to add an authenticator');
  });

  it('a flow belongs to the browser that started it', async () => {
    await person();
    const { base } = await start();
    const stranger = new TestBrowser(t.app);
    await stranger.get('/add-authenticator');
    const res = await stranger.get(`${base}/details`);
    expect(res.statusCode).toBe(410);
  });

  it('adds a passkey (the person becomes Enrolled) and emails them', async () => {
    const user = await person();
    const { browser, base } = await verified();
    const choose = await browser.get(`${base}/choose`);
    for (const text of ['Passkey', 'Authenticator app']) expect(choose.body).toContain(text);
    expect((await browser.postForm(`${base}/choose`, {})).statusCode).toBe(400);
    expect((await browser.postForm(`${base}/choose`, { type: 'passkey' })).headers.location).toBe(`${base}/passkey`);
    await browser.get(`${base}/passkey`);
    const refusedOpts = await browser.postJson(`${base}/passkey/options`, { name: 'My phone', placement: 'another-device' });
    const refused = await browser.postJson(`${base}/passkey/verify`, { response: authenticator({ userVerification: false }).createCredential(refusedOpts.json().options), name: 'My phone' });
    expect(refused.statusCode).toBe(400);
    const opts = await browser.postJson(`${base}/passkey/options`, { name: 'My phone', placement: 'another-device' });
    expect(opts.statusCode).toBe(200);
    const auth = authenticator();
    const done = await browser.postJson(`${base}/passkey/verify`, { response: auth.createCredential(opts.json().options), name: 'My phone' });
    expect(done.json()).toEqual({ status: 'ok', redirect: `${base}/done?added=passkey` });
    const metrics = await t.app.latchkey.metrics.text();
    expect(metrics).toContain('latchkey_ceremonies_total{flow="self_service",method="passkey",outcome="success"} 1\n');
    expect(metrics).toContain('latchkey_ceremonies_total{flow="self_service",method="passkey",outcome="user_verification"} 1\n');
    expect((await browser.get(`${base}/done?added=passkey`)).body).toContain('Your passkey has been added to your profile');
    expect((await store().users.findById(user.id))!.status).toBe('enrolled');
    expect((await store().authenticators.listForUser(user.id)).map((a) => a.name)).toEqual(['My phone']);
    const notice = await sink.waitFor((m) => m.subject.startsWith('An authenticator was added'));
    expect(notice.text).toContain('A passkey was added');
    // The attempt is used up.
    expect((await browser.get(`${base}/choose`)).statusCode).toBe(410);
  });

  it("answers an app's page reached before the one before it is done with the same start-again page", async () => {
    await person();
    const { browser, base } = await verified();
    for (const path of ['/app/password', '/app/setup']) {
      const early = await browser.get(`${base}${path}`);
      expect(early.statusCode).toBe(410);
      expect(early.body).toContain('These steps must be done in order. Start again.');
    }
    await browser.postForm(`${base}/app`, { confirm: 'yes' });
    expect((await browser.get(`${base}/app/password`)).statusCode).toBe(200);
    expect((await browser.get(`${base}/app/setup`)).statusCode).toBe(410);
  });

  it('adds an authenticator app with a password, then signs in with both; codes work once', async () => {
    const user = await person();
    const { browser, base } = await verified();
    await browser.postForm(`${base}/choose`, { type: 'app' });
    const unticked = await browser.postForm(`${base}/app`, {});
    expect(unticked.statusCode).toBe(400);
    expect(unticked.body).toContain('Select the box to confirm only you have access');
    expect((await browser.postForm(`${base}/app`, { confirm: 'yes' })).headers.location).toBe(`${base}/app/password`);
    const common = await browser.postForm(`${base}/app/password`, { password: 'password1', confirmPassword: 'password1' });
    expect(common.statusCode).toBe(400);
    expect(common.body).toContain('This password is too common');
    expect((await browser.postForm(`${base}/app/password`, { password: 'short', confirmPassword: 'short' })).body).toContain('at least 8 characters');
    expect((await browser.postForm(`${base}/app/password`, { password: 'correct horse battery', confirmPassword: 'correct horse batery' })).body).toContain('do not match');
    expect((await browser.postForm(`${base}/app/password`, { password: 'correct horse battery', confirmPassword: 'correct horse battery' })).headers.location).toBe(`${base}/app/setup`);

    const setup = await browser.get(`${base}/app/setup`);
    expect(setup.body).toContain('data:image/svg+xml;base64,');
    const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(setup.body)![1]!.replace(/ /g, '');
    const app = new TOTP({ issuer: 'Care Identity', label: user.email, secret: Secret.fromBase32(secret) });
    expect((await browser.postForm(`${base}/app/verify`, { code: '123' })).statusCode).toBe(400);
    const added = await browser.postForm(`${base}/app/verify`, { code: app.generate({ timestamp: clock }) });
    expect(added.headers.location).toBe(`${base}/done?added=app`);
    const rows = await t.db.kysely.selectFrom('authenticators').selectAll().where('user_id', '=', user.id).execute();
    expect(rows.map((r) => r.type)).toEqual(['totp']);
    // Encrypted at rest: neither the secret nor the password is in the database.
    const dump = JSON.stringify([rows, await t.db.kysely.selectFrom('users').selectAll().execute(), await t.db.kysely.selectFrom('flows').selectAll().execute()]);
    expect(dump).not.toContain(secret);
    expect(dump).not.toContain('correct horse battery');
    expect((await store().users.findById(user.id))!.password_hash).toMatch(/^\$argon2id\$/);

    // Sign in: the code just used to set the app up does not work again; the next one does, once.
    const signin = new TestBrowser(t.app);
    await signin.get('/signin');
    const reused = await signin.postForm('/signin/password', { email: user.email, password: 'correct horse battery', code: app.generate({ timestamp: clock }) });
    expect(reused.statusCode).toBe(400);
    expect(reused.body).toContain('The email address, password or code is not right');
    clock += 30_000;
    const next = app.generate({ timestamp: clock });
    const wrongPassword = await signin.postForm('/signin/password', { email: user.email, password: 'wrong horse battery', code: next });
    expect(wrongPassword.body).toContain('The email address, password or code is not right');
    const unknown = await signin.postForm('/signin/password', { email: 'nobody@example.org', password: 'correct horse battery', code: next });
    expect(unknown.body).toContain('The email address, password or code is not right');
    // A client that asks for JSON gets the same answers as JSON.
    const json = await signin.postJson('/signin/password', { email: user.email, password: 'wrong horse battery', code: next });
    expect(json.statusCode).toBe(400);
    expect(json.json().error).toMatchObject({ code: 'signin_failed', message: expect.stringContaining('password or code is not right') });
    const missing = await signin.postJson('/signin/password', { email: user.email });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.code).toBe('validation_failed');
    expect(missing.json().error.fields.map((f: { field: string }) => f.field)).toEqual(['password', 'code']);
    const ok = await signin.postForm('/signin/password', { email: user.email, password: 'correct horse battery', code: next });
    expect(ok.statusCode).toBe(303);
    // Signed in; with no passkey yet, offered one on the way to settings (src/flows/passkeyUpgrade).
    expect(ok.headers.location).toBe('/passkey-upgrade?next=%2Fsettings');
    expect((await signin.get('/settings')).statusCode).toBe(200);
    // The success reset the two failures before it.
    expect((await store().users.findById(user.id))!.failed_signins).toBe(0);
    const elsewhere = new TestBrowser(t.app);
    await elsewhere.get('/signin');
    const again = await elsewhere.postForm('/signin/password', { email: user.email, password: 'correct horse battery', code: next });
    expect(again.statusCode).toBe(400);
    expect(again.body).toContain('The email address, password or code is not right');
    expect((await store().users.findById(user.id))!.failed_signins).toBe(1);
  });

  it('settings: an app user changes the password after a password + code check, adds a passkey, and removes the app but never the last method', async () => {
    const user = await person();
    const { browser, base } = await verified();
    await browser.postForm(`${base}/choose`, { type: 'app' });
    await browser.postForm(`${base}/app`, { confirm: 'yes' });
    await browser.postForm(`${base}/app/password`, { password: 'correct horse battery', confirmPassword: 'correct horse battery' });
    const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec((await browser.get(`${base}/app/setup`)).body)![1]!.replace(/ /g, '');
    const app = new TOTP({ secret: Secret.fromBase32(secret) });
    await browser.postForm(`${base}/app/verify`, { code: app.generate({ timestamp: clock }) });
    clock += 30_000;
    const me = new TestBrowser(t.app);
    await me.get('/signin');
    expect((await me.postForm('/signin/password', { email: user.email, password: 'correct horse battery', code: app.generate({ timestamp: clock }) })).statusCode).toBe(303);
    const settings = await me.get('/settings');
    expect(settings.body).toContain('Authenticator app');
    expect(settings.body).toContain('Change your password');
    const [appRow] = (await store().authenticators.listForUser(user.id)).filter((a) => a.type === 'totp');

    // The only way to sign in can't be removed.
    const only = await me.postForm(`/settings/authenticators/${appRow!.id}/remove`, { confirm: 'yes' });
    expect(only.statusCode).toBe(409);
    expect(only.body).toContain('You cannot remove your only way to sign in');

    // Five minutes later a change needs a fresh check: password + a new code.
    clock += 6 * 60_000;
    const stale = await me.get('/settings/password');
    expect(stale.statusCode).toBe(303);
    expect(stale.headers.location).toBe('/settings/reauth?next=%2Fsettings%2Fpassword');
    const reauthPage = await me.get('/settings/reauth?next=/settings/password');
    expect(reauthPage.body).toContain('Use your password and authenticator app');
    expect(reauthPage.body).not.toContain('Continue with a passkey');
    expect((await me.postForm('/reauth/password?next=/settings/password', { password: 'wrong password here', code: app.generate({ timestamp: clock }) })).statusCode).toBe(400);
    const jsonReauth = await me.postJson('/reauth/password?next=/settings/password', { password: 'wrong password here', code: app.generate({ timestamp: clock }) });
    expect(jsonReauth.statusCode).toBe(400);
    expect(jsonReauth.json().error.code).toBe('signin_failed');
    const checked = await me.postForm('/reauth/password?next=/settings/password', { password: 'correct horse battery', code: app.generate({ timestamp: clock }) });
    expect(checked.headers.location).toBe('/settings/password');
    expect((await me.postForm('/settings/password', { password: 'password', confirmPassword: 'password' })).statusCode).toBe(400);
    expect((await me.postForm('/settings/password', { password: 'a much longer secret', confirmPassword: 'a much longer secret' })).headers.location).toBe('/settings?password=1');

    // Add a passkey from settings: straight to the choice of authenticator, no identity check again.
    const add = await me.postForm('/settings/add-authenticator', {});
    const choose = add.headers.location as string;
    expect(choose).toMatch(/^\/add-authenticator\/[A-Za-z0-9_-]+\/choose$/);
    const flowBase = choose.replace(/\/choose$/, '');
    const opts = await me.postJson(`${flowBase}/passkey/options`, { name: 'Laptop', placement: 'this-device' });
    expect((await me.postJson(`${flowBase}/passkey/verify`, { response: authenticator().createCredential(opts.json().options), name: 'Laptop' })).statusCode).toBe(200);

    // Now the app can go, and the password with it, once the box is ticked.
    const unticked = await me.postForm(`/settings/authenticators/${appRow!.id}/remove`, {});
    expect(unticked.statusCode).toBe(400);
    expectConfirmError(unticked.body, 'Select the box to confirm you want to remove it');
    const removed = await me.postForm(`/settings/authenticators/${appRow!.id}/remove`, { confirm: 'yes' });
    expect(removed.headers.location).toBe('/settings?unlinked=1');
    expect((await store().authenticators.listForUser(user.id)).map((a) => a.type)).toEqual(['passkey']);
    expect((await store().users.findById(user.id))!.password_hash).toBeNull();
    // The session signed in with the app ended with it.
    expect((await me.get('/settings')).statusCode).toBe(302);
  });

  describe('recovery: adding an authenticator through the identity check to a profile that has one', () => {
    /** Nell, signed up with a passkey in her own browser (a session), with her National Insurance number on her profile. */
    async function enrolledPerson() {
      const phone = authenticator();
      const own = await signUp(t.app, phone, 'nell@example.org', 'Nell Gwyn');
      const user = (await store().users.findByEmail('nell@example.org'))!;
      await store().users.setNationalIdHash(user.id, hashNationalId(t.app.latchkey.secret, NINO), clock);
      return { own, user, phone };
    }

    async function addPasskeyThroughCheck() {
      const { browser, base } = await verified();
      const opts = await browser.postJson(`${base}/passkey/options`, { name: 'New phone', placement: 'this-device' });
      const done = await browser.postJson(`${base}/passkey/verify`, { response: authenticator().createCredential(opts.json().options), name: 'New phone' });
      expect(done.statusCode).toBe(200);
      return { browser, base };
    }

    it('emails every address on the profile how and when, ends no session, and is in the activity list and the audit log', async () => {
      const { own, user } = await enrolledPerson();
      clock += 60_000;
      await addPasskeyThroughCheck();
      const added = (await store().authenticators.listForUser(user.id)).find((a) => a.name === 'New phone')!;

      // The profile's email is the only address it keeps (a linked work account keeps none).
      expect(sink.messages.map((m) => [m.to, m.subject])).toEqual([[['nell@example.org'], 'An authenticator was added to your Care Identity profile']]);
      expect(sink.messages[0]!.text).toBe(`Hello Nell Gwyn,

A passkey was added to your Care Identity profile at 2026-11-22 09:01 UTC, through the identity check: someone entered your email address and National Insurance number, and the code we emailed to nell@example.org. None of your existing passkeys or other ways to sign in was used.

We are sending this to every email address on your profile. Nobody has been signed out: your sessions carry on as before.

If this was you, you do not need to do anything.

If this was not you:
1. Sign in with your own passkey or another way you have (if you cannot, go to step 3): http://localhost:3000/signin
2. In Login and security settings (http://localhost:3000/settings), remove the passkey you do not recognise, and under "Where you are signed in" sign out every session you do not recognise.
3. Contact your registration authority straight away: someone may know your National Insurance number and be able to read your email.`);

      // Her own session carries on, and her recent activity says what happened.
      const settings = await own.get('/settings');
      expect(settings.statusCode).toBe(200);
      expect(settings.body).toMatch(/<tr data-event="recovery\.authenticator_added"><td data-label="When">2026-11-22 09:01 UTC<\/td><td data-label="What">Authenticator added by recovery \(identity check\)<\/td>/);

      const [record] = (await store().audit.listForSubject(user.id, 50)).filter((e) => e.event === 'recovery.authenticator_added');
      expect(record).toMatchObject({ outcome: 'success', actor_user_id: user.id, subject_user_id: user.id, authenticator_id: added.id });
      expect(JSON.parse(record!.detail)).toEqual({ what: 'passkey', via: 'identity_check' });

      // The console's audit log shows it in words, and can be filtered to it.
      const auditor = await signUp(t.app, authenticator(), 'audrey@example.org', 'Audrey Auditor');
      await store().roles.set((await store().users.findByEmail('audrey@example.org'))!.id, ['auditor'], null, clock);
      const log = (await auditor.get('/admin/audit?event=recovery.authenticator_added')).body;
      expect([...log.matchAll(/<tr data-event="([^"]+)">/g)].map((m) => m[1])).toEqual(['recovery.authenticator_added']);
      expect(log).toContain('Authenticator added by recovery (identity check)');
      expect(log).toContain('<option value="recovery.authenticator_added"');
    });

    it('says where the registration authority is when LATCHKEY_RA_CONTACT_URL is set', async () => {
      await t.close();
      t = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'Care Identity', LATCHKEY_RA_CONTACT_URL: 'https://ra.example.org/contact' }, { now: () => clock });
      await enrolledPerson();
      await addPasskeyThroughCheck();
      expect(sink.messages).toHaveLength(1);
      expect(sink.messages[0]!.text).toContain('3. Contact your registration authority straight away (https://ra.example.org/contact): someone may know');
    });

    it('adding from settings (signed in, confirmed it is them) is not a recovery; nor is a first authenticator', async () => {
      const { own, user } = await enrolledPerson();
      const choose = (await own.postForm('/settings/add-authenticator', {})).headers.location as string;
      const flowBase = choose.replace(/\/choose$/, '');
      const opts = await own.postJson(`${flowBase}/passkey/options`, { name: 'Laptop', placement: 'this-device' });
      expect((await own.postJson(`${flowBase}/passkey/verify`, { response: authenticator().createCredential(opts.json().options), name: 'Laptop' })).statusCode).toBe(200);
      expect(sink.messages).toHaveLength(1);
      expect(sink.messages[0]!.text).toContain('A passkey was added to your Care Identity profile at');
      expect(sink.messages[0]!.text).not.toContain('identity check');
      const events = (await store().audit.listForSubject(user.id, 50)).map((e) => e.event);
      expect(events).toContain('self_service.added');
      expect(events).not.toContain('recovery.authenticator_added');

      // Someone with no authenticator yet sets up their first: nothing was there to use.
      sink.clear();
      const newcomer = await person('kit@example.org');
      const { browser, base } = await verified('kit@example.org');
      const first = await browser.postJson(`${base}/passkey/options`, { name: 'Phone', placement: 'this-device' });
      expect((await browser.postJson(`${base}/passkey/verify`, { response: authenticator().createCredential(first.json().options), name: 'Phone' })).statusCode).toBe(200);
      expect((await sink.waitFor((m) => m.to.includes('kit@example.org'))).text).not.toContain('identity check');
      expect((await store().audit.listForSubject(newcomer.id, 50)).map((e) => e.event)).not.toContain('recovery.authenticator_added');
    });
  });

  it('throttles consecutive failed sign-ins with growing delays and locks at 100', async () => {
    const user = await person();
    await store().users.setPasswordHash(user.id, '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$ZmFrZWhhc2g', clock);
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const attempt = () => browser.postForm('/signin/password', { email: user.email, password: 'not it at all', code: '123456' });
    for (let i = 0; i < 5; i++) expect((await attempt()).statusCode).toBe(400);
    const waiting = await attempt();
    expect(waiting.statusCode).toBe(429);
    expect(waiting.body).toContain('Wait 1 second');
    clock += 1000;
    expect((await attempt()).statusCode).toBe(400);
    expect((await attempt()).body).toContain('Wait 2 seconds');
    await t.db.kysely.updateTable('users').set({ failed_signins: 100 }).where('id', '=', user.id).execute();
    clock += 3600_000;
    const locked = await attempt();
    expect(locked.statusCode).toBe(403);
    expect(locked.body).toContain('locked');
  });
});
