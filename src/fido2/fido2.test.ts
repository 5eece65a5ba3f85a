import type { LightMyRequestResponse } from 'fastify';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, TestBrowser, TEST_ORIGIN, type TestApp } from '../../test/support/app.js';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FidoU2fAuthenticator, PackedAuthenticator } from '../../test/support/packedAuthenticator.js';
import { encodeCbor } from '../../test/support/cbor.js';
import { attestationSubject, issueCertificate } from '../../test/support/x509.js';
import type { SoftAuthenticator } from '../../test/support/softAuthenticator.js';

const CONFORMANCE = { LATCHKEY_FIDO_CONFORMANCE: 'true' };

/** The profile's ServerPublicKeyCredential: `getClientExtensionResults` for `clientExtensionResults`. */
function asProfile(credential: RegistrationResponseJSON | AuthenticationResponseJSON) {
  const { id, rawId, type, response, clientExtensionResults } = credential;
  return { id, rawId, type, response, getClientExtensionResults: clientExtensionResults ?? {} };
}

function expectFailed(res: LightMyRequestResponse, pattern?: RegExp) {
  expect(res.statusCode, res.body).toBe(400);
  const body = res.json();
  expect(body.status).toBe('failed');
  expect(typeof body.errorMessage).toBe('string');
  expect(body.errorMessage.length).toBeGreaterThan(0);
  if (pattern) expect(body.errorMessage).toMatch(pattern);
}

function expectOk(res: LightMyRequestResponse) {
  expect(res.statusCode, res.body).toBe(200);
  expect(res.json()).toMatchObject({ status: 'ok', errorMessage: '' });
}

async function register(browser: TestBrowser, auth: SoftAuthenticator, username = 'johndoe@example.com', extra: object = {}) {
  const options = await browser.postJson('/fido2/attestation/options', { username, displayName: 'John Doe', attestation: 'none', ...extra });
  expectOk(options);
  const credential = auth.createCredential(options.json());
  return { options: options.json(), credential, result: await browser.postJson('/fido2/attestation/result', asProfile(credential)) };
}

async function assertion(browser: TestBrowser, username = 'johndoe@example.com', extra: object = {}) {
  const options = await browser.postJson('/fido2/assertion/options', { username, ...extra });
  expectOk(options);
  return options.json();
}

