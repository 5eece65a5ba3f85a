/**
 * The test authenticators' attestation statements are what a real key sends: @simplewebauthn/server's own
 * verifiers accept them untouched and refuse them tampered with, so tests built on them prove something.
 */
import { describe, expect, it } from 'vitest';
import { generateRegistrationOptions, verifyRegistrationResponse, type RegistrationResponseJSON } from '@simplewebauthn/server';
import { decodeAttestationObject, getCertificateInfo } from '@simplewebauthn/server/helpers';
import { encodeCbor } from './cbor.js';
import { PackedAuthenticator, packedAttestation } from './packedAuthenticator.js';
import { TpmAuthenticator, tpmAttestation } from './tpmAuthenticator.js';
import { attestationSubject, issueCertificate } from './x509.js';

const ORIGIN = 'https://id.example.test';
const RP_ID = 'id.example.test';
const AAGUID = '2c7d4c8e-6a1f-4d0b-9e3a-5b8f1c2d3e4f';

async function register(authenticator: PackedAuthenticator | TpmAuthenticator, tamper?: (response: RegistrationResponseJSON) => RegistrationResponseJSON) {
  const options = await generateRegistrationOptions({ rpName: 'Latchkey', rpID: RP_ID, userName: 'mary@example.test', attestationType: 'direct', supportedAlgorithmIDs: [-7, -257] });
  const created = authenticator.createCredential(options);
  const response = tamper ? tamper(created) : created;
  return verifyRegistrationResponse({ response, expectedChallenge: options.challenge, expectedOrigin: ORIGIN, expectedRPID: RP_ID, supportedAlgorithmIDs: [-7, -257] });
}

/** The registration with one attestation statement field changed. */
function withAttStmt(field: string, change: (value: Uint8Array) => Uint8Array) {
  return (response: RegistrationResponseJSON): RegistrationResponseJSON => {
    const decoded = decodeAttestationObject(new Uint8Array(Buffer.from(response.response.attestationObject, 'base64url')));
    const attStmt = decoded.get('attStmt') as unknown as Map<string, Uint8Array>;
    attStmt.set(field, change(attStmt.get(field)!));
    const object = encodeCbor(new Map<string, string | Uint8Array | Map<string, Uint8Array>>([['fmt', decoded.get('fmt')], ['attStmt', attStmt], ['authData', decoded.get('authData')]]) as Parameters<typeof encodeCbor>[0]);
    return { ...response, response: { ...response.response, attestationObject: object.toString('base64url') } };
  };
}

/** Refused: the library throws, or (for a bad signature) answers not verified. */
async function expectRefused(registration: Promise<{ verified: boolean }>, thrown: RegExp) {
  const outcome = await registration.then(
    (r) => r.verified,
    (e: Error) => e.message,
  );
  if (typeof outcome === 'string') expect(outcome).toMatch(thrown);
  else expect(outcome).toBe(false);
}

const flipLast = (b: Uint8Array) => {
  const copy = Buffer.from(b);
  copy[copy.length - 1]! ^= 0x01;
  return copy;
};

