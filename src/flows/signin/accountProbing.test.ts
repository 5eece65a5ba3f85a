/**
 * Email-first sign-in must not tell who has an account to someone who holds no
 * key (issue 11 item 2): whatever they post to /signin/verify, an unknown
 * address (a decoy flow) is answered exactly as a real account is, after the
 * same lookups and a signature check, and the specific messages (user
 * verification, a suspended account, a possible clone) are for someone whose
 * signature verified.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AuthenticationResponseJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { authenticator, createTestApp, insertPasskey, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { testDatabases } from '../../../test/support/databases.js';
import { coseKey } from '../../../test/support/softAuthenticator.js';
import type { SoftAuthenticator } from '../../../test/support/softAuthenticator.js';
import { createUser } from '../../users/createUser.js';
import { SignatureWorkerPool } from '../../webauthn/signatureWorker.js';

const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest();

/** An ECDSA signature's DER shape with nothing behind it: what someone without the key can send. */
const garbageSignature = () => b64u(Buffer.concat([Buffer.from([0x30, 0x44, 0x02, 0x20]), randomBytes(32), Buffer.from([0x02, 0x20]), randomBytes(32)]));

interface Forgery {
  id?: string;
  flags?: number;
  origin?: string;
  rpId?: string;
  /** Authenticator data cut short: a response that cannot be read. */
  truncated?: boolean;
  userHandle?: string;
}

/** The tester's assertion (issue 11 item 2): well formed, for this ceremony, signed by no key. */
function forge(options: PublicKeyCredentialRequestOptionsJSON, f: Forgery = {}): AuthenticationResponseJSON {
  const id = f.id ?? options.allowCredentials![0]!.id;
  const clientData = { type: 'webauthn.get', challenge: options.challenge, origin: f.origin ?? TEST_ORIGIN, crossOrigin: false };
  const counter = Buffer.alloc(4);
  counter.writeUInt32BE(1000);
  const authData = Buffer.concat([sha256(f.rpId ?? options.rpId!), Buffer.from([f.flags ?? 0x05]), counter]);
  return {
    id,
    rawId: id,
    type: 'public-key',
    clientExtensionResults: {},
    response: {
      clientDataJSON: b64u(JSON.stringify(clientData)),
      authenticatorData: b64u(f.truncated ? authData.subarray(0, 30) : authData),
      signature: garbageSignature(),
      ...(f.userHandle ? { userHandle: f.userHandle } : {}),
    },
  };
}

const databases = await testDatabases();

