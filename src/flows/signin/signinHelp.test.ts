/**
 * "Can't use your passkey?" (/signin/help) over HTTP: it lists exactly the ways back this deployment allows, keeps
 * the service's `next` and the email hint in the links that sign in, and tells nobody anything about an account.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { defaultKinds } from '../../strategies/defaultKinds.js';
import { TOTP_TYPE } from '../../strategies/totp/kind.js';

const UPSTREAM = {
  LATCHKEY_UPSTREAM_PROVIDERS: 'nhsnet',
  LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'https://login.nhs.example.org',
  LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID: 'latchkey',
  LATCHKEY_UPSTREAM_NHSNET_NAME: 'NHS.net Connect',
};

/** The page's sections, by data-way, in order. */
const ways = (html: string) => [...html.matchAll(/<section aria-labelledby="[^"]+" data-way="([^"]+)">/g)].map((m) => m[1]);
const section = (html: string, way: string) => new RegExp(`data-way="${way}">([\\s\\S]*?)</section>`).exec(html)?.[1] ?? '';

describe("Can't use your passkey?", () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  async function helpPage(env: Record<string, string> = {}, url = '/signin/help', options = {}) {
    t = await createTestApp(env, options);
    const res = await new TestBrowser(t.app).get(url);
    expect(res.statusCode).toBe(200);
    return res.body;
  }

  it('is linked from /signin, with the service it came for and the email hint', async () => {
    t = await createTestApp();
    const signin = (await new TestBrowser(t.app).get('/signin?next=/interaction/abc&email=ada@example.com')).body;
    expect(signin).toContain(`<a href="/signin/help?next=%2Finteraction%2Fabc&amp;email=ada%40example.com">Can't use your passkey?</a>`);
  });

  it('explains another device in the same steps as /signin', async () => {
    t = await createTestApp();
    const browser = new TestBrowser(t.app);
    const steps = (html: string) => /<ol class="steps">[\s\S]*?<\/ol>\s*<p>[^<]*<\/p>/.exec(html)?.[0];
    const onSignIn = steps((await browser.get('/signin')).body);
    expect(onSignIn).toContain('<li>Scan the QR code using the device that has your passkey. Bluetooth must be on.</li>');
    expect(onSignIn).toContain('Passkey AutoFill');
    expect(steps(section((await browser.get('/signin/help')).body, 'another-device'))).toBe(onSignIn);
  });

  it('without options: another device, password and app, self-service, and the registration authority in words', async () => {
    const page = await helpPage();
    expect(page).toContain("<h1>Can't use your passkey?</h1>");
    expect(page).toContain('<a href="/signin" class="back-link">Back</a>');
    expect(ways(page)).toEqual(['another-device', 'password-and-app', 'self-service', 'registration-authority']);
    expect(section(page, 'another-device')).toContain('Scan the QR code using the device that has your passkey. Bluetooth must be on.');
    expect(section(page, 'another-device')).toContain('<a class="button secondary" href="/signin#email">Sign in with your email address</a>');
    expect(section(page, 'password-and-app')).toContain('<a href="/signin/password">Sign in with a password and authenticator app</a>');
    expect(section(page, 'self-service')).toContain('If your National Insurance number is on your profile');
    expect(section(page, 'self-service')).toContain('<a href="/add-authenticator">Add an authenticator to your profile</a>');
    expect(section(page, 'registration-authority')).toContain('Contact your organisation’s registration authority or IT service desk.');
    expect(section(page, 'registration-authority')).not.toContain('<a ');
  });

  it('with a work account provider, LATCHKEY_RA_CONTACT_URL and another identifier: each is there, with next and email kept', async () => {
    const page = await helpPage(
      { ...UPSTREAM, LATCHKEY_RA_CONTACT_URL: 'https://ra.example.org/contact', LATCHKEY_NATIONAL_ID_LABEL: 'staff number', LATCHKEY_NATIONAL_ID_PATTERN: '[0-9]{6}' },
      '/signin/help?next=/interaction/abc&email=ada@example.com',
    );
    expect(ways(page)).toEqual(['another-device', 'password-and-app', 'linked-account', 'self-service', 'registration-authority']);
    expect(page).toContain('<a href="/signin?next=%2Finteraction%2Fabc&amp;email=ada%40example.com" class="back-link">Back</a>');
    expect(section(page, 'another-device')).toContain('href="/signin?next=%2Finteraction%2Fabc&amp;email=ada%40example.com#email"');
    expect(section(page, 'password-and-app')).toContain('<a href="/signin/password?next=%2Finteraction%2Fabc&amp;email=ada%40example.com">');
    expect(section(page, 'linked-account')).toContain('<a href="/signin/linked/nhsnet?next=%2Finteraction%2Fabc">Sign in with NHS.net Connect</a>');
    expect(section(page, 'self-service')).toContain('If your staff number is on your profile');
    expect(section(page, 'registration-authority')).toContain('Contact <a href="https://ra.example.org/contact">your registration authority</a>.');
  });

  it('a password alone, only when LATCHKEY_PASSWORD_SIGNIN=alone', async () => {
    const page = await helpPage({}, '/signin/help', {});
    expect(ways(page)).not.toContain('password');
    await t!.close();
    t = await createTestApp({ LATCHKEY_PASSWORD_SIGNIN: 'alone' });
    const alone = (await new TestBrowser(t.app).get('/signin/help?email=ada@example.com')).body;
    expect(ways(alone)).toEqual(['another-device', 'password', 'password-and-app', 'self-service', 'registration-authority']);
    expect(section(alone, 'password')).toContain('<a href="/signin/password?email=ada%40example.com">Sign in with your password</a>');
  });

  it('no password-and-app way when the authenticator-app kind is not registered', async () => {
    const page = await helpPage({}, '/signin/help', { kinds: defaultKinds.filter((k) => k.type !== TOTP_TYPE) });
    expect(ways(page)).toEqual(['another-device', 'self-service', 'registration-authority']);
  });

  it('keeps only a local next, and refuses an over-long query with a 400, not a 500', async () => {
    const page = await helpPage({}, '/signin/help?next=//evil.example/&email=a@b.example');
    expect(page).not.toContain('evil.example');
    expect(page).toContain('href="/signin?email=a%40b.example"');
    const long = await new TestBrowser(t!.app).get(`/signin/help?email=${'a'.repeat(300)}`);
    expect(long.statusCode).toBe(400);
  });
});
