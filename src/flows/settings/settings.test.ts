import { expectConfirmError } from '../../../test/support/pages.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { authenticator, createTestApp, insertApp, signUp, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { NO_PASSKEY_COLUMNS } from '../../strategies/authenticatorKind.js';
import type { SoftAuthenticator } from '../../../test/support/softAuthenticator.js';
import { startSmtpSink } from '../../../test/support/smtpSink.js';

const FAKE_HASH = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$ZmFrZWhhc2g';
/** An upstream provider (LATCHKEY_UPSTREAM_*), so a work account linked there signs the person in. */
const WORK_PROVIDER = {
  LATCHKEY_UPSTREAM_PROVIDERS: 'nhsnet',
  LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'https://login.nhs.example/tenant/v2.0',
  LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID: 'latchkey',
  LATCHKEY_UPSTREAM_NHSNET_NAME: 'NHS.net Connect',
};
/** The row "Set a password" writes (src/strategies/password/settingsRoutes.tsx). */
const passwordRow = (userId: string) => ({ id: 'password-1', user_id: userId, type: 'password', credential_id: `password:${userId}`, ...NO_PASSKEY_COLUMNS, config: '{}', name: 'Password', created_at: 0, last_used_at: null });
const workAccountRow = (userId: string, provider: string) => ({
  id: 'work-1',
  user_id: userId,
  type: 'linked-account',
  credential_id: 'https://login.example.org#ada',
  ...NO_PASSKEY_COLUMNS,
  config: JSON.stringify({ provider }),
  name: 'NHS.net Connect',
  created_at: 0,
  last_used_at: null,
});

