/**
 * assessAttestation over real registrations: each test authenticator registers through @simplewebauthn/server's
 * verifyRegistrationResponse (attestation "direct"), and only a chain that leads to the roots the metadata gives for
 * the claimed AAGUID makes the model known.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { generateRegistrationOptions, MetadataService, verifyRegistrationResponse } from '@simplewebauthn/server';
import { FidoU2fAuthenticator, PackedAuthenticator } from '../../test/support/packedAuthenticator.js';
import { catalogueWith, metadataStatement } from '../../test/support/metadataStatements.js';
import { SoftAuthenticator } from '../../test/support/softAuthenticator.js';
import { TpmAuthenticator, tpmAttestation } from '../../test/support/tpmAuthenticator.js';
import { attestationSubject, issueCertificate, type IssuedCertificate } from '../../test/support/x509.js';
import { assessAttestation } from './attestation.js';
import type { MetadataCatalogue } from './metadata/catalogue.js';

const ORIGIN = 'https://id.example.test';
const RP_ID = 'id.example.test';
const KEY_AAGUID = '5b1f0c3e-8d2a-4f6b-9c7e-1a2b3c4d5e6f';
const TPM_AAGUID = '08987058-cadc-4b81-b6e1-30de50dcbe96';
const UNLISTED_AAGUID = 'd1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6';
const SURROGATE_AAGUID = 'e0f1a2b3-c4d5-4e6f-8a9b-0c1d2e3f4a5b';

const bytes = (aaguid: string) => Buffer.from(aaguid.replace(/-/g, ''), 'hex');
const rootNamed = (cn: string) => issueCertificate({ subject: { C: 'US', O: 'Latchkey Test Authenticators', CN: cn }, ca: true });

const root = rootNamed('Test Attestation Root');
const leaf = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: root, aaguid: bytes(KEY_AAGUID) });
const tpm = tpmAttestation({ aaguid: TPM_AAGUID, rsa: true });

const catalogue = catalogueWith([
  {
    statement: metadataStatement({ aaguid: KEY_AAGUID, description: 'Test Security Key', attestationRootCertificates: [root.der] }),
    statusReports: [
      { status: 'FIDO_CERTIFIED_L1', effectiveDate: '2023-01-01' },
      { status: 'FIDO_CERTIFIED_L2', effectiveDate: '2024-01-01' },
    ],
  },
  {
    statement: metadataStatement({
      aaguid: TPM_AAGUID,
      description: 'Test TPM',
      attestationRootCertificates: [tpm.root.der],
      attestationTypes: ['attca'],
      authenticationAlgorithms: ['rsassa_pkcsv15_sha256_raw'],
    }),
    statusReports: [{ status: 'FIDO_CERTIFIED', effectiveDate: '2022-01-01' }],
  },
  {
    // A model whose statement offers only surrogate basic attestation (self attestation) trusts no chain at all.
    statement: metadataStatement({ aaguid: SURROGATE_AAGUID, description: 'Surrogate Key', attestationRootCertificates: [root.der], attestationTypes: ['basic_surrogate'] }),
  },
]);

async function registered(authenticator: SoftAuthenticator) {
  const options = await generateRegistrationOptions({ rpName: 'Latchkey', rpID: RP_ID, userName: 'mary@example.test', attestationType: 'direct', supportedAlgorithmIDs: [-7, -257] });
  const result = await verifyRegistrationResponse({
    response: authenticator.createCredential(options),
    expectedChallenge: options.challenge,
    expectedOrigin: ORIGIN,
    expectedRPID: RP_ID,
    supportedAlgorithmIDs: [-7, -257],
  });
  // The library must accept every one of these: what differs is only what assessAttestation makes of it.
  expect(result.verified).toBe(true);
  return result.registrationInfo!;
}

async function assess(authenticator: SoftAuthenticator, with_: MetadataCatalogue = catalogue) {
  return assessAttestation(await registered(authenticator), with_);
}

const packedFull = (aaguid: string, cert: IssuedCertificate, chain: Buffer[] = [cert.der]) =>
  new PackedAuthenticator({ origin: ORIGIN, aaguid, attachment: 'cross-platform' }, { privateKey: cert.privateKey, x5c: chain });

describe('assessAttestation', () => {
  it('packed full attestation chained to the statement’s root: verified, with the model and its highest certification', async () => {
    expect(await assess(packedFull(KEY_AAGUID, leaf))).toEqual({ verified: true, model: 'Test Security Key', certification: 'FIDO_CERTIFIED_L2' });
  });

  it('tpm attestation chained (through an intermediate) to the statement’s root: verified; FIDO_CERTIFIED reads as L1', async () => {
    const info = await registered(new TpmAuthenticator({ origin: ORIGIN, aaguid: TPM_AAGUID, alg: -257 }, tpm.key));
    expect(info.fmt).toBe('tpm');
    expect(await assessAttestation(info, catalogue)).toEqual({ verified: true, model: 'Test TPM', certification: 'FIDO_CERTIFIED_L1' });
  });

  it('a model with no certification in its status reports: verified, without a certification', async () => {
    const uncertified = catalogueWith([{ statement: metadataStatement({ aaguid: KEY_AAGUID, description: 'Test Security Key', attestationRootCertificates: [root.der] }), statusReports: [{ status: 'NOT_FIDO_CERTIFIED' }] }]);
    expect(await assess(packedFull(KEY_AAGUID, leaf), uncertified)).toEqual({ verified: true, model: 'Test Security Key' });
  });

  it('packed full attestation chained to a different root: not verified', async () => {
    const stray = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: rootNamed('Somebody Else’s Root'), aaguid: bytes(KEY_AAGUID) });
    expect(await assess(packedFull(KEY_AAGUID, stray))).toEqual({ verified: false });
  });

  it('packed full attestation chained to an impostor root with the listed root’s very name: not verified', async () => {
    const impostor = rootNamed('Test Attestation Root');
    const forged = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: impostor, aaguid: bytes(KEY_AAGUID) });
    expect(await assess(packedFull(KEY_AAGUID, forged))).toEqual({ verified: false });
    // … even when the authenticator sends the impostor root along in x5c.
    expect(await assess(packedFull(KEY_AAGUID, forged, [forged.der, impostor.der]))).toEqual({ verified: false });
  });

  it('tpm attestation chained to another vendor’s root: not verified', async () => {
    const other = tpmAttestation({ aaguid: TPM_AAGUID, rsa: true });
    expect(await assess(new TpmAuthenticator({ origin: ORIGIN, aaguid: TPM_AAGUID, alg: -257 }, other.key))).toEqual({ verified: false });
  });

  it('packed self attestation, of a model the metadata lists: not verified', async () => {
    const info = await registered(new PackedAuthenticator({ origin: ORIGIN, aaguid: KEY_AAGUID }));
    expect(info.fmt).toBe('packed');
    expect(await assessAttestation(info, catalogue)).toEqual({ verified: false });
  });

  it('fido-u2f, chained to a listed root: not verified (no AAGUID, so no model)', async () => {
    const u2f = issueCertificate({ subject: { C: 'US', O: 'Latchkey Test Authenticators', CN: 'U2F Test Key' }, issuer: root });
    const info = await registered(new FidoU2fAuthenticator({ origin: ORIGIN }, { privateKey: u2f.privateKey, x5c: [u2f.der] }));
    expect(info.fmt).toBe('fido-u2f');
    expect(await assessAttestation(info, catalogue)).toEqual({ verified: false });
  });

  it('attestation "none", claiming a listed model: not verified', async () => {
    const info = await registered(new SoftAuthenticator({ origin: ORIGIN, aaguid: KEY_AAGUID }));
    expect(info.fmt).toBe('none');
    expect(await assessAttestation(info, catalogue)).toEqual({ verified: false });
  });

  it('an AAGUID the metadata does not list, with a chain to a listed root: not verified', async () => {
    const unlisted = issueCertificate({ subject: attestationSubject('Unlisted Key'), issuer: root, aaguid: bytes(UNLISTED_AAGUID) });
    expect(await assess(packedFull(UNLISTED_AAGUID, unlisted))).toEqual({ verified: false });
  });

  it('a statement with only basic_surrogate attestation, with a chain to its root: not verified', async () => {
    const surrogate = issueCertificate({ subject: attestationSubject('Surrogate Key'), issuer: root, aaguid: bytes(SURROGATE_AAGUID) });
    expect(await assess(packedFull(SURROGATE_AAGUID, surrogate))).toEqual({ verified: false });
  });

  it('an empty catalogue: nothing verifies', async () => {
    expect(await assess(packedFull(KEY_AAGUID, leaf), catalogueWith([]))).toEqual({ verified: false });
  });

  // FIDO Metadata Statement v3.0 §4 attestationRootCertificates: "A trust anchor can be a root certificate, an
  // intermediate CA certificate or even the attestation certificate itself."
  it('a trust anchor that is the attestation certificate itself: verified', async () => {
    const listed = catalogueWith([{ statement: metadataStatement({ aaguid: KEY_AAGUID, description: 'Test Security Key', attestationRootCertificates: [leaf.der] }) }]);
    expect(await assess(packedFull(KEY_AAGUID, leaf), listed)).toMatchObject({ verified: true });
  });

  it('an attestation certificate issued again, re-signed with the same subject and key as the listed one: verified; another key under that subject: not', async () => {
    const reissued = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: root, aaguid: bytes(KEY_AAGUID), keys: { privateKey: leaf.privateKey, publicKey: leaf.publicKey } });
    expect(reissued.der.equals(leaf.der)).toBe(false);
    const listed = catalogueWith([{ statement: metadataStatement({ aaguid: KEY_AAGUID, description: 'Test Security Key', attestationRootCertificates: [leaf.der] }) }]);
    expect(await assess(packedFull(KEY_AAGUID, reissued), listed)).toMatchObject({ verified: true });
    const otherKey = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: root, aaguid: bytes(KEY_AAGUID) });
    expect(await assess(packedFull(KEY_AAGUID, otherKey), listed)).toEqual({ verified: false });
  });

  it('a made-up chain naming a revocation list is refused without fetching it; a real chain to the anchor is looked up', async () => {
    const requests: string[] = [];
    const crlServer = createServer((req, res) => {
      requests.push(req.url ?? '');
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => crlServer.listen(0, '127.0.0.1', resolve));
    try {
      const crl = (path: string) => `http://127.0.0.1:${(crlServer.address() as AddressInfo).port}${path}`;
      const madeUpRoot = issueCertificate({ subject: { O: 'Nobody', CN: 'Made-up Root' }, ca: true, crlDistributionPoint: crl('/made-up-root') });
      const madeUp = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: madeUpRoot, aaguid: bytes(KEY_AAGUID), crlDistributionPoint: crl('/internal-admin') });
      expect(await assess(packedFull(KEY_AAGUID, madeUp, [madeUp.der, madeUpRoot.der]))).toEqual({ verified: false });
      expect(requests).toEqual([]);
      const real = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: root, aaguid: bytes(KEY_AAGUID), crlDistributionPoint: crl('/vendor.crl') });
      expect(await assess(packedFull(KEY_AAGUID, real))).toMatchObject({ verified: true });
      expect(requests).toEqual(['/vendor.crl']);
    } finally {
      await new Promise<void>((resolve) => crlServer.close(() => resolve()));
    }
  });

  it('a trust anchor that is an intermediate the authenticator also sends: verified', async () => {
    const listed = catalogueWith([{ statement: metadataStatement({ aaguid: TPM_AAGUID, description: 'Test TPM', attestationRootCertificates: [tpm.intermediate.der], attestationTypes: ['attca'], authenticationAlgorithms: ['rsassa_pkcsv15_sha256_raw'] }) }]);
    expect(await assess(new TpmAuthenticator({ origin: ORIGIN, aaguid: TPM_AAGUID, alg: -257 }, tpm.key), listed)).toMatchObject({ verified: true });
  });
});

describe('the test metadata statements', () => {
  afterAll(async () => {
    await MetadataService.initialize({ mdsServers: [], statements: [], verificationMode: 'permissive' });
  });

  it('are statements @simplewebauthn/server’s MetadataService accepts and checks registrations against', async () => {
    const statements = catalogue.all().map((e) => e.statement);
    await MetadataService.initialize({ mdsServers: [], statements, verificationMode: 'strict' });
    await expect(registered(packedFull(KEY_AAGUID, leaf))).resolves.toMatchObject({ aaguid: KEY_AAGUID });
    await expect(registered(new TpmAuthenticator({ origin: ORIGIN, aaguid: TPM_AAGUID, alg: -257 }, tpm.key))).resolves.toMatchObject({ aaguid: TPM_AAGUID });
    // With the statement in place the library itself refuses a chain to another root.
    const stray = issueCertificate({ subject: attestationSubject('Test Security Key'), issuer: rootNamed('Somebody Else’s Root'), aaguid: bytes(KEY_AAGUID) });
    await expect(registered(packedFull(KEY_AAGUID, stray))).rejects.toThrow(/metadata root certificates/);
  });
});