describe('FIDO conformance API (/fido2)', () => {
  let t: TestApp;
  let browser: TestBrowser;
  beforeEach(async () => {
    t = await createTestApp(CONFORMANCE);
    browser = new TestBrowser(t.app);
  });
  afterEach(async () => t.close());

  it('answers attestation options in the profile shape, echoing what was asked', async () => {
    const authenticatorSelection = { requireResidentKey: false, authenticatorAttachment: 'cross-platform', userVerification: 'preferred' };
    const res = await browser.postJson('/fido2/attestation/options', {
      username: 'johndoe@example.com',
      displayName: 'John Doe',
      authenticatorSelection,
      attestation: 'direct',
      extensions: { example: { nested: [1, true] } },
    });
    expectOk(res);
    const body = res.json();
    expect(body.rp).toEqual({ name: 'Latchkey', id: 'localhost' });
    expect(body.user.name).toBe('johndoe@example.com');
    expect(body.user.displayName).toBe('John Doe');
    expect(body.user.id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(body.challenge, 'base64url').length).toBe(32);
    expect(body.challenge).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(body.pubKeyCredParams).toContainEqual({ type: 'public-key', alg: -7 });
    expect(body.pubKeyCredParams).toContainEqual({ type: 'public-key', alg: -8 });
    expect(body.pubKeyCredParams).toContainEqual({ type: 'public-key', alg: -257 });
    expect(body.timeout).toBeGreaterThan(0);
    expect(body.excludeCredentials).toEqual([]);
    expect(body.authenticatorSelection).toEqual(authenticatorSelection);
    expect(body.attestation).toBe('direct');
    expect(body.extensions).toEqual({ example: { nested: [1, true] } });
    // The user exists (Pending) from now on, in conformance mode only.
    const user = await t.app.latchkey.store.users.findByEmail('johndoe@example.com');
    expect(user?.status).toBe('pending');
  });

  it('defaults attestation to "none" and leaves out what was not asked', async () => {
    const body = (await browser.postJson('/fido2/attestation/options', { username: 'alice', displayName: 'Alice' })).json();
    expect(body.attestation).toBe('none');
    expect(body).not.toHaveProperty('authenticatorSelection');
    expect(body).not.toHaveProperty('extensions');
  });

  for (const [name, alg] of [
    ['ES256', -7],
    ['EdDSA', -8],
    ['RS256', -257],
  ] as const) {
    it(`registers and authenticates with "none" attestation (${name})`, async () => {
      const auth = authenticator({ alg });
      const { result, credential, options: created } = await register(browser, auth);
      expectOk(result);
      const stored = await t.app.latchkey.store.authenticators.findByCredentialId(credential.id);
      expect(stored).toMatchObject({ type: 'passkey', attestation_format: 'none', counter: 1 });
      const user = await t.app.latchkey.store.users.findByEmail('johndoe@example.com');
      expect(user?.status).toBe('enrolled');
      expect(stored?.user_id).toBe(user?.id);

      const options = await assertion(browser, 'johndoe@example.com', { userVerification: 'required', extensions: { appid: 'x' } });
      expect(options.rpId).toBe('localhost');
      expect(options.userVerification).toBe('required');
      expect(options.extensions).toEqual({ appid: 'x' });
      expect(Buffer.from(options.challenge, 'base64url').length).toBe(32);
      expect(options.allowCredentials).toEqual([{ type: 'public-key', id: credential.id, transports: ['internal', 'hybrid'] }]);
      const res = await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(options)));
      expectOk(res);
      expect((await t.app.latchkey.store.authenticators.findByCredentialId(credential.id))?.counter).toBe(2);

      // A second credential for the same user: the first is excluded.
      const again = (await browser.postJson('/fido2/attestation/options', { username: 'johndoe@example.com', displayName: 'John Doe' })).json();
      expect(again.excludeCredentials.map((c: { id: string }) => c.id)).toEqual([credential.id]);
      expect(again.user.id).toBe(created.user.id);
    });
  }

  it('verifies "packed" self attestation and stores the format', async () => {
    const auth = new PackedAuthenticator({ origin: TEST_ORIGIN, alg: -7 });
    const { result, credential } = await register(browser, auth, 'packed-user', { attestation: 'direct' });
    expectOk(result);
    expect((await t.app.latchkey.store.authenticators.findByCredentialId(credential.id))?.attestation_format).toBe('packed');
    const options = await assertion(browser, 'packed-user');
    expectOk(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(options))));
  });

  it('refuses a "packed" attestation whose signature was tampered with', async () => {
    const auth = new PackedAuthenticator({ origin: TEST_ORIGIN, alg: -8 });
    const options = (await browser.postJson('/fido2/attestation/options', { username: 'eve', displayName: 'Eve', attestation: 'direct' })).json();
    const credential = auth.createCredential(options);
    // Re-sign nothing, but change the client data hash input: a different (still well-formed) clientDataJSON.
    const clientData = JSON.parse(Buffer.from(credential.response.clientDataJSON, 'base64url').toString());
    clientData.extra = 'tampered';
    credential.response.clientDataJSON = Buffer.from(JSON.stringify(clientData)).toString('base64url');
    expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(credential)));
  });

  it('accepts rawId and clientExtensionResults as WebAuthn spells them too', async () => {
    const auth = authenticator();
    const options = (await browser.postJson('/fido2/attestation/options', { username: 'bob', displayName: 'Bob' })).json();
    const credential = auth.createCredential(options);
    expectOk(await browser.postJson('/fido2/attestation/result', credential));
  });

  it('links options and results by the cookie: another browser cannot finish the ceremony', async () => {
    const auth = authenticator();
    const options = (await browser.postJson('/fido2/attestation/options', { username: 'carol', displayName: 'Carol' })).json();
    const other = new TestBrowser(t.app);
    expectFailed(await other.postJson('/fido2/attestation/result', asProfile(auth.createCredential(options))), /session/);
  });

  describe('failures are 400 { status: "failed", errorMessage }', () => {
    it('missing username or displayName', async () => {
      expectFailed(await browser.postJson('/fido2/attestation/options', { displayName: 'No Name' }), /username/);
      expectFailed(await browser.postJson('/fido2/attestation/options', { username: 'nodisplay' }), /displayName/);
    });

    it('malformed JSON', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/fido2/attestation/options', payload: '{"username": "x",', headers: { 'content-type': 'application/json' } });
      expectFailed(res, /JSON/);
    });

    it('unknown user at assertion options', async () => {
      expectFailed(await browser.postJson('/fido2/assertion/options', { username: 'nobody' }), /does not exist/);
    });

    it('bad challenge', async () => {
      const auth = authenticator();
      const options = (await browser.postJson('/fido2/attestation/options', { username: 'dave', displayName: 'Dave' })).json();
      const credential = auth.createCredential({ ...options, challenge: Buffer.alloc(32, 7).toString('base64url') });
      expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(credential)), /challenge/);
      // The options issued are still good for their own challenge.
      expectOk(await browser.postJson('/fido2/attestation/result', asProfile(auth.createCredential(options))));
    });

    it('wrong origin (registration and assertion)', async () => {
      const auth = authenticator();
      const options = (await browser.postJson('/fido2/attestation/options', { username: 'frank', displayName: 'Frank' })).json();
      expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(auth.createCredential(options, { origin: 'https://evil.example' }))), /origin/);

      expectOk((await register(browser, auth, 'frank2')).result);
      const get = await assertion(browser, 'frank2');
      expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(get, { origin: 'https://evil.example' }))), /origin/);
    });

    it('wrong RP ID hash', async () => {
      const auth = authenticator();
      const options = (await browser.postJson('/fido2/attestation/options', { username: 'grace', displayName: 'Grace' })).json();
      expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(auth.createCredential(options, { rpId: 'example.com' }))), /RP ID/i);
    });

    it('wrong type, in the credential and in clientDataJSON', async () => {
      const auth = authenticator();
      const options = (await browser.postJson('/fido2/attestation/options', { username: 'heidi', displayName: 'Heidi' })).json();
      const credential = auth.createCredential(options);
      expectFailed(await browser.postJson('/fido2/attestation/result', { ...asProfile(credential), type: 'password' }), /public-key/);

      const options2 = (await browser.postJson('/fido2/attestation/options', { username: 'heidi', displayName: 'Heidi' })).json();
      const credential2 = auth.createCredential(options2);
      const clientData = JSON.parse(Buffer.from(credential2.response.clientDataJSON, 'base64url').toString());
      clientData.type = 'webauthn.get';
      credential2.response.clientDataJSON = Buffer.from(JSON.stringify(clientData)).toString('base64url');
      expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(credential2)), /type/);
    });

    it('missing fields and malformed base64url or CBOR in a result', async () => {
      const auth = authenticator();
      const options = (await browser.postJson('/fido2/attestation/options', { username: 'ivan', displayName: 'Ivan' })).json();
      const credential = asProfile(auth.createCredential(options));
      const { attestationObject: _omit, ...noAttestation } = credential.response as { attestationObject: string };
      expectFailed(await browser.postJson('/fido2/attestation/result', { ...credential, response: noAttestation }), /attestationObject/);
      const { id: _id, ...noId } = credential;
      expectFailed(await browser.postJson('/fido2/attestation/result', noId), /id/);
      expectFailed(await browser.postJson('/fido2/attestation/result', { ...credential, id: 'not base64url!' }), /id/);
      expectFailed(await browser.postJson('/fido2/attestation/result', { ...credential, response: { ...credential.response, clientDataJSON: '' } }), /clientDataJSON/);
      // Well-formed base64url that is not CBOR: the challenge is right, so this consumes the options.
      expectFailed(await browser.postJson('/fido2/attestation/result', { ...credential, response: { ...credential.response, attestationObject: Buffer.from('not cbor at all').toString('base64url') } }), /CBOR/);
      // ...and they are gone: the genuine result now fails too.
      expectFailed(await browser.postJson('/fido2/attestation/result', credential), /already used|expired/);
      expectFailed(await browser.postJson('/fido2/assertion/result', {}), /id/);

      for (const [attestationObject, message] of [
        [Buffer.from([0xff, 0x00]), /not valid CBOR/],
        [encodeCbor(new Map<string, Uint8Array | Map<string, number>>([['attStmt', new Map()], ['authData', Buffer.alloc(60)]])), /fmt/],
        [encodeCbor(new Map<string, string | Uint8Array>([['fmt', 'none'], ['authData', Buffer.alloc(60)]])), /attStmt/],
        [encodeCbor(new Map<string, string | Map<string, number>>([['fmt', 'none'], ['attStmt', new Map()]])), /authData/],
      ] as const) {
        const fresh = (await browser.postJson('/fido2/attestation/options', { username: 'ivan', displayName: 'Ivan' })).json();
        const response = asProfile(auth.createCredential(fresh));
        const res = await browser.postJson('/fido2/attestation/result', { ...response, response: { ...response.response, attestationObject: attestationObject.toString('base64url') } });
        expectFailed(res, message);
      }
    });

    it('tampered assertion signature', async () => {
      const auth = authenticator();
      expectOk((await register(browser, auth, 'judy')).result);
      const options = await assertion(browser, 'judy');
      const response = auth.getAssertion(options);
      const sig = Buffer.from(response.response.signature, 'base64url');
      sig[sig.length - 1] ^= 0x01;
      response.response.signature = sig.toString('base64url');
      expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(response)), /signature/i);
    });

    it('replayed assertion result', async () => {
      const auth = authenticator();
      expectOk((await register(browser, auth, 'mallory')).result);
      const options = await assertion(browser, 'mallory');
      const response = asProfile(auth.getAssertion(options));
      expectOk(await browser.postJson('/fido2/assertion/result', response));
      expectFailed(await browser.postJson('/fido2/assertion/result', response), /already used|expired/);
    });

    it('replayed attestation result', async () => {
      const auth = authenticator();
      const { result, credential } = await register(browser, auth, 'oscar');
      expectOk(result);
      expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(credential)), /already used|expired/);
    });

    it('counter that did not increase', async () => {
      const auth = authenticator();
      expectOk((await register(browser, auth, 'peggy')).result);
      const options = await assertion(browser, 'peggy');
      expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(options, { counter: 1 }))), /counter/);
    });

    it('unknown credential, or one of another user', async () => {
      const alice = authenticator();
      const bob = authenticator();
      expectOk((await register(browser, alice, 'alice')).result);
      expectOk((await register(browser, bob, 'bob')).result);
      const options = await assertion(browser, 'alice');
      const bobsCredential = [...bob.credentials.keys()][0]!;
      // Bob's authenticator answers Alice's options with Bob's credential.
      const response = bob.getAssertion({ ...options, allowCredentials: [] }, { credentialId: bobsCredential });
      expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(response)), /Unknown credential/);

      const options2 = await assertion(browser, 'alice');
      const forged = { ...asProfile(alice.getAssertion(options2)), id: Buffer.alloc(32, 1).toString('base64url'), rawId: Buffer.alloc(32, 1).toString('base64url') };
      expectFailed(await browser.postJson('/fido2/assertion/result', forged), /Unknown credential/);
    });

    it('userVerification "required" at assertion but no UV flag', async () => {
      const auth = authenticator();
      expectOk((await register(browser, auth, 'trent')).result);
      auth.options.userVerification = false;
      const required = await assertion(browser, 'trent', { userVerification: 'required' });
      expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(required))), /verif/i);
      // "preferred" accepts the same authenticator (FIDO conformance rules for UP/UV).
      const preferred = await assertion(browser, 'trent', { userVerification: 'preferred' });
      expectOk(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(preferred))));
    });

    it('userVerification "required" at registration but no UV flag', async () => {
      const auth = authenticator({ userVerification: false });
      const { result } = await register(browser, auth, 'victor', { authenticatorSelection: { userVerification: 'required' } });
      expectFailed(result, /verif/i);
      const { result: preferred } = await register(browser, authenticator({ userVerification: false }), 'victor', { authenticatorSelection: { userVerification: 'preferred' } });
      expectOk(preferred);
    });

    it('never a 5xx: every member of a result dropped, mistyped or replaced by random bytes', async () => {
      const auth = authenticator();
      expectOk((await register(browser, auth, 'fuzz')).result);
      const mutations = (value: unknown): unknown[] => [undefined, null, 7, true, [], {}, '', 'not base64url!', Buffer.from('random bytes that mean nothing').toString('base64url'), typeof value === 'string' ? value.slice(0, 10) : 'x'];
      // Fresh options for every case, so each mutation reaches the checks past the challenge.
      const fresh = {
        '/fido2/attestation/result': async () => {
          const options = (await browser.postJson('/fido2/attestation/options', { username: 'fuzz', displayName: 'Fuzz' })).json();
          return asProfile(authenticator().createCredential(options)) as unknown as Record<string, unknown>;
        },
        '/fido2/assertion/result': async () => asProfile(auth.getAssertion(await assertion(browser, 'fuzz'))) as unknown as Record<string, unknown>,
      };
      let cases = 0;
      for (const [endpoint, make] of Object.entries(fresh)) {
        const sample = await make();
        const paths: [string, string?][] = [...Object.keys(sample).map((k) => [k] as [string]), ...Object.keys(sample.response as object).map((k) => ['response', k] as [string, string])];
        for (const [key, inner] of paths) {
          const original = inner ? (sample.response as Record<string, unknown>)[inner] : sample[key];
          for (const v of mutations(original)) {
            const field = inner ? `response.${inner}` : key;
            // Optional members may be absent or empty: those variations are not mistakes.
            // An assertion's rawId too: the profile's ServerPublicKeyCredential defines none.
            const optional = ['getClientExtensionResults', 'response.userHandle', 'response.transports'].includes(field) || (endpoint === '/fido2/assertion/result' && field === 'rawId');
            if (JSON.stringify(v) === JSON.stringify(original) || (optional && (v === undefined || v === null || v === '' || (Array.isArray(v) && !v.length) || (field === 'getClientExtensionResults' && JSON.stringify(v) === '{}')))) continue;
            const body = await make();
            const mutated = inner ? { ...body, response: { ...(body.response as object), [inner]: v } } : { ...body, [key]: v };
            const res = await browser.postJson(endpoint, mutated);
            cases += 1;
            expect(res.statusCode, `${endpoint} ${key}${inner ? `.${inner}` : ''}=${JSON.stringify(v)}: ${res.body}`).toBe(400);
            expect(res.json().status).toBe('failed');
            expect(res.json().errorMessage).not.toBe('');
          }
        }
      }
      expect(cases).toBeGreaterThan(100);
      for (const endpoint of ['/fido2/attestation/options', '/fido2/assertion/options', '/fido2/attestation/result', '/fido2/assertion/result']) {
        for (const payload of ['null', '[]', '"text"', '42', '{"username": {"$ne": 1}, "displayName": []}']) {
          const res = await t.app.inject({ method: 'POST', url: endpoint, payload, headers: { 'content-type': 'application/json' } });
          expectFailed(res);
        }
        expectFailed(await t.app.inject({ method: 'POST', url: endpoint, payload: 'username=x', headers: { 'content-type': 'text/plain' } }));
        expectFailed(await t.app.inject({ method: 'POST', url: endpoint }));
      }
    });

    it('an unknown /fido2 path is a 404 in the same shape', async () => {
      const res = await browser.postJson('/fido2/nothing-here', {});
      expect(res.statusCode).toBe(404);
      expect(res.json().status).toBe('failed');
      expect(res.json().errorMessage).not.toBe('');
    });
  });
});