describe.each(databases)('email-first sign-in on $name, to someone without the key', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());
    let t: TestApp;
    afterEach(async () => {
      vi.restoreAllMocks();
      await t?.close();
    });
    /** PostgreSQL keeps ceremonies in the challenges table (its default in production), SQLite in the process. */
    const open = async () =>
      createTestApp({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0', LATCHKEY_CHALLENGE_STORE: target.name === 'postgres' ? 'database' : 'memory' }, { db: await target.open() });

    it('answers an unknown address exactly as a real account (1–3 passkeys, or suspended), whatever is posted', async () => {
      t = await open();
      const { store } = t.app.latchkey;
      // Someone with an account of their own: their passkey signs validly, for the wrong account.
      const mallory = authenticator();
      await signUp(t.app, mallory, 'mallory@example.com', 'Mallory');
      const malloryCredential = [...mallory.credentials.keys()][0]!;

      // Real accounts whose stored keys are genuine ES256 keys, so their sign-in path does a real signature check.
      const keys = Array.from({ length: 3 }, () => b64u(coseKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey, -7)));
      const transportSets = [['internal', 'hybrid'], ['usb', 'nfc'], ['internal'], ['hybrid'], ['usb']];
      const known: string[] = [];
      let n = 0;
      const account = async (email: string, passkeys: number, status?: 'suspended') => {
        const user = await createUser(store, { email, displayName: 'Known Person' }, Date.now());
        for (let k = 0; k < passkeys; k++, n++) {
          await insertPasskey(store, {
            id: `probe-${n}`,
            user_id: user.id,
            credential_id: b64u(randomBytes(k % 2 ? 16 : 32)),
            public_key: keys[n % keys.length]!,
            transports: JSON.stringify(transportSets[n % transportSets.length]),
          });
        }
        await store.users.setStatus(user.id, status ?? 'enrolled', Date.now());
        known.push(email);
      };
      for (const count of [1, 2, 3, 1, 2, 3]) await account(`known-${known.length}@example.com`, count);
      await account('suspended@example.com', 2, 'suspended');
      // An account with only an authenticator app is offered a decoy: it must look like an unknown address.
      const appOnly = await createUser(store, { email: 'app-only@example.com', displayName: 'App Person' }, Date.now());
      await store.authenticators.insert({
        id: 'app', user_id: appOnly.id, type: 'totp', credential_id: 'totp-app', public_key: '', counter: 0, transports: '[]',
        aaguid: '', backup_eligible: 0, backed_up: 0, attestation_format: '', name: 'App', created_at: Date.now(), last_used_at: null,
      });
      const unknown = [appOnly.email, ...Array.from({ length: 9 }, (_, i) => `nobody-${i}@example.org`)];

      /** Each forgery, and whether it gets as far as a signature check (the steps before it read only the response). */
      const variants: [string, (o: PublicKeyCredentialRequestOptionsJSON) => AuthenticationResponseJSON, 'signature checked' | 'refused before'][] = [
        ['a garbage signature', (o) => forge(o), 'signature checked'],
        ['user verification off', (o) => forge(o, { flags: 0x01 }), 'signature checked'],
        ['user presence off', (o) => forge(o, { flags: 0x04 }), 'signature checked'],
        ['another origin', (o) => forge(o, { origin: 'https://evil.example' }), 'refused before'],
        ['another RP ID hash', (o) => forge(o, { rpId: 'evil.example' }), 'refused before'],
        ['authenticator data that cannot be read', (o) => forge(o, { truncated: true }), 'refused before'],
        ['a user handle of no one', (o) => forge(o, { userHandle: b64u(randomBytes(16)) }), 'signature checked'],
        ['a credential id not in the list', (o) => forge(o, { id: b64u(randomBytes(32)) }), 'signature checked'],
        ["another account's credential id", (o) => forge(o, { id: malloryCredential }), 'signature checked'],
        ["another account's passkey, signed with its key", (o) => mallory.getAssertion(o, { credentialId: malloryCredential }), 'signature checked'],
      ];

      // A credential lookup is its own query, or (the challenges table on PostgreSQL) part of consuming the challenge.
      const lookupQueries = [vi.spyOn(store.authenticators, 'findByCredentialIdWithUser'), vi.spyOn(store.challenges, 'consumeWithCredential')];
      const lookups = { mockClear: () => lookupQueries.forEach((q) => q.mockClear()), get count() { return lookupQueries.reduce((n, q) => n + q.mock.calls.length, 0); } };
      // The options step before it does the same queries for an address with an account and one without.
      const queries = [vi.spyOn(store.users, 'findByEmail'), vi.spyOn(store.authenticators, 'listForUser'), vi.spyOn(store.authenticators, 'listForEmail')];
      const optionsWork = async (email: string) => {
        for (const q of queries) q.mockClear();
        const browser = new TestBrowser(t.app);
        await browser.get('/signin');
        expect((await browser.postJson('/signin/options', { mode: 'email', email })).statusCode).toBe(200);
        return queries.map((q) => q.mock.calls.length).join();
      };
      const optionsKnown = new Set<string>();
      const optionsUnknown = new Set<string>();
      for (const email of known) optionsKnown.add(await optionsWork(email));
      for (const email of unknown) optionsUnknown.add(await optionsWork(email));
      expect([...optionsUnknown], 'queries for /signin/options (findByEmail, listForUser, listForEmail)').toEqual([...optionsKnown]);
      expect([...optionsKnown]).toEqual(['0,0,1']);

      const signatureChecks = vi.spyOn(SignatureWorkerPool.prototype, 'verify');
      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      /** Everything the answer shows (status, headers but the date, body) and the work it took. */
      const attempt = async (email: string, make: (o: PublicKeyCredentialRequestOptionsJSON) => AuthenticationResponseJSON) => {
        const options = await browser.postJson('/signin/options', { mode: 'email', email });
        expect(options.statusCode).toBe(200);
        lookups.mockClear();
        signatureChecks.mockClear();
        const res = await browser.postJson('/signin/verify', { mode: 'email', email, response: make(options.json().options) });
        const { date: _date, ...headers } = res.headers;
        return {
          answer: JSON.stringify({ status: res.statusCode, headers, body: res.json() }),
          work: `${lookups.count} lookups, ${signatureChecks.mock.calls.length} signature checks`,
        };
      };
      for (const [name, make, reach] of variants) {
        const fromKnown = new Set<string>();
        const fromUnknown = new Set<string>();
        const workKnown = new Set<string>();
        const workUnknown = new Set<string>();
        for (const email of known) {
          const { answer, work } = await attempt(email, make);
          fromKnown.add(answer);
          workKnown.add(work);
        }
        for (const email of unknown) {
          const { answer, work } = await attempt(email, make);
          fromUnknown.add(answer);
          workUnknown.add(work);
        }
        expect([...fromUnknown], name).toEqual([...fromKnown]);
        expect(fromKnown.size, name).toBe(1);
        expect(JSON.parse([...fromKnown][0]!).body.error, name).toEqual({ code: 'ceremony_failed', message: 'Your passkey could not be checked. Try again.' });
        // The same work: one credential lookup, and a signature check whenever the response gets that far.
        expect([...workUnknown], name).toEqual([...workKnown]);
        expect([...workKnown], name).toEqual([`1 lookups, ${reach === 'signature checked' ? 1 : 0} signature checks`]);
      }
      // Nobody was signed in by any of it, and Mallory's own passkey still works for Mallory.
      expect(browser.cookies.get('latchkey_session')).toBeUndefined();
      const own = (await browser.postJson('/signin/options', { mode: 'email', email: 'mallory@example.com' })).json().options;
      expect((await browser.postJson('/signin/verify', { mode: 'email', response: mallory.getAssertion(own) })).statusCode).toBe(200);
    });

    /** Someone signed up with `auth` (options for the soft authenticator), then a signed-out browser. */
    const person = async (auth: SoftAuthenticator, email = 'ada@example.com') => {
      await signUp(t.app, auth, email, 'Ada Lovelace');
      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      const options = async (mode: 'email' | 'discoverable') => (await browser.postJson('/signin/options', { mode, email })).json().options as PublicKeyCredentialRequestOptionsJSON;
      const verify = async (response: AuthenticationResponseJSON) => browser.postJson('/signin/verify', { response });
      return { browser, options, verify };
    };

    it('still tells someone whose passkey signed that it did not verify them', async () => {
      t = await open();
      const auth = authenticator();
      const { options, verify } = await person(auth);
      auth.options.userVerification = false;
      for (const mode of ['email', 'discoverable'] as const) {
        const res = await verify(auth.getAssertion(await options(mode)));
        expect(res.statusCode).toBe(400);
        expect(res.json().error.code, mode).toBe('user_verification_required');
        expect(res.json().error.message).toMatch(/fingerprint, face, PIN/);
      }
    });

    it('still tells a suspended person with their own passkey that the account cannot sign in; a forgery learns nothing', async () => {
      t = await open();
      const auth = authenticator();
      const { options, verify } = await person(auth);
      const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
      await t.app.latchkey.store.users.setStatus(user.id, 'suspended', Date.now());
      for (const mode of ['email', 'discoverable'] as const) {
        const res = await verify(auth.getAssertion(await options(mode)));
        expect(res.statusCode).toBe(403);
        expect(res.json().error.code, mode).toBe('account_disabled');
        // The same credential and user handle without the key's signature: nothing about the account.
        const genuine = auth.getAssertion(await options(mode));
        const unsigned = { ...genuine, response: { ...genuine.response, signature: garbageSignature() } };
        const forged = await verify(unsigned);
        expect(forged.statusCode).toBe(400);
        expect(forged.json().error.code, mode).toBe('ceremony_failed');
      }
    });

    it('still refuses a passkey whose counter went backwards as a possible clone, and audits it', async () => {
      t = await open();
      const auth = authenticator({ counter: 'increment' });
      const { options, verify } = await person(auth);
      expect((await verify(auth.getAssertion(await options('email')))).statusCode).toBe(200);
      const fresh = new TestBrowser(t.app);
      await fresh.get('/signin');
      const again = (await fresh.postJson('/signin/options', { mode: 'email', email: 'ada@example.com' })).json().options;
      const res = await fresh.postJson('/signin/verify', { response: auth.getAssertion(again, { counter: 1 }) });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('counter_regressed');
      expect(await t.app.latchkey.store.audit.listByEvent('passkey.counter_regressed')).toHaveLength(1);
    });

    it('records the true reason a real account’s sign-in failed, which only the audit log shows', async () => {
      t = await open();
      const auth = authenticator();
      const { options, verify } = await person(auth);
      const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
      const res = await verify(forge(await options('email'), { id: b64u(randomBytes(32)) }));
      expect(res.json().error.code).toBe('ceremony_failed');
      const failures = await t.app.latchkey.store.audit.listByEvent('signin.failed');
      expect(failures.map((f) => [f.subject_user_id, JSON.parse(f.detail).code])).toEqual([[user.id, 'credential_unknown']]);
    });
  });
});
