/**
 * The hand-written sign-in verification (WebAuthn L3 §7.2) against
 * @simplewebauthn/server: every case runs through both paths, which must agree.
 * Signed variants are re-signed with the credential's private key, so each
 * check is shown to hold on its own, not only because the signature broke.
 */
import { constants, createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { verifySignature } from '@simplewebauthn/server/helpers';
import { verifyRegistrationResponse, type AuthenticationResponseJSON, type PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeCbor } from '../../test/support/cbor.js';
import { SoftAuthenticator, type CoseAlg } from '../../test/support/softAuthenticator.js';
import { decodeCbor } from './cbor.js';
import { credentialVerifierFromCose } from './coseKey.js';
import { GC_AFTER_EVICTIONS, SignatureWorkerPool } from './signatureWorker.js';
import { standInFor } from './standInKey.js';
import { clearCredentialKeyCache, verifyAssertion, verifyAssertionWithLibrary, type AssertionInput, type AssertionResult } from './verifyAssertion.js';

const ORIGIN = 'https://id.example.com';
const RP_ID = 'id.example.com';
const CHALLENGE = Buffer.alloc(32, 0x2a).toString('base64url');
const b64u = (b: Uint8Array | string) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest();

interface Enrolled {
  auth: SoftAuthenticator;
  credentialId: string;
  privateKey: KeyObject;
  alg: CoseAlg;
  record: AssertionInput['authenticator'];
}

/** Register a software authenticator through the library, as sign-up does, and keep what the database would hold. */
async function enrol(alg: CoseAlg): Promise<Enrolled> {
  const auth = new SoftAuthenticator({ origin: ORIGIN, alg, counter: 'increment' });
  const challenge = b64u('registration-challenge-0123456789');
  const options = {
    challenge,
    rp: { id: RP_ID, name: 'Latchkey' },
    user: { id: b64u('user-1'), name: 'ada@example.com', displayName: 'Ada' },
    pubKeyCredParams: [{ type: 'public-key', alg }],
  } as PublicKeyCredentialCreationOptionsJSON;
  const registration = auth.createCredential(options);
  const verification = await verifyRegistrationResponse({ response: registration, expectedChallenge: challenge, expectedOrigin: ORIGIN, expectedRPID: RP_ID, supportedAlgorithmIDs: [alg] });
  const info = verification.registrationInfo!;
  const credential = auth.credentials.get(registration.id)!;
  return {
    auth,
    credentialId: registration.id,
    privateKey: credential.privateKey,
    alg,
    record: { credential_id: info.credential.id, public_key: b64u(info.credential.publicKey), counter: info.credential.counter, transports: '[]' },
  };
}

function signWith(alg: CoseAlg, key: KeyObject, data: Buffer): Buffer {
  return alg === -8 ? sign(null, data, key) : sign('sha256', data, key);
}

interface Variant {
  clientData?: Record<string, unknown>;
  /** Raw clientDataJSON bytes, instead of `clientData`. */
  clientDataBytes?: Buffer;
  rpId?: string;
  flags?: number;
  signCount?: number;
  /** Bytes after the 37 fixed ones (extensions). */
  extra?: Buffer;
  /** Sign with another key. */
  signer?: { alg: CoseAlg; key: KeyObject };
}

/** An assertion with any content, validly signed by the credential (or `signer`). */
function signedAssertion(e: Enrolled, v: Variant = {}): AuthenticationResponseJSON {
  const clientDataBytes = v.clientDataBytes ?? Buffer.from(JSON.stringify(v.clientData ?? { type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN, crossOrigin: false }));
  const count = Buffer.alloc(4);
  count.writeUInt32BE(v.signCount ?? 7); // above the counter registration stored
  const authData = Buffer.concat([sha256(v.rpId ?? RP_ID), Buffer.from([v.flags ?? 0x05]), count, v.extra ?? Buffer.alloc(0)]);
  const signer = v.signer ?? { alg: e.alg, key: e.privateKey };
  const signature = signWith(signer.alg, signer.key, Buffer.concat([authData, sha256(clientDataBytes)]));
  return {
    id: e.credentialId,
    rawId: e.credentialId,
    type: 'public-key',
    response: { clientDataJSON: b64u(clientDataBytes), authenticatorData: b64u(authData), signature: b64u(signature), userHandle: b64u('user-1') },
    clientExtensionResults: {},
    authenticatorAttachment: 'platform',
  };
}

function inputFor(e: Enrolled, response: AuthenticationResponseJSON, record: Partial<AssertionInput['authenticator']> = {}): AssertionInput {
  return { response, expectedChallenge: CHALLENGE, expectedOrigin: ORIGIN, expectedRpId: RP_ID, authenticator: { ...e.record, ...record } };
}

/** Signatures checked on the event loop with a key cache, beside the default pool (no cache). */
const keepingKeys = new SignatureWorkerPool(64, 0);

/** Run both paths; they must agree on ok and, when ok, on what they return. */
async function both(input: AssertionInput): Promise<{ own: AssertionResult; library: AssertionResult }> {
  const library = await verifyAssertionWithLibrary(structuredClone(input));
  const own = await verifyAssertion(structuredClone(input));
  expect(own.ok, `hand-written ${JSON.stringify(own)} vs library ${JSON.stringify(library)}`).toBe(library.ok);
  if (own.ok && library.ok) expect(own).toEqual(library);
  if (!own.ok && !library.ok) {
    expect(own.code).toBe(library.code);
    // Whether the signature held decides what a sign-in may tell the sender (WebAuthn.finishAuthentication).
    expect(own.signatureValid, `signatureValid: hand-written ${JSON.stringify(own)} vs library ${JSON.stringify(library)}`).toBe(library.signatureValid);
  }
  // With a key cache (LATCHKEY_PASSKEY_KEY_CACHE): the first call keeps the key, the second answers from it; both must
  // say the same as the default, which keeps none.
  for (let i = 0; i < 2; i++) expect((await verifyAssertion({ ...structuredClone(input), signatures: keepingKeys })).ok).toBe(own.ok);
  return { own, library };
}

function mutate(response: AuthenticationResponseJSON, change: (r: AuthenticationResponseJSON) => void): AuthenticationResponseJSON {
  const copy = structuredClone(response);
  change(copy);
  return copy;
}

function flipByte(b64: string, index: number): string {
  const bytes = Buffer.from(b64, 'base64url');
  const i = index < 0 ? bytes.length + index : index;
  bytes[i] = bytes[i]! ^ 0x01;
  return b64u(bytes);
}

const algorithms: [string, CoseAlg][] = [
  ['ES256', -7],
  ['EdDSA', -8],
  ['RS256', -257],
];

describe.each(algorithms)('verifyAssertion with %s, against the library', (_name, alg) => {
  let e: Enrolled;
  let other: { alg: CoseAlg; key: KeyObject };
  beforeAll(async () => {
    e = await enrol(alg);
    other = { alg, key: (await enrol(alg)).privateKey };
  });
  beforeEach(() => clearCredentialKeyCache());

  it('accepts an assertion from the software authenticator', async () => {
    const response = e.auth.getAssertion({ challenge: CHALLENGE, rpId: RP_ID, allowCredentials: [] }, { origin: ORIGIN });
    const { own } = await both(inputFor(e, response));
    expect(own).toEqual({ ok: true, counter: e.auth.credentials.get(e.credentialId)!.counter, backedUp: false, backupEligible: false, userVerified: true, origin: ORIGIN });
  });

  it('accepts any of the allowed origins (related origins, §5.11) and returns the one used; refuses any other', async () => {
    const related = 'https://login.example.co.uk';
    const allowed = new Set([ORIGIN, related]);
    const fromRelated = e.auth.getAssertion({ challenge: CHALLENGE, rpId: RP_ID, allowCredentials: [] }, { origin: related });
    expect((await both({ ...inputFor(e, fromRelated), expectedOrigin: allowed })).own).toMatchObject({ ok: true, origin: related });
    const fromOwn = e.auth.getAssertion({ challenge: CHALLENGE, rpId: RP_ID, allowCredentials: [] }, { origin: ORIGIN });
    expect((await both({ ...inputFor(e, fromOwn), expectedOrigin: allowed })).own).toMatchObject({ ok: true, origin: ORIGIN });
    // Without the related origin in the set, the same response is refused.
    const again = e.auth.getAssertion({ challenge: CHALLENGE, rpId: RP_ID, allowCredentials: [] }, { origin: related });
    expect((await both(inputFor(e, again))).own.ok).toBe(false);
    const foreign = e.auth.getAssertion({ challenge: CHALLENGE, rpId: RP_ID, allowCredentials: [] }, { origin: 'https://evil.example.org' });
    expect((await both({ ...inputFor(e, foreign), expectedOrigin: allowed })).own.ok).toBe(false);
  });

  it('accepts a re-signed assertion and reports backup state', async () => {
    expect((await both(inputFor(e, signedAssertion(e)))).own.ok).toBe(true);
    const backedUp = await both(inputFor(e, signedAssertion(e, { flags: 0x05 | 0x08 | 0x10 })));
    expect(backedUp.own).toMatchObject({ ok: true, backedUp: true });
    expect((await both(inputFor(e, signedAssertion(e, { flags: 0x05 | 0x08 })))).own).toMatchObject({ ok: true, backedUp: false, backupEligible: true });
  });

  it('refuses backed up without backup eligible (step 17)', async () => {
    expect((await both(inputFor(e, signedAssertion(e, { flags: 0x05 | 0x10 })))).own.ok).toBe(false);
  });

  it('refuses another challenge, origin or type (steps 10–12)', async () => {
    const client = { type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN };
    for (const clientData of [
      { ...client, challenge: Buffer.alloc(32, 1).toString('base64url') },
      { ...client, challenge: undefined },
      { ...client, origin: 'https://evil.example.com' },
      { ...client, origin: 'https://id.example.com:8443' },
      { ...client, origin: 'http://id.example.com' },
      { ...client, type: 'webauthn.create' },
      { ...client, type: 'payment.get' },
      { ...client, type: undefined },
    ]) {
      const { own } = await both(inputFor(e, signedAssertion(e, { clientData })));
      expect(own).toMatchObject({ ok: false, code: 'ceremony_failed' });
    }
  });

  it('refuses an assertion for another RP ID (step 14)', async () => {
    for (const rpId of ['example.com', 'evil.example.com', 'id.example.com.']) {
      expect((await both(inputFor(e, signedAssertion(e, { rpId })))).own.ok).toBe(false);
    }
  });

  it('refuses a response without user presence (step 15)', async () => {
    const { own } = await both(inputFor(e, signedAssertion(e, { flags: 0x04 })));
    expect(own).toMatchObject({ ok: false, code: 'ceremony_failed', signatureValid: true });
  });

  it('answers user_verification_required without UV (step 16), but only when the signature holds', async () => {
    const signed = await both(inputFor(e, signedAssertion(e, { flags: 0x01 })));
    expect(signed.own).toEqual({ ok: false, code: 'user_verification_required', signatureValid: true });
    const forged = await both(inputFor(e, signedAssertion(e, { flags: 0x01, signer: other })));
    expect(forged.own).toMatchObject({ ok: false, code: 'ceremony_failed', signatureValid: false });
  });

  it('refuses any response checked against the stand-in key, as a forgery of a real one, before its signature holds', async () => {
    const response = signedAssertion(e);
    const { own } = await both({ ...inputFor(e, response), ...standInFor(e.credentialId) });
    expect(own).toMatchObject({ ok: false, code: 'ceremony_failed', signatureValid: false });
    // Steps before the signature answer the same for a real key and the stand-in.
    const otherOrigin = signedAssertion(e, { clientData: { type: 'webauthn.get', challenge: CHALLENGE, origin: 'https://evil.example.com' } });
    expect(await verifyAssertion({ ...inputFor(e, otherOrigin), ...standInFor(e.credentialId) })).toEqual(await verifyAssertion(inputFor(e, otherOrigin)));
  });

  it('checks every stand-in under one key cache entry, so random credential ids cannot push real keys out of the cache', async () => {
    const checks = vi.spyOn(SignatureWorkerPool.prototype, 'verify');
    try {
      await verifyAssertion(inputFor(e, signedAssertion(e)));
      const realEntry = checks.mock.calls[0]![0];
      for (let i = 0; i < 50; i++) {
        const response = signedAssertion(e);
        const randomId = b64u(Buffer.from(`random-credential-${i}`));
        expect((await verifyAssertion({ ...inputFor(e, { ...response, id: randomId, rawId: randomId }), ...standInFor(randomId) })).ok).toBe(false);
      }
      const entries = new Set(checks.mock.calls.map(([cacheKey]) => cacheKey));
      // The real key's entry and one for the stand-in: fifty ids added one entry (one import per worker), not fifty.
      expect(entries.size).toBe(2);
      expect(entries.has(realEntry)).toBe(true);
    } finally {
      checks.mockRestore();
    }
  });

  it('refuses tampered signatures, authenticator data and client data (step 21)', async () => {
    const good = signedAssertion(e);
    const cases = [
      mutate(good, (r) => (r.response.signature = flipByte(r.response.signature, -1))),
      mutate(good, (r) => (r.response.signature = flipByte(r.response.signature, 10))),
      mutate(good, (r) => (r.response.authenticatorData = flipByte(r.response.authenticatorData, 36))),
      mutate(good, (r) => (r.response.authenticatorData = flipByte(r.response.authenticatorData, 32) /* UP off */)),
      mutate(good, (r) => (r.response.clientDataJSON = b64u(Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN, crossOrigin: false, x: 1 }))))),
      signedAssertion(e, { signer: other }),
    ];
    for (const response of cases) {
      const { own } = await both(inputFor(e, response));
      expect(own).toMatchObject({ ok: false, code: 'ceremony_failed' });
    }
  });

  it('refuses a counter that did not increase, and accepts counters that are both zero (step 22)', async () => {
    expect((await both(inputFor(e, signedAssertion(e, { signCount: 5 }), { counter: 5 }))).own).toEqual({ ok: false, code: 'counter_regressed', signatureValid: true });
    expect((await both(inputFor(e, signedAssertion(e, { signCount: 3 }), { counter: 5 }))).own).toEqual({ ok: false, code: 'counter_regressed', signatureValid: true });
    expect((await both(inputFor(e, signedAssertion(e, { signCount: 0 }), { counter: 5 }))).own).toEqual({ ok: false, code: 'counter_regressed', signatureValid: true });
    expect((await both(inputFor(e, signedAssertion(e, { signCount: 0 }), { counter: 0 }))).own).toEqual({ ok: true, counter: 0, backedUp: false, backupEligible: false, userVerified: true, origin: ORIGIN });
    expect((await both(inputFor(e, signedAssertion(e, { signCount: 6 }), { counter: 5 }))).own).toMatchObject({ ok: true, counter: 6 });
    expect((await both(inputFor(e, signedAssertion(e, { signCount: 0xffffffff }), { counter: 5 }))).own).toMatchObject({ ok: true, counter: 0xffffffff });
  });

  it('accepts extension outputs that are one CBOR map, and refuses anything else after the fixed fields', async () => {
    const extensions = encodeCbor(new Map<string, number | Uint8Array>([['credProtect', 2]]));
    expect((await both(inputFor(e, signedAssertion(e, { flags: 0x85, extra: extensions })))).own.ok).toBe(true);
    for (const v of [
      { flags: 0x05, extra: extensions }, // no ED flag, leftover bytes
      { flags: 0x85, extra: Buffer.concat([extensions, Buffer.from([0])]) }, // trailing byte after the map
      { flags: 0x85, extra: Buffer.from([0xa1, 0x61]) }, // truncated map
      { flags: 0x85 }, // ED with nothing
    ]) {
      expect((await both(inputFor(e, signedAssertion(e, v)))).own.ok).toBe(false);
    }
  });

  it('refuses malformed responses', async () => {
    const good = signedAssertion(e);
    const cases: AuthenticationResponseJSON[] = [
      mutate(good, (r) => (r.response.authenticatorData = b64u(Buffer.from(r.response.authenticatorData, 'base64url').subarray(0, 36)))),
      mutate(good, (r) => (r.response.authenticatorData = '')),
      mutate(good, (r) => (r.response.signature = '')),
      mutate(good, (r) => (r.response.signature = 'not base64url!')),
      mutate(good, (r) => (r.response.clientDataJSON = b64u('not json'))),
      mutate(good, (r) => (r.response.clientDataJSON = b64u('null'))),
      mutate(good, (r) => (r.response.clientDataJSON = b64u('"webauthn.get"'))),
      mutate(good, (r) => (r.response.clientDataJSON = '')),
      mutate(good, (r) => (r.rawId = b64u('another id'))),
      // §5.1: rawId is required (responseChecks.ts checkCredentialIds, shared with registration and /fido2).
      mutate(good, (r) => delete (r as Partial<AuthenticationResponseJSON>).rawId),
      mutate(good, (r) => (r.id = '')),
      mutate(good, (r) => ((r as { type: string }).type = 'password')),
      mutate(good, (r) => ((r.response as { userHandle?: unknown }).userHandle = 42)),
      mutate(good, (r) => delete (r as Partial<AuthenticationResponseJSON>).response),
      signedAssertion(e, { clientDataBytes: Buffer.from([0xff, 0xfe, 0x7b]) }),
      signedAssertion(e, { clientData: { type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN, tokenBinding: { status: 'bogus' } } }),
    ];
    for (const response of cases) expect((await both(inputFor(e, response))).own.ok).toBe(false);
  });

  it('refuses when the stored public key is unusable', async () => {
    const response = signedAssertion(e);
    for (const public_key of ['', b64u('garbage'), b64u(encodeCbor(new Map([[1, 2]])))]) {
      expect((await both(inputFor(e, response, { public_key }))).own.ok).toBe(false);
    }
  });

  it('uses the new key when a credential id comes back with another public key', async () => {
    const replacement = await enrol(alg);
    const response = signedAssertion(e);
    expect((await verifyAssertion(inputFor(e, response))).ok).toBe(true); // cached under e's credential id
    const swapped = inputFor(e, response, { public_key: replacement.record.public_key });
    expect((await both(swapped)).own.ok).toBe(false);
    expect((await verifyAssertion(inputFor(e, signedAssertion(e, { signer: { alg, key: replacement.privateKey } }), { public_key: replacement.record.public_key }))).ok).toBe(true);
  });
});