describe('Login and security settings', () => {
  let t: TestApp;
  let clock: number;
  beforeEach(async () => {
    clock = Date.UTC(2026, 10, 22, 9);
    t = await createTestApp({}, { now: () => clock });
  });
  afterEach(async () => t.close());

  const minutes = (n: number) => n * 60 * 1000;

  async function addPasskey(browser: TestBrowser, auth: SoftAuthenticator, name: string, placement = 'security-key') {
    const opts = await browser.postJson('/settings/passkeys/options', { name, placement });
    if (opts.statusCode !== 200) return opts;
    return browser.postJson('/settings/passkeys/verify', { response: auth.createCredential(opts.json().options), placement });
  }

  async function reauth(browser: TestBrowser, auth: SoftAuthenticator) {
    const o = (await browser.postJson('/reauth/options', {})).json().options;
    return browser.postJson('/reauth/verify', { response: auth.getAssertion(o) });
  }

  it('adds a second passkey with hints for a security key, excluding existing credentials', async () => {
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    const opts = await browser.postJson('/settings/passkeys/options', { name: 'Blue YubiKey', placement: 'security-key' });
    const o = opts.json().options;
    expect(o.hints).toEqual(['security-key']);
    expect(o.authenticatorSelection.authenticatorAttachment).toBe('cross-platform');
    expect(o.excludeCredentials.map((c: { id: string }) => c.id)).toEqual([...phone.credentials.keys()]);
    const key = authenticator({ transports: ['usb'], aaguid: 'cb69481e-8ff7-4039-93ec-0a2729a154a8' });
    const res = await browser.postJson('/settings/passkeys/verify', { response: key.createCredential(o) });
    expect(res.statusCode).toBe(200);
    const page = (await browser.get('/settings?added=1')).body;
    expect(page).toContain('Blue YubiKey');
    expect(page).toContain('YubiKey 5 Series');
    expect(page).toContain('This device only');
    expect(page).toContain('Your passkey has been set up.');
  });

  it('emails the person when a passkey is added in settings (sign-up itself sends nothing)', async () => {
    const sink = await startSmtpSink();
    const mailed = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'St Elsewhere NHS Trust' }, { now: () => clock });
    try {
      const phone = authenticator();
      const browser = await signUp(mailed.app, phone, 'ada@example.com');
      expect(sink.messages).toEqual([]);
      expect((await addPasskey(browser, authenticator(), 'Blue YubiKey')).statusCode).toBe(200);
      const notice = await sink.waitFor((m) => m.to.includes('ada@example.com'));
      expect(notice.subject).toBe('An authenticator was added to your St Elsewhere NHS Trust profile');
      expect(notice.text).toContain('A passkey was added to your St Elsewhere NHS Trust profile at');
      expect(notice.text).toContain('It is named "Blue YubiKey". It was set up in your Login and security settings.');
      expect(sink.messages).toHaveLength(1);
    } finally {
      await mailed.close();
      await sink.close();
    }
  });

  it('refuses to register the same authenticator twice', async () => {
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    const o = (await browser.postJson('/settings/passkeys/options', { name: 'Again', placement: 'this-device' })).json().options;
    expect(() => phone.createCredential(o)).toThrow(/already registered/);
    // A client that ignores excludeCredentials and replays a registered credential id is refused too.
    const response = authenticator().createCredential(o);
    const existingId = [...phone.credentials.keys()][0]!;
    const replay = { ...response, id: existingId, rawId: existingId };
    const attestation = Buffer.from(response.response.attestationObject, 'base64url');
    const fresh = Buffer.from(response.id, 'base64url');
    attestation.set(Buffer.from(existingId, 'base64url'), attestation.indexOf(fresh));
    replay.response = { ...response.response, attestationObject: attestation.toString('base64url') };
    const res = await browser.postJson('/settings/passkeys/verify', { response: replay });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('credential_exists');
  });

  it('asks for a fresh passkey check to add a passkey after 5 minutes', async () => {
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    clock += minutes(6);
    const refused = await addPasskey(browser, authenticator(), 'Laptop');
    expect(refused.statusCode).toBe(401);
    expect(refused.json().error.code).toBe('reauth_required');
    expect((await reauth(browser, phone)).statusCode).toBe(200);
    expect((await addPasskey(browser, authenticator(), 'Laptop')).statusCode).toBe(200);
    expect(await t.app.latchkey.store.authenticators.countForUser((await t.app.latchkey.store.users.findByEmail('ada@example.com'))!.id)).toBe(2);
  });

  it('renames a passkey and signals the change', async () => {
    const browser = await signUp(t.app, authenticator());
    const id = /data-passkey-id="([^"]+)"/.exec((await browser.get('/settings')).body)![1]!;
    expect((await browser.get(`/settings/passkeys/${id}/rename`)).statusCode).toBe(200);
    const empty = await browser.postForm(`/settings/passkeys/${id}/rename`, { name: '   ' });
    expect(empty.statusCode).toBe(400);
    expect(empty.body).toContain('There is a problem');
    expect(empty.body).toContain('Enter a name for your passkey');
    const ok = await browser.postForm(`/settings/passkeys/${id}/rename`, { name: '  Work   laptop ' });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe('/settings?renamed=1&signal=1');
    const page = (await browser.get(ok.headers.location as string)).body;
    expect(page).toContain('Work laptop');
    expect(page).toContain('data-signal-credentials=');
    expect(page).toContain('id="signal-fallback"');
  });

  it('removes a passkey after the confirmation tick, and refuses the last one', async () => {
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    await addPasskey(browser, authenticator({ aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd' }), 'Spare key');
    const ids = [...(await browser.get('/settings')).body.matchAll(/data-passkey-id="([^"]+)"/g)].map((m) => m[1]!);
    expect(ids).toHaveLength(2);
    // Both passkeys were made at the same instant of the test clock, so the list's order between them is not fixed.
    const pages = await Promise.all(ids.map((id) => browser.get(`/settings/passkeys/${id}/remove`)));
    const spare = pages.findIndex((page) => page.body.includes('<strong>Spare key</strong>'));
    expect(spare).toBeGreaterThanOrEqual(0);
    if (spare === 0) ids.reverse();

    const confirmPage = pages[spare]!;
    expect(confirmPage.body).toContain('I want to remove this passkey');
    // One sentence, not broken around the provider's name.
    expect(confirmPage.body).toMatch(/<p><strong>Spare key<\/strong> is a passkey saved in iCloud Keychain, created \d{4}-\d\d-\d\d \d\d:\d\d UTC\.<\/p>/);
    const unticked = await browser.postForm(`/settings/passkeys/${ids[1]}/remove`, {});
    expect(unticked.statusCode).toBe(400);
    expectConfirmError(unticked.body, 'Select the box to confirm you want to remove this passkey');
    const removed = await browser.postForm(`/settings/passkeys/${ids[1]}/remove`, { confirm: 'yes' });
    expect(removed.statusCode).toBe(303);
    expect(removed.headers.location).toBe('/settings?removed=1&signal=1');

    const last = await browser.get(`/settings/passkeys/${ids[0]}/remove`);
    expect(last.body).toContain('This is your only passkey');
    expect(last.body).not.toContain('I want to remove this passkey');
    const refused = await browser.postForm(`/settings/passkeys/${ids[0]}/remove`, { confirm: 'yes' });
    expect(refused.statusCode).toBe(409);
    expect(refused.body).toContain('cannot remove your only passkey');
    const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
    expect(await t.app.latchkey.store.authenticators.countForUser(user.id)).toBe(1);
    const events = (await t.app.latchkey.store.audit.listForSubject(user.id, 50)).map((e) => e.event);
    expect(events).toContain('passkey.removed');
  });

  it('sends removal to a fresh passkey check after 5 minutes', async () => {
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    await addPasskey(browser, authenticator(), 'Spare key');
    const ids = [...(await browser.get('/settings')).body.matchAll(/data-passkey-id="([^"]+)"/g)].map((m) => m[1]!);
    clock += minutes(6);
    const page = await browser.get(`/settings/passkeys/${ids[1]}/remove`);
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe(`/settings/reauth?next=${encodeURIComponent(`/settings/passkeys/${ids[1]}/remove`)}`);
    const post = await browser.postForm(`/settings/passkeys/${ids[1]}/remove`, { confirm: 'yes' });
    expect(post.statusCode).toBe(303);
    expect(post.headers.location).toContain('/settings/reauth');
    expect((await browser.get('/settings/reauth?next=/settings')).statusCode).toBe(200);
    await reauth(browser, phone);
    expect((await browser.postForm(`/settings/passkeys/${ids[1]}/remove`, { confirm: 'yes' })).statusCode).toBe(303);
  });

  describe('one passkey and nothing else', () => {
    const ONLY = /<div class="warning" id="only-passkey" data-only-passkey="true">([\s\S]*?)<\/div>/;
    const text = (html: string) => ONLY.exec(html)?.[1]!.replace(/<\/(h3|p)>/g, ' ').replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim();

    it('warns what losing it means and offers another passkey; the warning goes once there is a second passkey', async () => {
      const phone = authenticator();
      const browser = await signUp(t.app, phone);
      const page = (await browser.get('/settings')).body;
      const name = /<strong class="passkey-name">([^<]+)<\/strong>/.exec(page)![1]!;
      expect(text(page)).toBe(
        `You have only one way to sign in If you lose your passkey ${name}, or the phone, computer or security key it is on, you will not be able to sign in. ` +
          'To get back in, you would have to ask your organisation’s registration authority or IT service desk to check who you are and give you a new passkey. ' +
          'Set up another passkey on a different device, such as your phone, or on a security key, so that you always have a second way in. Set up another passkey',
      );
      // Near the list, before the form it points to.
      expect(page.indexOf('data-only-passkey')).toBeGreaterThan(page.indexOf('data-passkey-id'));
      expect(page.indexOf('data-only-passkey')).toBeLessThan(page.indexOf('id="add-passkey"'));
      expect(ONLY.exec(page)![1]).toContain('<a class="button secondary" href="#add-passkey">Set up another passkey</a>');

      expect((await addPasskey(browser, authenticator({ transports: ['usb'], aaguid: 'cb69481e-8ff7-4039-93ec-0a2729a154a8' }), 'Blue YubiKey')).statusCode).toBe(200);
      const two = (await browser.get('/settings')).body;
      expect(two).toContain('Blue YubiKey');
      expect(two).not.toContain('data-only-passkey');
    });

    it('names the identity check when the person could use it, and the registration authority as configured', async () => {
      const ra = await createTestApp({ LATCHKEY_RA_CONTACT_URL: 'mailto:ra@example.org' }, { now: () => clock });
      try {
        const browser = await signUp(ra.app, authenticator());
        const user = (await ra.app.latchkey.store.users.findByEmail('ada@example.com'))!;
        expect(ONLY.exec((await browser.get('/settings')).body)![1]).toContain('ask <a href="mailto:ra@example.org">your registration authority</a> to check who you are');
        await ra.app.latchkey.store.users.setNationalIdHash(user.id, 'hmac-of-a-national-insurance-number', clock);
        const page = (await browser.get('/settings')).body;
        expect(text(page)).toContain(
          'To get back in, you would have to prove who you are again: with your email address, your National Insurance number and a code we email you (add an authenticator to your profile), or through your registration authority.',
        );
        expect(ONLY.exec(page)![1]).toContain('<a href="/add-authenticator">add an authenticator to your profile</a>');
      } finally {
        await ra.close();
      }
    });

    it('is not shown beside an authenticator app (with its password), a work account or a password alone', async () => {
      const ways = await createTestApp({ LATCHKEY_PASSWORD_SIGNIN: 'alone', ...WORK_PROVIDER }, { now: () => clock });
      try {
        const browser = await signUp(ways.app, authenticator());
        const store = ways.app.latchkey.store;
        const user = (await store.users.findByEmail('ada@example.com'))!;
        expect((await browser.get('/settings')).body).toContain('data-only-passkey');
        // A password alone (LATCHKEY_PASSWORD_SIGNIN=alone) is a second way in.
        await store.users.setPasswordHash(user.id, FAKE_HASH, clock);
        await store.authenticators.insert(passwordRow(user.id));
        expect((await browser.get('/settings')).body).not.toContain('data-only-passkey');
        await store.authenticators.remove(user.id, 'password-1');
        await insertApp(store, ways.app.latchkey.secretBox, { id: 'app-1', user_id: user.id }, 'JBSWY3DPEHPK3PXP');
        expect((await browser.get('/settings')).body).not.toContain('data-only-passkey');
        await store.authenticators.remove(user.id, 'app-1');
        await store.users.setPasswordHash(user.id, null, clock);
        expect((await browser.get('/settings')).body).toContain('data-only-passkey');
        await store.authenticators.insert(workAccountRow(user.id, 'nhsnet'));
        expect((await browser.get('/settings')).body).not.toContain('data-only-passkey');
      } finally {
        await ways.close();
      }
    });
  });

  describe('nobody removes their last way in: only what can sign the person in counts', () => {
    /** Beside one passkey, stored rows that sign nobody in (the default settings: with-app, no upstream providers). */
    const openNothing: [string, (userId: string) => Promise<void>][] = [
      [
        'a password row left from LATCHKEY_PASSWORD_SIGNIN=alone, now with-app',
        async (userId) => {
          await t.app.latchkey.store.users.setPasswordHash(userId, FAKE_HASH, clock);
          await t.app.latchkey.store.authenticators.insert(passwordRow(userId));
        },
      ],
      ['an authenticator app without a password', (userId) => insertApp(t.app.latchkey.store, t.app.latchkey.secretBox, { id: 'app-1', user_id: userId }, 'JBSWY3DPEHPK3PXP')],
      ['a work account at a provider no longer configured', (userId) => t.app.latchkey.store.authenticators.insert(workAccountRow(userId, 'gone'))],
    ];

    it.each(openNothing)('%s: the passkey is still the only way in, so it stays and the warning shows', async (_name, add) => {
      const browser = await signUp(t.app, authenticator());
      const store = t.app.latchkey.store;
      const user = (await store.users.findByEmail('ada@example.com'))!;
      await add(user.id);
      const passkey = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'passkey')!;
      expect((await browser.get('/settings')).body).toContain('data-only-passkey');
      const page = await browser.get(`/settings/passkeys/${passkey.id}/remove`);
      expect(page.body).toContain('This is your only passkey');
      expect(page.body).not.toContain('I want to remove this passkey');
      const refused = await browser.postForm(`/settings/passkeys/${passkey.id}/remove`, { confirm: 'yes' });
      expect(refused.statusCode).toBe(409);
      expect(refused.body).toContain('cannot remove your only passkey');
      expect((await browser.postJson(`/settings/passkeys/${passkey.id}/remove`, { confirm: 'yes' })).json().error.code).toBe('last_passkey');
      expect((await store.authenticators.listForUser(user.id)).map((a) => a.id)).toContain(passkey.id);
    });

    it('an authenticator app whose only company is a password row left from "alone" is the last way in', async () => {
      const browser = await signUp(t.app, authenticator());
      const store = t.app.latchkey.store;
      const user = (await store.users.findByEmail('ada@example.com'))!;
      await store.users.setPasswordHash(user.id, FAKE_HASH, clock);
      await store.authenticators.insert(passwordRow(user.id));
      await insertApp(store, t.app.latchkey.secretBox, { id: 'app-1', user_id: user.id }, 'JBSWY3DPEHPK3PXP');
      // Their passkey removed by an agent, say: the app (with the password) is what signs them in.
      const passkey = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'passkey')!;
      await store.authenticators.remove(user.id, passkey.id);
      const page = await browser.get('/settings/authenticators/app-1/remove');
      expect(page.body).toContain('This is your only way to sign in, so it cannot be removed.');
      const refused = await browser.postForm('/settings/authenticators/app-1/remove', { confirm: 'yes' });
      expect(refused.statusCode).toBe(409);
      expect((await store.authenticators.listForUser(user.id)).map((a) => a.id).sort()).toEqual(['app-1', 'password-1']);
      // The row that signs nobody in may go: the app still does.
      expect((await browser.get('/settings/authenticators/password-1/remove')).body).toContain('I want to remove Password');
      expect((await browser.postForm('/settings/authenticators/password-1/remove', { confirm: 'yes' })).statusCode).toBe(303);
      expect((await store.users.findById(user.id))!.password_hash).toBe(FAKE_HASH);
    });

    it('two removals at once, of the only two apps, leave one of them', async () => {
      const browser = await signUp(t.app, authenticator());
      const store = t.app.latchkey.store;
      const user = (await store.users.findByEmail('ada@example.com'))!;
      await store.users.setPasswordHash(user.id, FAKE_HASH, clock);
      for (const id of ['app-1', 'app-2']) await insertApp(store, t.app.latchkey.secretBox, { id, user_id: user.id }, 'JBSWY3DPEHPK3PXP');
      const passkey = (await store.authenticators.listForUser(user.id)).find((a) => a.type === 'passkey')!;
      await store.authenticators.remove(user.id, passkey.id);
      // Both requests check before either writes, so each sees another way in; only the check inside the removal's
      // transaction (after writing the user row, which serialises the two) can see the other's removal.
      const transaction = store.transaction.bind(store);
      const waiting: (() => void)[] = [];
      const releaseAll = () => waiting.splice(0).forEach((go) => go());
      const stop = setTimeout(releaseAll, 5000);
      vi.spyOn(store, 'transaction').mockImplementation((async (fn: Parameters<typeof transaction>[0], options?: Parameters<typeof transaction>[1]) => {
        await new Promise<void>((go) => {
          waiting.push(go);
          if (waiting.length === 2) releaseAll();
        });
        return transaction(fn, options);
      }) as typeof store.transaction);
      const answers = await Promise.all(['app-1', 'app-2'].map((id) => browser.postForm(`/settings/authenticators/${id}/remove`, { confirm: 'yes' })));
      clearTimeout(stop);
      vi.restoreAllMocks();
      expect(answers.map((a) => a.statusCode).sort()).toEqual([303, 409]);
      expect((await store.authenticators.listForUser(user.id)).length).toBe(1);
      expect((await store.users.findById(user.id))!.password_hash).toBe(FAKE_HASH);
    });
  });

  it('shows "Unknown passkey provider" for an AAGUID it does not know, and names such a passkey by where it lives', async () => {
    // Sign-up leaves the name blank: it is named at registration.
    const browser = await signUp(t.app, authenticator({ aaguid: '00000000-0000-0000-0000-000000000000' }));
    await addPasskey(browser, authenticator({ aaguid: '0bd2e54f-2c4b-4b8f-9c4a-3c1d7f0e9a11' }), 'Old key');
    await addPasskey(browser, authenticator({ aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd' }), 'Phone');
    const page = (await browser.get('/settings')).body;
    const rows = [...page.matchAll(/<strong class="passkey-name">([^<]+)<\/strong>[\s\S]*?data-provider="([^"]+)"/g)].map((m) => `${m[1]}: ${m[2]}`).sort();
    expect(rows).toEqual(['Old key: Unknown passkey provider', 'Passkey on this device: Unknown passkey provider', 'Phone: iCloud Keychain']);
    expect(page).not.toContain('data-provider="Passkey"');
  });

  it("does not let one user touch another's passkeys", async () => {
    const ada = await signUp(t.app, authenticator(), 'ada@example.com');
    const adaId = /data-passkey-id="([^"]+)"/.exec((await ada.get('/settings')).body)![1]!;
    const bob = await signUp(t.app, authenticator(), 'bob@example.com', 'Bob');
    await addPasskey(bob, authenticator(), 'Spare');
    expect((await bob.get(`/settings/passkeys/${adaId}/rename`)).statusCode).toBe(404);
    expect((await bob.postForm(`/settings/passkeys/${adaId}/rename`, { name: 'mine' })).statusCode).toBe(404);
    expect((await bob.postForm(`/settings/passkeys/${adaId}/remove`, { confirm: 'yes' })).statusCode).toBe(404);
  });

  it('lists sessions, ends another one, and signs out', async () => {
    const phone = authenticator();
    const first = await signUp(t.app, phone);
    const second = new TestBrowser(t.app, 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Safari/604.1');
    await second.get('/signin');
    const o = (await second.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    expect((await second.postJson('/signin/verify', { response: phone.getAssertion(o) })).statusCode).toBe(200);
    const page = (await first.get('/settings')).body;
    expect(page).toContain('Safari on iOS');
    const sessionIds = [...page.matchAll(/data-session-id="([^"]+)"/g)].map((m) => m[1]!);
    expect(sessionIds).toHaveLength(2);
    const other = [...page.matchAll(/action="\/settings\/sessions\/([^/]+)\/end"/g)].map((m) => m[1]!);
    expect(other).toHaveLength(1);
    expect((await first.postForm(`/settings/sessions/${other[0]}/end`, {})).headers.location).toBe('/settings?ended=1');
    expect((await second.get('/settings')).statusCode).toBe(302);

    const out = await first.postForm('/signout', {});
    expect(out.statusCode).toBe(303);
    expect((await first.get('/settings')).headers.location).toBe('/signin');
  });

  it('does not list a session that went idle as active, even before it is pruned', async () => {
    const phone = authenticator();
    await signUp(t.app, phone);
    const other = new TestBrowser(t.app);
    await other.get('/signin');
    const o = (await other.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    expect((await other.postJson('/signin/verify', { response: phone.getAssertion(o) })).statusCode).toBe(200);
    const count = async () => [...(await other.get('/settings')).body.matchAll(/data-session-id="([^"]+)"/g)].length;
    expect(await count()).toBe(2);
    clock += minutes(50);
    expect(await count()).toBe(2);
    // The sign-up browser has now been idle for over an hour; this one was seen 11 minutes ago.
    clock += minutes(11);
    expect(await count()).toBe(1);
  });

  it('ends sessions after 1 hour idle and 24 hours in all', async () => {
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    clock += minutes(59);
    expect((await browser.get('/settings')).statusCode).toBe(200);
    clock += minutes(61);
    expect((await browser.get('/settings')).statusCode).toBe(302);

    const again = new TestBrowser(t.app);
    await again.get('/signin');
    const o = (await again.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    await again.postJson('/signin/verify', { response: phone.getAssertion(o) });

    // Active every 50 minutes: never idle, but 24 hours after sign-in the session ends anyway.
    for (let i = 0; i < 28; i++) {
      clock += minutes(50);
      expect((await again.get('/settings')).statusCode).toBe(200);
    }
    clock += minutes(50);
    expect((await again.get('/settings')).statusCode).toBe(302);
  });

  it('refuses a counter that goes backwards and audits a possible clone', async () => {
    const phone = authenticator();
    const browser = await signUp(t.app, phone);
    const signIn = async (counter?: number) => {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      const o = (await b.postJson('/signin/options', { mode: 'discoverable' })).json().options;
      return b.postJson('/signin/verify', { response: phone.getAssertion(o, counter === undefined ? {} : { counter }) });
    };
    expect((await signIn(5)).statusCode).toBe(200);
    const cloned = await signIn(5);
    expect(cloned.statusCode).toBe(400);
    expect(cloned.json().error.code).toBe('counter_regressed');
    const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
    const events = (await t.app.latchkey.store.audit.listForSubject(user.id, 50)).map((e) => `${e.event}:${e.outcome}`);
    expect(events).toContain('passkey.counter_regressed:failure');
    expect(events).toContain('signin.failed:failure');
    expect((await browser.get('/settings')).body).toContain('possible copied authenticator');
  });

  it('keeps the backed-up flag current at each sign-in', async () => {
    const phone = authenticator({ backupEligible: true, backedUp: false, counter: 'zero' });
    const first = await signUp(t.app, phone);
    expect((await first.get('/settings')).body).toContain('Synced when backed up');
    phone.options.backedUp = true;
    const b = new TestBrowser(t.app);
    await b.get('/signin');
    const o = (await b.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    expect((await b.postJson('/signin/verify', { response: phone.getAssertion(o) })).statusCode).toBe(200);
    const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
    const [passkey] = await t.app.latchkey.store.authenticators.listForUser(user.id);
    expect(passkey?.backed_up).toBe(1);
    expect(passkey?.last_used_at).toBe(clock);
    expect((await b.get('/settings')).body).toMatch(/>Synced</);
  });
});