/**
 * What an independent conformance client found the paths accepted (issue 13, item 6). /fido2 now runs the product's
 * own checks (src/webauthn/responseChecks.ts); src/flows/signup/signup.test.ts and src/flows/signin/signin.test.ts
 * pin the same cases on the product's endpoints.
 */
describe('/fido2 runs the product checks', () => {
  let t: TestApp;
  let browser: TestBrowser;
  beforeEach(async () => {
    t = await createTestApp(CONFORMANCE);
    browser = new TestBrowser(t.app);
  });
  afterEach(async () => t.close());

  const creationOptions = async (username: string) => {
    const res = await browser.postJson('/fido2/attestation/options', { username, displayName: username, attestation: 'direct' });
    expectOk(res);
    return res.json();
  };
  const stored = async (id: string) => t.app.latchkey.store.authenticators.findByCredentialId(id);

  it('refuses a registration without rawId; an assertion may leave it out, as the profile defines none, but not send another', async () => {
    const auth = authenticator();
    const credential = asProfile(auth.createCredential(await creationOptions('norawid')));
    const { rawId: _rawId, ...withoutRawId } = credential;
    expectFailed(await browser.postJson('/fido2/attestation/result', withoutRawId), /rawId is missing/);
    expect(await stored(credential.id)).toBeUndefined();

    expectOk((await register(browser, auth, 'norawid2')).result);
    const { rawId: _r, ...assertionWithoutRawId } = asProfile(auth.getAssertion(await assertion(browser, 'norawid2')));
    expectOk(await browser.postJson('/fido2/assertion/result', assertionWithoutRawId));
    const other = asProfile(auth.getAssertion(await assertion(browser, 'norawid2')));
    expectFailed(await browser.postJson('/fido2/assertion/result', { ...other, rawId: Buffer.alloc(32, 7).toString('base64url') }), /rawId does not equal id/);
  });

  it('refuses a credential id longer than 1,023 bytes, and takes one of exactly 1,023', async () => {
    const long = authenticator({ credentialIdLength: 1024 });
    const refused = long.createCredential(await creationOptions('longid'));
    expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(refused)), /1024 bytes long; at most 1023/);
    expect(await stored(refused.id)).toBeUndefined();

    const longest = authenticator({ credentialIdLength: 1023 });
    const accepted = longest.createCredential(await creationOptions('longestid'));
    expectOk(await browser.postJson('/fido2/attestation/result', asProfile(accepted)));
    expect(await stored(accepted.id)).toMatchObject({ credential_id: accepted.id });
  });

  // The library verifies a self-attestation signature with the credential key whatever alg the statement claims.
  for (const [name, alg, claimed] of [
    ['ES256 key, RS256 claimed', -7, -257],
    ['EdDSA key, ES256 claimed', -8, -7],
  ] as const) {
    it(`refuses "packed" self attestation whose alg is not the credential key's (${name})`, async () => {
      const auth = new PackedAuthenticator({ origin: TEST_ORIGIN, alg }, undefined, claimed);
      const credential = auth.createCredential(await creationOptions(`selfalg${alg}`));
      expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(credential)), new RegExp(`attStmt.alg ${claimed} does not match the credential public key's alg ${alg}`));
      expect(await stored(credential.id)).toBeUndefined();
    });
  }

  it('refuses "fido-u2f" attestation with an RSA credential key, or with a P-384 attestation certificate', async () => {
    const u2fCert = issueCertificate({ subject: { CN: 'U2F Test Key' } });
    const rsa = new FidoU2fAuthenticator({ origin: TEST_ORIGIN, alg: -257 }, { privateKey: u2fCert.privateKey, x5c: [u2fCert.der] });
    const rsaCredential = rsa.createCredential(await creationOptions('u2f-rsa'));
    expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(rsaCredential)), /credential public key is not an EC P-256 key/);

    const p384Cert = issueCertificate({ subject: { CN: 'U2F P-384 Key' }, keys: generateKeyPairSync('ec', { namedCurve: 'P-384' }) });
    const p384 = new FidoU2fAuthenticator({ origin: TEST_ORIGIN }, { privateKey: p384Cert.privateKey, x5c: [p384Cert.der] });
    const p384Credential = p384.createCredential(await creationOptions('u2f-p384'));
    expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(p384Credential)), /attestation certificate's key is not an EC P-256 key/);

    // A chain is not what fido-u2f sends (§8.6 step 2: exactly one certificate).
    const chained = new FidoU2fAuthenticator({ origin: TEST_ORIGIN }, { privateKey: u2fCert.privateKey, x5c: [u2fCert.der, u2fCert.der] });
    expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(chained.createCredential(await creationOptions('u2f-chain')))), /exactly one certificate/);

    for (const credential of [rsaCredential, p384Credential]) expect(await stored(credential.id)).toBeUndefined();
    // The same key with a P-256 certificate registers.
    const good = new FidoU2fAuthenticator({ origin: TEST_ORIGIN }, { privateKey: u2fCert.privateKey, x5c: [u2fCert.der] });
    expectOk(await browser.postJson('/fido2/attestation/result', asProfile(good.createCredential(await creationOptions('u2f-good')))));
  });

  const framings = [
    [{ crossOrigin: true, topOrigin: 'https://evil.example' }, /crossOrigin is true/],
    [{ crossOrigin: true }, /crossOrigin is true/],
    [{ topOrigin: 'https://evil.example' }, /topOrigin "https:\/\/evil.example" is not this relying party's origin/],
    [{ crossOrigin: 'true' }, /crossOrigin is not a boolean/],
  ] as const;

  it('refuses a cross-origin registration, or one with a foreign topOrigin', async () => {
    for (const [clientDataExtra, message] of framings) {
      const auth = authenticator({ clientDataExtra });
      const credential = auth.createCredential(await creationOptions('framed'));
      expectFailed(await browser.postJson('/fido2/attestation/result', asProfile(credential)), message);
      expect(await stored(credential.id)).toBeUndefined();
    }
  });

  it('refuses a cross-origin assertion, or one with a foreign topOrigin', async () => {
    const auth = authenticator();
    expectOk((await register(browser, auth, 'framed-signin')).result);
    for (const [clientDataExtra, message] of framings) {
      auth.options.clientDataExtra = clientDataExtra;
      expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(await assertion(browser, 'framed-signin')))), message);
    }
    auth.options.clientDataExtra = {};
    expectOk(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(await assertion(browser, 'framed-signin')))));
  });

  it('refuses an assertion without user presence, whatever userVerification the options asked for', async () => {
    const auth = authenticator();
    const { credential } = await register(browser, auth, 'absent');
    auth.options.userPresence = false;
    for (const userVerification of ['required', 'preferred', 'discouraged']) {
      const options = await assertion(browser, 'absent', { userVerification });
      expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(options))), /user-present \(UP\) flag is clear/);
    }
    expect((await stored(credential.id))?.counter).toBe(1);
  });

  it('serves usernameless assertion options, and finds the credential by id and its owner by the user handle', async () => {
    const alice = authenticator();
    const bob = authenticator();
    const { credential: alices } = await register(browser, alice, 'alice');
    const { credential: bobs } = await register(browser, bob, 'bob');

    for (const request of [{}, { username: '' }, { userVerification: 'required' }]) {
      const res = await browser.postJson('/fido2/assertion/options', request);
      expectOk(res);
      const options = res.json();
      expect(options.allowCredentials).toEqual([]);
      expect(options.rpId).toBe('localhost');
      expect(Buffer.from(options.challenge, 'base64url').length).toBe(32);
      expectOk(await browser.postJson('/fido2/assertion/result', asProfile(alice.getAssertion(options))));
    }
    expect((await stored(alices.id))?.counter).toBe(4);
    expectOk(await browser.postJson('/fido2/assertion/result', asProfile(bob.getAssertion(await assertion(browser, '')))));
    expect((await stored(bobs.id))?.counter).toBe(2);

    // §7.2 step 6: without a user handle, or with someone else's, the credential's owner is not shown.
    const noHandle = asProfile(alice.getAssertion(await assertion(browser, '')));
    delete (noHandle.response as { userHandle?: string }).userHandle;
    expectFailed(await browser.postJson('/fido2/assertion/result', noHandle), /userHandle is required/);
    const swapped = asProfile(alice.getAssertion(await assertion(browser, '')));
    (swapped.response as { userHandle?: string }).userHandle = bob.getAssertion({ challenge: 'x', rpId: 'localhost' }).response.userHandle;
    expectFailed(await browser.postJson('/fido2/assertion/result', swapped), /userHandle does not match/);
    const unknown = { ...asProfile(alice.getAssertion(await assertion(browser, ''))), id: Buffer.alloc(32, 9).toString('base64url'), rawId: Buffer.alloc(32, 9).toString('base64url') };
    expectFailed(await browser.postJson('/fido2/assertion/result', unknown), /Unknown credential/);

    // A disabled user's credential is refused here too, as the named options refuse the user.
    const aliceUser = (await t.app.latchkey.store.users.findByEmail('alice'))!;
    await t.app.latchkey.store.users.setStatus(aliceUser.id, 'suspended', Date.now());
    expectFailed(await browser.postJson('/fido2/assertion/result', asProfile(alice.getAssertion(await assertion(browser, '')))), /disabled/);
  });
});