describe('verifyAssertion beyond the library', () => {
  let e: Enrolled;
  beforeAll(async () => {
    e = await enrol(-7);
  });

  // The library does not look at crossOrigin/topOrigin; Latchkey's pages can't be framed, so it refuses both (steps 13–14).
  it('refuses a cross-origin or framed ceremony', async () => {
    for (const extra of [
      { crossOrigin: true },
      { crossOrigin: true, topOrigin: 'https://evil.example.com' },
      { crossOrigin: false, topOrigin: 'https://evil.example.com' },
      { topOrigin: ORIGIN },
      { crossOrigin: 'true' },
    ]) {
      const response = signedAssertion(e, { clientData: { type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN, ...extra } });
      expect(await verifyAssertion(inputFor(e, response))).toMatchObject({ ok: false, code: 'ceremony_failed' });
    }
    // Control: the same response without them holds.
    const plain = signedAssertion(e, { clientData: { type: 'webauthn.get', challenge: CHALLENGE, origin: ORIGIN, crossOrigin: false } });
    expect((await verifyAssertion(inputFor(e, plain))).ok).toBe(true);
  });

  // §6.3.3: authenticatorGetAssertion never includes attested credential data.
  it('refuses authenticator data that claims attested credential data', async () => {
    expect((await verifyAssertion(inputFor(e, signedAssertion(e, { flags: 0x45 })))).ok).toBe(false);
  });

  it('refuses an ECDSA signature that is not DER', async () => {
    const good = signedAssertion(e);
    const der = Buffer.from(good.response.signature, 'base64url');
    const withTrailingByte = mutate(good, (r) => (r.response.signature = b64u(Buffer.concat([der, Buffer.from([0])]))));
    expect((await verifyAssertion(inputFor(e, withTrailingByte))).ok).toBe(false);
  });
});

