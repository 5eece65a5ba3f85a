import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { createUser } from '../../users/createUser.js';
import { issueInvite } from './invites.js';

describe('invite (enrolment) links', () => {
  let t: TestApp;
  let clock: number;
  beforeEach(async () => {
    clock = Date.UTC(2026, 10, 22, 9);
    t = await createTestApp({ LATCHKEY_INVITE_HOURS: '72' }, { now: () => clock });
  });
  afterEach(async () => t.close());

  async function invite(email = 'mary@example.com') {
    const store = t.app.latchkey.store;
    const user = await createUser(store, { email, displayName: 'Mary Seacole' }, clock);
    const { url } = await issueInvite(store, t.config, user, clock);
    return { user, path: new URL(url).pathname, token: url.split('/').pop()! };
  }

  async function enrol(browser: TestBrowser, path: string, auth = authenticator()) {
    await browser.get(path);
    const opts = await browser.postJson(`${path}/options`, { name: 'My iPhone', placement: 'another-device' });
    expect(opts.statusCode).toBe(200);
    return browser.postJson(`${path}/verify`, { response: auth.createCredential(opts.json().options), name: 'My iPhone' });
  }

  it('stores only the hash of the link token', async () => {
    const { token } = await invite();
    const rows = await t.db.kysely.selectFrom('flows').selectAll().where('type', '=', 'invite').execute();
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(token);
  });

  it('shows instructions for this device, a phone via QR code and a security key', async () => {
    const { path } = await invite();
    const page = await new TestBrowser(t.app).get(path);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Mary Seacole');
    for (const text of ['This device', 'Another phone or tablet', 'QR code', 'Security key', 'Bluetooth']) expect(page.body).toContain(text);
    expect(page.headers['cache-control']).toBe('no-store');
  });

  it('survives a failed attempt and is consumed by the successful registration', async () => {
    const { user, path } = await invite();
    const browser = new TestBrowser(t.app);
    await browser.get(path);
    // First attempt: options fetched, then the person cancels (no verify). Second attempt: a bad response.
    await browser.postJson(`${path}/options`, { name: 'Phone', placement: 'this-device' });
    const badOpts = (await browser.postJson(`${path}/options`, { name: 'Phone', placement: 'this-device' })).json().options;
    const bad = await browser.postJson(`${path}/verify`, { response: authenticator({ userVerification: false }).createCredential(badOpts) });
    expect(bad.statusCode).toBe(400);
    expect((await browser.get(path)).statusCode).toBe(200);
    expect((await t.app.latchkey.store.users.findById(user.id))?.status).toBe('pending');

    const ok = await enrol(browser, path);
    expect(ok.statusCode).toBe(200);
    expect(ok.json().redirect).toBe('/enrol/done');
    expect((await t.app.latchkey.store.users.findById(user.id))?.status).toBe('enrolled');
    const [passkey] = await t.app.latchkey.store.authenticators.listForUser(user.id);
    expect(passkey?.name).toBe('My iPhone');
    expect((await browser.get('/settings?enrolled=1')).body).toContain('Your passkey has been set up');

    const reused = await new TestBrowser(t.app).get(path);
    expect(reused.statusCode).toBe(410);
    expect(reused.body).toContain('already been used');
    const other = new TestBrowser(t.app);
    await other.get('/signin');
    const reusedApi = await other.postJson(`${path}/options`, { placement: 'this-device' });
    expect(reusedApi.json().error.code).toBe('invite_used');
  });

  it('works for someone who already has an authenticator app and a linked account: only passkeys are excluded', async () => {
    const { user, path } = await invite();
    const store = t.app.latchkey.store;
    const other = { user_id: user.id, public_key: 'sealed', counter: 0, transports: '[]', aaguid: '00000000-0000-0000-0000-000000000000', backup_eligible: 0, backed_up: 0, attestation_format: 'none', created_at: clock, last_used_at: null };
    await store.authenticators.insert({ ...other, id: 'app1', type: 'totp', credential_id: 'totp:app1', name: 'Authenticator app' });
    await store.authenticators.insert({ ...other, id: 'acct1', type: 'linked-account', credential_id: 'https://idp.example#subject-1', name: 'Work account' });
    const browser = new TestBrowser(t.app);
    await browser.get(path);
    const opts = await browser.postJson(`${path}/options`, { name: 'Phone', placement: 'this-device' });
    expect(opts.statusCode).toBe(200);
    expect(opts.json().options.excludeCredentials).toEqual([]);
    expect((await enrol(browser, path)).statusCode).toBe(200);
  });

  it('answers a code form posted as JSON with a JSON error', async () => {
    const browser = new TestBrowser(t.app);
    await browser.get('/enrol');
    const res = await browser.postJson('/enrol', {});
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('validation_failed');
    expect(res.json().error.fields.map((f: { field: string }) => f.field)).toEqual(['email', 'code']);
  });

  it('answers an expired link with 410 and what to do next', async () => {
    const { path } = await invite();
    clock += 73 * 3600 * 1000;
    const page = await new TestBrowser(t.app).get(path);
    expect(page.statusCode).toBe(410);
    expect(page.body).toContain('This link has expired');
    expect(page.body).toContain('for a new one');
  });

  it('keeps one live link per person: a new link or an enrolment revokes the others', async () => {
    const { user, path: first } = await invite();
    const second = new URL((await issueInvite(t.app.latchkey.store, t.config, user, clock)).url).pathname;
    const revoked = await new TestBrowser(t.app).get(first);
    expect(revoked.statusCode).toBe(410);
    expect(revoked.body).toContain('no longer valid');
    const third = new URL((await issueInvite(t.app.latchkey.store, t.config, user, clock)).url).pathname;
    // Enrol with the newest; the second was revoked when the third was issued.
    expect((await enrol(new TestBrowser(t.app), third)).statusCode).toBe(200);
    for (const p of [first, second]) expect((await new TestBrowser(t.app).get(p)).statusCode).toBe(410);
  });

  it('answers an unknown or malformed link with 404', async () => {
    const browser = new TestBrowser(t.app);
    expect((await browser.get('/enrol/' + 'A'.repeat(43))).statusCode).toBe(404);
    expect((await browser.get('/enrol/short')).statusCode).toBe(404);
    const json = await browser.get('/enrol/short', 'application/json');
    expect(json.json().error.code).toBe('invite_invalid');
  });

  it('lets exactly one of two concurrent registrations consume the link', async () => {
    const { user, path } = await invite();
    const a = new TestBrowser(t.app);
    const b = new TestBrowser(t.app);
    await a.get(path);
    await b.get(path);
    const oa = (await a.postJson(`${path}/options`, { placement: 'this-device' })).json().options;
    const ob = (await b.postJson(`${path}/options`, { placement: 'security-key' })).json().options;
    const results = await Promise.all([
      a.postJson(`${path}/verify`, { response: authenticator().createCredential(oa) }),
      b.postJson(`${path}/verify`, { response: authenticator().createCredential(ob) }),
    ]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 410]);
    expect(await t.app.latchkey.store.authenticators.countForUser(user.id)).toBe(1);
  });
});
