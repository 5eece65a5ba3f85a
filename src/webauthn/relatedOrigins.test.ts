import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TEST_ORIGIN, TestBrowser, testConfig, type TestApp } from '../../test/support/app.js';
import { testDatabases } from '../../test/support/databases.js';
import { ConfigError, loadConfig } from '../config/index.js';
import { doctorReport } from '../oidc/doctor.js';
import { allowedOrigins } from './allowedOrigins.js';
import { registrableLabel, relatedOriginsReport } from './relatedOriginsCheck.js';
import { checkClientDataFraming } from './responseChecks.js';

const UK = 'https://login.example.co.uk';
const NET = 'https://id.example-health.net';
const FOREIGN = 'https://evil.example.org';
const RELATED = { LATCHKEY_RELATED_ORIGINS: `${UK}, ${NET}` };

describe('LATCHKEY_RELATED_ORIGINS', () => {
  const base = { LATCHKEY_ORIGIN: 'https://login.example.org', DATABASE_URL: 'sqlite::memory:', LATCHKEY_SECRET_KEY: 'dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktMzJieXQ' };
  const refusal = (value: string) => {
    try {
      loadConfig({ ...base, LATCHKEY_RELATED_ORIGINS: value });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('LATCHKEY_RELATED_ORIGINS');
      return (err as Error).message;
    }
    throw new Error(`"${value}" was accepted`);
  };

  it('defaults to none, and reads a comma-separated list of origins in order', () => {
    expect(loadConfig(base).relatedOrigins).toEqual([]);
    expect(loadConfig({ ...base, LATCHKEY_RELATED_ORIGINS: ' https://A.example.co.uk ,https://b.example.net:8443,http://localhost:4000' }).relatedOrigins).toEqual([
      'https://a.example.co.uk',
      'https://b.example.net:8443',
      'http://localhost:4000',
    ]);
  });

  it('refuses what is not an https origin, duplicates and the service itself, naming the option', () => {
    expect(refusal('http://login.example.net')).toMatch(/^LATCHKEY_RELATED_ORIGINS: must start with https:\/\//);
    expect(refusal('login.example.net')).toMatch(/not a URL/);
    for (const notOrigin of ['https://login.example.net/path', 'https://login.example.net/', 'https://login.example.net?x=1', 'https://login.example.net#f', 'https://u:p@login.example.net']) {
      expect(refusal(notOrigin)).toMatch(/must be an origin/);
    }
    expect(refusal('https://a.example.net,https://A.example.net')).toMatch(/"https:\/\/A.example.net" is listed twice/);
    expect(refusal('https://login.example.org')).toMatch(/is LATCHKEY_ORIGIN itself/);
    expect(refusal('https://a.example.net,,https://b.example.net')).toMatch(/not a URL/);
  });

  it('puts the allowed origins in one list: the service first, then the related ones', () => {
    const config = loadConfig({ ...base, ...RELATED });
    expect(allowedOrigins(config).list).toEqual(['https://login.example.org', UK, NET]);
    expect(allowedOrigins(config).set.has(NET)).toBe(true);
    expect(allowedOrigins(config).set.has(FOREIGN)).toBe(false);
  });
});

describe('clientData framing with related origins', () => {
  it('still refuses a ceremony framed by any page, a related one included, and names a foreign one', () => {
    const set = allowedOrigins(testConfig(RELATED)).set;
    expect(checkClientDataFraming({ origin: UK, crossOrigin: false }, set)).toBeUndefined();
    expect(checkClientDataFraming({ origin: UK, crossOrigin: true, topOrigin: NET }, set)).toMatch(/crossOrigin is true/);
    expect(checkClientDataFraming({ origin: UK, topOrigin: NET }, set)).toBe('clientDataJSON.topOrigin is set, but the ceremony is not cross-origin');
    expect(checkClientDataFraming({ origin: UK, topOrigin: FOREIGN }, set)).toMatch(/topOrigin "https:\/\/evil.example.org" is not this relying party's origin/);
  });
});

describe('GET /.well-known/webauthn', () => {
  let t: TestApp;
  afterEach(async () => t.close());

  it('lists the service first, then the related origins, as JSON', async () => {
    t = await createTestApp(RELATED);
    const res = await t.app.inject({ method: 'GET', url: '/.well-known/webauthn' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ origins: [TEST_ORIGIN, UK, NET] });
  });

  it('is not found when no related origins are configured', async () => {
    t = await createTestApp();
    const res = await t.app.inject({ method: 'GET', url: '/.well-known/webauthn', headers: { accept: 'application/json' } });
    expect(res.statusCode).toBe(404);
  });
});

const databases = await testDatabases();

describe.each(databases)('ceremonies from related origins on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());
    let t: TestApp;
    afterEach(async () => t?.close());

    async function signInFrom(auth: ReturnType<typeof authenticator>, origin: string) {
      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      const options = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
      const res = await browser.postJson('/signin/verify', { response: auth.getAssertion(options, { origin }) });
      return { res, browser };
    }

    it('registers a passkey from one related origin, signs in from another and from the service, and audits each origin', async () => {
      t = await createTestApp(RELATED, { db: await target.open() });
      const { store } = t.app.latchkey;
      const auth = authenticator({ origin: UK });
      const browser = await signUp(t.app, auth);
      expect((await browser.get('/settings')).statusCode).toBe(200);
      const added = await store.audit.listByEvent('passkey.added');
      expect(added).toHaveLength(1);
      expect(JSON.parse(added[0]!.detail)).toMatchObject({ origin: UK });

      expect((await signInFrom(auth, NET)).res.statusCode).toBe(200);
      expect((await signInFrom(auth, TEST_ORIGIN)).res.statusCode).toBe(200);
      const signins = await store.audit.listByEvent('signin');
      expect(signins.map((s) => JSON.parse(s.detail).origin)).toEqual([TEST_ORIGIN, NET]);

      // Reauth (the passkey check before changing settings) records its origin too.
      await browser.get('/settings/reauth');
      const options = (await browser.postJson('/reauth/options', {})).json().options;
      expect((await browser.postJson('/reauth/verify', { response: auth.getAssertion(options, { origin: NET }) })).statusCode).toBe(200);
      const reauths = await store.audit.listByEvent('reauth');
      expect(JSON.parse(reauths[0]!.detail)).toEqual({ origin: NET });
    });

    it('refuses a sign-in or a registration from an origin not in the list, and audits the failed sign-in', async () => {
      t = await createTestApp(RELATED, { db: await target.open() });
      const auth = authenticator();
      await signUp(t.app, auth);
      const { res } = await signInFrom(auth, FOREIGN);
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('ceremony_failed');
      expect(await t.app.latchkey.store.audit.listByEvent('signin')).toHaveLength(0);
      expect(await t.app.latchkey.store.audit.listByEvent('signin.failed')).toHaveLength(1);
      await expect(signUp(t.app, authenticator({ origin: FOREIGN }), 'grace@example.com', 'Grace Hopper')).rejects.toThrow(/signup verify: 400/);
    });

    it('without related origins, only the service origin is accepted and audit records carry no origin', async () => {
      t = await createTestApp({}, { db: await target.open() });
      const auth = authenticator();
      await signUp(t.app, auth);
      expect((await signInFrom(auth, UK)).res.statusCode).toBe(400);
      expect((await signInFrom(auth, TEST_ORIGIN)).res.statusCode).toBe(200);
      const [signin] = await t.app.latchkey.store.audit.listByEvent('signin');
      expect(JSON.parse(signin!.detail)).not.toHaveProperty('origin');
    });
  });
});

