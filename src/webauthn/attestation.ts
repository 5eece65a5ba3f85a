/**
 * What a registration's attestation proves about the authenticator's make and
 * model. @simplewebauthn/server has already verified the statement's signature
 * for its format (packed, tpm, android-key, apple, fido-u2f; WebAuthn L3 §8);
 * here its certificate chain is validated, with the library's own path
 * validation, against the roots the FIDO metadata gives for the AAGUID the
 * authenticator claims (FIDO Metadata Statement §4 attestationRootCertificates).
 * Only then is the AAGUID — and so the model, its certification and whether
 * its key can leave the device — known rather than claimed.
 *
 * Not verified: attestation "none", self attestation (signed by the new key
 * itself, which proves nothing about the model), a model the metadata doesn't
 * list (fido-u2f keys have no AAGUID), a chain that leads elsewhere.
 */
import type { VerifiedRegistrationResponse } from '@simplewebauthn/server';
import { convertCertBufferToPEM, decodeAttestationObject, validateCertificatePath } from '@simplewebauthn/server/helpers';
import type { AttestationFacts } from './authenticatorPolicy.js';
import type { MetadataCatalogue } from './metadata/catalogue.js';

type RegistrationInfo = NonNullable<VerifiedRegistrationResponse['registrationInfo']>;

/** Attestation types that carry a certificate chain to a vendor's root (FIDO Registry §3.6.3). */
const CHAINED_TYPES = new Set(['basic_full', 'attca', 'anonca']);

export async function assessAttestation(info: Pick<RegistrationInfo, 'fmt' | 'aaguid' | 'attestationObject'>, catalogue: MetadataCatalogue): Promise<AttestationFacts> {
  if (info.fmt === 'none') return { verified: false };
  const entry = catalogue.get(info.aaguid);
  if (!entry || !entry.statement.attestationTypes.some((t) => CHAINED_TYPES.has(t))) return { verified: false };
  const x5c = decodeAttestationObject(info.attestationObject).get('attStmt').get('x5c');
  // Self attestation: no chain.
  if (!Array.isArray(x5c) || x5c.length === 0) return { verified: false };
  const anchors = entry.statement.attestationRootCertificates.map((b64) => Buffer.from(b64, 'base64'));
  if (anchors.length === 0) return { verified: false };
  const chain = x5c.map((c: Uint8Array) => Buffer.from(c));
  // FIDO Metadata Statement §4: a trust anchor "can be a root certificate, an intermediate CA certificate or even the
  // attestation certificate itself". The library has checked the statement's signature with the leaf's key; a leaf
  // that is itself an anchor needs no path. Otherwise the path runs from the leaf to an anchor, without the anchor.
  if (!anchors.some((a) => a.equals(chain[0]!))) {
    const path = chain.filter((c) => !anchors.some((a) => a.equals(c)));
    try {
      await validateCertificatePath(
        path.map((c) => convertCertBufferToPEM(c)),
        anchors.map((a) => convertCertBufferToPEM(a)),
      );
    } catch {
      return { verified: false };
    }
  }
  return { verified: true, model: entry.description, ...(entry.certification ? { certification: entry.certification } : {}) };
}