describe('COSE keys', () => {
  it('builds verifiers for every algorithm a stored passkey may use, and refuses mismatched parameters', () => {
    const ec = (curve: string, crv: number, alg: number, size: number) => {
      const spki = generateKeyPairSync('ec', { namedCurve: curve }).publicKey.export({ format: 'der', type: 'spki' });
      const point = spki.subarray(spki.length - (2 * size + 1));
      return encodeCbor(new Map<number, number | Uint8Array>([[1, 2], [3, alg], [-1, crv], [-2, point.subarray(1, 1 + size)], [-3, point.subarray(1 + size)]]));
    };
    expect(credentialVerifierFromCose(ec('P-256', 1, -7, 32)).alg).toBe(-7);
    expect(credentialVerifierFromCose(ec('P-384', 2, -35, 48)).alg).toBe(-35);
    expect(credentialVerifierFromCose(ec('P-521', 3, -36, 66)).alg).toBe(-36);
    // WebAuthn L3 §5.8.5: ES256 keys are P-256.
    expect(() => credentialVerifierFromCose(ec('P-384', 2, -7, 48))).toThrow(/crv/);
    // A point that is not on the curve.
    const offCurve = encodeCbor(new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.alloc(32, 1)], [-3, Buffer.alloc(32, 2)]]));
    expect(() => credentialVerifierFromCose(offCurve)).toThrow();
    expect(() => credentialVerifierFromCose(encodeCbor(new Map<number, number>([[1, 2], [3, -47]])))).toThrow(/unsupported alg/);
    expect(() => credentialVerifierFromCose(encodeCbor(new Map<number, number>([[1, 3], [3, -7]])))).toThrow(/kty/);
  });

  it('refuses RSA keys whose checks would cost milliseconds: a modulus outside 2048–4096 bits or an exponent other than 65537', () => {
    const rsa = (n: Buffer, e: Buffer) => encodeCbor(new Map<number, number | Uint8Array>([[1, 3], [3, -257], [-1, n], [-2, e]]));
    const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    const n = Buffer.from(jwk.n!, 'base64url');
    const e = Buffer.from(jwk.e!, 'base64url');
    expect(credentialVerifierFromCose(rsa(n, e)).alg).toBe(-257);
    // A leading zero byte does not count as a bit.
    expect(credentialVerifierFromCose(rsa(Buffer.concat([Buffer.alloc(1), n]), Buffer.concat([Buffer.alloc(2), e]))).alg).toBe(-257);
    // One byte short: under 2,048 bits whatever the next byte holds.
    expect(() => credentialVerifierFromCose(rsa(n.subarray(1), e))).toThrow(/modulus of \d+ bits \(2048 to 4096 allowed\)/);
    expect(() => credentialVerifierFromCose(rsa(Buffer.concat([Buffer.from([1]), Buffer.alloc(512, 0xff)]), e))).toThrow(/4097 bits/);
    expect(() => credentialVerifierFromCose(rsa(n, Buffer.from([3])))).toThrow(/65537/);
    expect(() => credentialVerifierFromCose(rsa(n, Buffer.alloc(384, 0xff)))).toThrow(/65537/);
  });

  // Every algorithm the FIDO conformance endpoints register: the library's verifySignature must agree.
  it.each([
    ['ES256', -7, { curve: 'P-256', crv: 1, size: 32, hash: 'sha256' }],
    ['ES384', -35, { curve: 'P-384', crv: 2, size: 48, hash: 'sha384' }],
    ['ES512', -36, { curve: 'P-521', crv: 3, size: 66, hash: 'sha512' }],
    ['EdDSA', -8, {}],
    ['RS256', -257, { hash: 'sha256' }],
    ['RS384', -258, { hash: 'sha384' }],
    ['RS512', -259, { hash: 'sha512' }],
    ['RS1', -65535, { hash: 'sha1' }],
    ['PS256', -37, { hash: 'sha256', salt: 32 }],
    ['PS384', -38, { hash: 'sha384', salt: 48 }],
    ['PS512', -39, { hash: 'sha512', salt: 64 }],
  ] as const)('verifies %s signatures as the library does', async (_name, alg, p: { curve?: string; crv?: number; size?: number; hash?: string; salt?: number }) => {
    let cose: Buffer;
    let signData: (data: Buffer) => Buffer;
    if (p.curve) {
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: p.curve });
      const spki = publicKey.export({ format: 'der', type: 'spki' });
      const point = spki.subarray(spki.length - (2 * p.size! + 1));
      cose = encodeCbor(new Map<number, number | Uint8Array>([[1, 2], [3, alg], [-1, p.crv!], [-2, point.subarray(1, 1 + p.size!)], [-3, point.subarray(1 + p.size!)]]));
      signData = (data) => sign(p.hash!, data, privateKey);
    } else if (alg === -8) {
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const spki = publicKey.export({ format: 'der', type: 'spki' });
      cose = encodeCbor(new Map<number, number | Uint8Array>([[1, 1], [3, -8], [-1, 6], [-2, spki.subarray(spki.length - 32)]]));
      signData = (data) => sign(null, data, privateKey);
    } else {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const jwk = publicKey.export({ format: 'jwk' }) as { n: string; e: string };
      cose = encodeCbor(new Map<number, number | Uint8Array>([[1, 3], [3, alg], [-1, Buffer.from(jwk.n, 'base64url')], [-2, Buffer.from(jwk.e, 'base64url')]]));
      signData = (data) =>
        p.salt ? sign(p.hash!, data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: p.salt }) : sign(p.hash!, data, privateKey);
    }
    const verifier = credentialVerifierFromCose(cose);
    const data = Buffer.from('authenticator data || client data hash');
    const signature = signData(data);
    const tampered = Buffer.concat([data, Buffer.from([0])]);
    for (const [d, expected] of [[data, true], [tampered, false]] as const) {
      expect(await verifier.verify(d, signature)).toBe(expected);
      expect(await verifySignature({ signature: new Uint8Array(signature), data: new Uint8Array(d), credentialPublicKey: new Uint8Array(cose) })).toBe(expected);
    }
  });

  it('decodes only strict CBOR', () => {
    expect(decodeCbor(Buffer.from([0xa2, 0x01, 0x02, 0x20, 0x41, 0x07]))).toEqual(new Map<number, number | Uint8Array>([[1, 2], [-1, Buffer.from([7])]]));
    expect(() => decodeCbor(Buffer.from([0xa2, 0x01, 0x02, 0x01, 0x03]))).toThrow(/duplicate/);
    expect(() => decodeCbor(Buffer.from([0x5f, 0x41, 0x00, 0xff]))).toThrow(/indefinite/);
    expect(() => decodeCbor(Buffer.from([0xf9, 0x3c, 0x00]))).toThrow(/floating/);
    expect(() => decodeCbor(Buffer.from([0xc0, 0x00]))).toThrow(/tags/);
    expect(() => decodeCbor(Buffer.from([0x01, 0x02]))).toThrow(/trailing/);
    expect(() => decodeCbor(Buffer.from([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toThrow();
    expect(() => decodeCbor(Buffer.alloc(40, 0x81))).toThrow(/deeply/);
  });
});

describe('signature workers with a small key cache', () => {
  it('drops keys and imports them again, and keeps its worker through the collections that free dropped keys', async () => {
    const [a, b] = [await enrol(-7), await enrol(-7)];
    for (const [size, rounds] of [
      [0, 20],
      [1, GC_AFTER_EVICTIONS + 50],
    ] as const) {
      const signatures = new SignatureWorkerPool(size, 1);
      // a and b in turn: with room for one key or none, every check imports its key and (size 1) drops the other's.
      for (let i = 0; i < rounds; i += 50) {
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, j) => {
            const [own, other] = (i + j) % 2 ? [a, b] : [b, a];
            const response = signedAssertion(own);
            return Promise.all([verifyAssertion({ ...inputFor(own, response), signatures }), verifyAssertion({ ...inputFor(other, { ...response, id: other.credentialId, rawId: other.credentialId }), signatures })]);
          }),
        );
        for (const [right, wrong] of results) {
          expect(right.ok).toBe(true);
          expect(wrong).toMatchObject({ ok: false, signatureValid: false });
        }
      }
      // A worker that died would have had its checks done on the event loop instead, with the same answers.
      expect(signatures.deaths).toBe(0);
    }
  });
});