describe('doctor on related origins', () => {
  it('approximates the registrable label as the one before the public suffix', () => {
    expect(registrableLabel('login.example.co.uk')).toBe('example');
    expect(registrableLabel('login.example.org')).toBe('example');
    expect(registrableLabel('example.com.au')).toBe('example');
    expect(registrableLabel('id.co.example.io')).toBe('example');
    expect(registrableLabel('localhost')).toBe('localhost');
  });

  it('lists the origins with their labels, and says when there are none', () => {
    const none = relatedOriginsReport(testConfig());
    expect(none.lines.join('\n')).toMatch(/none: passkeys work on the origin itself only/);
    expect(none.warnings).toEqual([]);
    const some = relatedOriginsReport(testConfig(RELATED));
    const text = some.lines.join('\n');
    expect(text).toContain(`${TEST_ORIGIN}/.well-known/webauthn`);
    expect(text).toContain(`${UK}  label "example"`);
    expect(text).toContain(`${NET}  label "example-health"`);
    expect(text).toMatch(/labels +3 of the 5 browsers accept/);
    expect(some.warnings).toEqual([]);
  });

  it('warns about more than five labels and about a related origin that is not https', async () => {
    const many = ['a', 'b', 'c', 'd', 'e'].map((l) => `https://login.${l}-example.org`).join(',');
    const over = relatedOriginsReport(testConfig({ LATCHKEY_RELATED_ORIGINS: many }));
    expect(over.warnings).toHaveLength(1);
    expect(over.warnings[0]).toMatch(/spans 6 registrable domain labels \(localhost, a-example, b-example, c-example, d-example, e-example\)/);
    // Same labels on several hosts count once.
    expect(relatedOriginsReport(testConfig({ LATCHKEY_RELATED_ORIGINS: 'https://a.example.org,https://b.example.org,https://example.co.uk' })).warnings).toEqual([]);
    const http = relatedOriginsReport(testConfig({ LATCHKEY_RELATED_ORIGINS: 'http://127.0.0.1:4000' }));
    expect(http.warnings).toEqual(['related origin http://127.0.0.1:4000 is not https: browsers use related origins only over https; for local testing only']);

    // The doctor command carries both.
    const t = await createTestApp({ LATCHKEY_RELATED_ORIGINS: `${many},http://127.0.0.1:4000` });
    try {
      const report = await doctorReport(t.config, t.app.latchkey.store, Date.now());
      expect(report.text).toContain('WebAuthn related origins (LATCHKEY_RELATED_ORIGINS)');
      expect(report.warnings.some((w) => /spans 7 registrable domain labels/.test(w))).toBe(true);
      expect(report.warnings).toContain('related origin http://127.0.0.1:4000 is not https: browsers use related origins only over https; for local testing only');
    } finally {
      await t.close();
    }
  });
});