describe('TpmAuthenticator', () => {
  for (const { label, rsa, alg } of [
    { label: 'EC AIK, ES256 credential', rsa: false, alg: -7 as const },
    { label: 'RSA AIK, RS256 credential (as Windows Hello)', rsa: true, alg: -257 as const },
  ]) {
    it(`makes "tpm" attestation the library verifies: ${label}`, async () => {
      const tpm = tpmAttestation({ aaguid: AAGUID, rsa });
      const result = await register(new TpmAuthenticator({ origin: ORIGIN, aaguid: AAGUID, alg }, tpm.key));
      expect(result.verified).toBe(true);
      expect(result.registrationInfo?.fmt).toBe('tpm');
      expect(result.registrationInfo?.aaguid).toBe(AAGUID);
      expect(result.registrationInfo?.credentialDeviceType).toBe('singleDevice');
    });
  }

  it('issues an AIK certificate as §8.3.1 describes it', () => {
    const { aik } = tpmAttestation({ aaguid: AAGUID });
    const info = getCertificateInfo(new Uint8Array(aik.der));
    expect(info.version).toBe(2);
    expect(info.subject.combined).toBe('');
    expect(info.basicConstraintsCA).toBe(false);
  });

  it.each([
    ['sig', 'the AIK signature'],
    ['certInfo', 'certInfo (its last byte is the qualified name)'],
    ['pubArea', 'pubArea (the key it describes)'],
  ])('is refused when %s is tampered with: %s', async (field) => {
    const tpm = tpmAttestation({ aaguid: AAGUID });
    await expectRefused(register(new TpmAuthenticator({ origin: ORIGIN, aaguid: AAGUID }, tpm.key), withAttStmt(field, flipLast)), /TPM/);
  });

  it('is refused when the extraData does not bind this registration (signed, but for another clientDataHash)', async () => {
    const tpm = tpmAttestation({ aaguid: AAGUID });
    const auth = new TpmAuthenticator({ origin: ORIGIN, aaguid: AAGUID }, tpm.key);
    // A statement made for another registration, replayed on this one: authData differs (new credential id).
    const first = auth.createCredential((await generateRegistrationOptions({ rpName: 'Latchkey', rpID: RP_ID, userName: 'x@example.test', attestationType: 'direct' })));
    const firstStmt = decodeAttestationObject(new Uint8Array(Buffer.from(first.response.attestationObject, 'base64url'))).get('attStmt') as unknown as Map<string, Uint8Array>;
    await expect(register(auth, withAttStmt('certInfo', () => firstStmt.get('certInfo')!))).rejects.toThrow(/TPM/);
  });

  it('is refused when the AIK certificate names another AAGUID', async () => {
    const tpm = tpmAttestation({ aaguid: '00000000-0000-0000-0000-0000000000aa' });
    await expect(register(new TpmAuthenticator({ origin: ORIGIN, aaguid: AAGUID }, tpm.key))).rejects.toThrow(/id-fido-gen-ce-aaguid/);
  });

  it('is refused when the AIK certificate names an unknown TPM manufacturer', async () => {
    const tpm = tpmAttestation({ aaguid: AAGUID, manufacturer: 'id:12345678' });
    await expect(register(new TpmAuthenticator({ origin: ORIGIN, aaguid: AAGUID }, tpm.key))).rejects.toThrow(/manufacturer/);
  });
});

describe('PackedAuthenticator full attestation', () => {
  const root = issueCertificate({ subject: { C: 'US', O: 'Latchkey Test Authenticators', CN: 'Test Attestation Root' }, ca: true });

  it('makes a §8.2.1 leaf certificate the library verifies, with the AAGUID and a device-bound credential', async () => {
    const leaf = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: root, aaguid: Buffer.from(AAGUID.replace(/-/g, ''), 'hex') });
    const info = getCertificateInfo(new Uint8Array(leaf.der));
    expect(info.version).toBe(2);
    expect(info.basicConstraintsCA).toBe(false);
    expect(info.subject).toMatchObject({ C: 'US', O: 'Latchkey Test Authenticators', OU: 'Authenticator Attestation', CN: 'Test Security Key' });
    const result = await register(new PackedAuthenticator({ origin: ORIGIN, aaguid: AAGUID, backupEligible: false, attachment: 'cross-platform' }, { privateKey: leaf.privateKey, x5c: [leaf.der] }));
    expect(result.verified).toBe(true);
    expect(result.registrationInfo).toMatchObject({ fmt: 'packed', aaguid: AAGUID, credentialDeviceType: 'singleDevice', credentialBackedUp: false });
  });

  it('packedAttestation issues the same chain in one call', async () => {
    const chain = packedAttestation({ aaguid: AAGUID, model: 'Test Security Key', root });
    expect(getCertificateInfo(new Uint8Array(chain.leaf.der)).subject.OU).toBe('Authenticator Attestation');
    const result = await register(new PackedAuthenticator({ origin: ORIGIN, aaguid: AAGUID }, chain.key));
    expect(result.registrationInfo).toMatchObject({ fmt: 'packed', aaguid: AAGUID });
  });

  it('sets the backup flags of a synced passkey', async () => {
    const result = await register(new PackedAuthenticator({ origin: ORIGIN, backupEligible: true, backedUp: true }));
    expect(result.registrationInfo).toMatchObject({ credentialDeviceType: 'multiDevice', credentialBackedUp: true });
  });

  it('is refused when the leaf names another AAGUID', async () => {
    const leaf = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: root, aaguid: Buffer.alloc(16, 0xaa) });
    await expect(register(new PackedAuthenticator({ origin: ORIGIN, aaguid: AAGUID }, { privateKey: leaf.privateKey, x5c: [leaf.der] }))).rejects.toThrow(/id-fido-gen-ce-aaguid/);
  });
});