describe('signatures checked on the event loop (LATCHKEY_SIGNATURE_WORKERS=0)', () => {
  it('start no worker, give the same answers, and keep at most the key cache size of imported keys', async () => {
    const keys = [await enrol(-7), await enrol(-7), await enrol(-7)];
    const signatures = new SignatureWorkerPool(2, 0);
    for (let round = 0; round < 3; round++) {
      for (const [i, own] of keys.entries()) {
        const other = keys[(i + 1) % keys.length]!;
        const response = signedAssertion(own);
        expect(await verifyAssertion({ ...inputFor(own, response), signatures })).toMatchObject({ ok: true });
        // Another passkey's key under this credential id: the signature must not hold, cached key or not.
        expect(await verifyAssertion({ ...inputFor(other, { ...response, id: other.credentialId, rawId: other.credentialId }), signatures })).toMatchObject({ ok: false, signatureValid: false });
        expect(signatures.keysOnEventLoop).toBeLessThanOrEqual(2);
      }
    }
    expect(signatures.keysOnEventLoop).toBe(2);
    expect(signatures.running).toBe(0);
    signatures.clear();
    expect(signatures.keysOnEventLoop).toBe(0);

    const workers = new SignatureWorkerPool(2, 1);
    expect(await verifyAssertion({ ...inputFor(keys[0]!, signedAssertion(keys[0]!)), signatures: workers })).toMatchObject({ ok: true });
    expect(workers.running).toBe(1);
    expect(workers.keysOnEventLoop).toBe(0);
  });

  it('with no key cache (LATCHKEY_PASSKEY_KEY_CACHE=0), import every key for its one check and keep none', async () => {
    const keys = [await enrol(-7), await enrol(-8), await enrol(-257)];
    const signatures = new SignatureWorkerPool(0, 0);
    for (let round = 0; round < 2; round++) {
      for (const [i, own] of keys.entries()) {
        const other = keys[(i + 1) % keys.length]!;
        const response = signedAssertion(own);
        expect(await verifyAssertion({ ...inputFor(own, response), signatures })).toMatchObject({ ok: true });
        expect(await verifyAssertion({ ...inputFor(other, { ...response, id: other.credentialId, rawId: other.credentialId }), signatures })).toMatchObject({ ok: false, signatureValid: false });
        expect(signatures.keysOnEventLoop).toBe(0);
      }
    }
    // A P-256 key goes to the check as its DER: a stored point off the curve makes OpenSSL's decoder throw inside the
    // check, on the event loop and on a worker alike, and the answer is a signature that does not hold, not an error.
    const offCurve = b64u(encodeCbor(new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.alloc(32, 1)], [-3, Buffer.alloc(32, 2)]])));
    const worker = new SignatureWorkerPool(0, 1);
    for (const pool of [signatures, worker]) {
      const own = keys[0]!;
      expect(await verifyAssertion({ ...inputFor(own, signedAssertion(own)), signatures: pool })).toMatchObject({ ok: true });
      expect(await verifyAssertion({ ...inputFor(own, signedAssertion(own), { public_key: offCurve }), signatures: pool })).toMatchObject({ ok: false, signatureValid: false });
    }
    expect(worker.running).toBe(1);
    expect(worker.deaths).toBe(0);
  });
});