describe('attestation certificates and metadata statements', () => {
  const root = issueCertificate({ subject: { C: 'US', O: 'Latchkey Test Authenticators', CN: 'Test Attestation Root' }, ca: true });
  const otherRoot = issueCertificate({ subject: { C: 'US', O: 'Somebody Else', CN: 'Unlisted Root' }, ca: true });
  const aaguid = 'f1d0f1d0-f1d0-f1d0-f1d0-f1d0f1d0f1d0';
  const aaguidBytes = Buffer.from(aaguid.replace(/-/g, ''), 'hex');
  const leaf = issueCertificate({ subject: attestationSubject('Test Authenticator'), issuer: root, aaguid: aaguidBytes });
  const strayLeaf = issueCertificate({ subject: attestationSubject('Stray Authenticator'), issuer: otherRoot, aaguid: aaguidBytes });
  let dir: string;
  let t: TestApp;
  let browser: TestBrowser;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'latchkey-fido-mds-'));
    const statement = {
      legalHeader: 'test',
      aaguid,
      description: 'Latchkey test authenticator',
      authenticatorVersion: 1,
      protocolFamily: 'fido2',
      schema: 3,
      upv: [{ major: 1, minor: 0 }],
      authenticationAlgorithms: ['secp256r1_ecdsa_sha256_raw'],
      publicKeyAlgAndEncodings: ['cose'],
      attestationTypes: ['basic_full'],
      userVerificationDetails: [[{ userVerificationMethod: 'presence_internal' }]],
      keyProtection: ['software'],
      matcherProtection: ['software'],
      attachmentHint: ['external'],
      tcDisplay: [],
      attestationRootCertificates: [root.der.toString('base64')],
    };
    writeFileSync(join(dir, 'test-authenticator.json'), JSON.stringify(statement));
    writeFileSync(join(dir, 'README.txt'), 'not a statement: ignored');
    t = await createTestApp({ ...CONFORMANCE, LATCHKEY_FIDO_METADATA_DIR: dir });
    browser = new TestBrowser(t.app);
  });
  afterEach(async () => {
    await t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies "packed" full attestation chained to a root from the metadata statement', async () => {
    const auth = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid }, { privateKey: leaf.privateKey, x5c: [leaf.der] });
    const { result, credential } = await register(browser, auth, 'full-packed', { attestation: 'direct' });
    expectOk(result);
    expect(await t.app.latchkey.store.authenticators.findByCredentialId(credential.id)).toMatchObject({ attestation_format: 'packed', aaguid });
  });

  it('refuses "packed" full attestation from a root the statement does not list', async () => {
    const auth = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid }, { privateKey: strayLeaf.privateKey, x5c: [strayLeaf.der] });
    expectFailed((await register(browser, auth, 'stray', { attestation: 'direct' })).result, /certificate|trust anchor|chain/i);
  });

  it('refuses "packed" full attestation for an AAGUID without a metadata statement', async () => {
    const unknown = '0a0a0a0a-0a0a-0a0a-0a0a-0a0a0a0a0a0a';
    const unlisted = issueCertificate({ subject: attestationSubject('Unlisted'), issuer: root });
    const auth = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: unknown }, { privateKey: unlisted.privateKey, x5c: [unlisted.der] });
    expectFailed((await register(browser, auth, 'unlisted', { attestation: 'direct' })).result, /metadata/i);
  });

  it('verifies "fido-u2f" attestation and refuses a forged one', async () => {
    const u2fCert = issueCertificate({ subject: { CN: 'U2F Test Key' } });
    const auth = new FidoU2fAuthenticator({ origin: TEST_ORIGIN }, { privateKey: u2fCert.privateKey, x5c: [u2fCert.der] });
    const { result, credential } = await register(browser, auth, 'u2f', { attestation: 'direct' });
    expectOk(result);
    expect((await t.app.latchkey.store.authenticators.findByCredentialId(credential.id))?.attestation_format).toBe('fido-u2f');
    const options = await assertion(browser, 'u2f');
    expectOk(await browser.postJson('/fido2/assertion/result', asProfile(auth.getAssertion(options))));

    // Signed by a key that is not the certificate's.
    const forger = new FidoU2fAuthenticator({ origin: TEST_ORIGIN }, { privateKey: leaf.privateKey, x5c: [u2fCert.der] });
    expectFailed((await register(browser, forger, 'u2f-forged', { attestation: 'direct' })).result);
  });
});

describe('FIDO conformance API off (the default)', () => {
  it('answers 404 for every /fido2 endpoint', async () => {
    const t = await createTestApp();
    try {
      const browser = new TestBrowser(t.app);
      for (const path of ['/fido2/attestation/options', '/fido2/attestation/result', '/fido2/assertion/options', '/fido2/assertion/result']) {
        const res = await browser.postJson(path, { username: 'johndoe@example.com', displayName: 'John Doe' });
        expect(res.statusCode, path).toBe(404);
      }
      expect(await t.app.latchkey.store.users.findByEmail('johndoe@example.com')).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});
