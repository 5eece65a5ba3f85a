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
import { X509Certificate } from 'node:crypto';
import { SettingsService, type VerifiedRegistrationResponse } from '@simplewebauthn/server';
import { convertCertBufferToPEM, decodeAttestationObject, validateCertificatePath } from '@simplewebauthn/server/helpers';
import type { AttestationFacts } from './authenticatorPolicy.js';
import type { MetadataCatalogue, MetadataEntry } from './metadata/catalogue.js';

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
  // A real chain is a leaf, perhaps an intermediate or two, and the root; more is someone making work for us.
  if (x5c.length > MAX_CHAIN) return { verified: false };
  const chain = x5c.map((c) => Buffer.from(c));
  // FIDO Metadata Statement §4: "A trust anchor can be a root certificate, an intermediate CA certificate or even the
  // attestation certificate itself." Where x5c reaches an anchor the path ends there: the library's path validation
  // refuses a chain that holds its own anchor (as a duplicate), and skips it for a lone listed attestation
  // certificate (verifyAttestationWithMetadata's "self-referencing" case), whose signature the format's verifier
  // has already checked.
  const trusted = anchors.map(anchorOf).filter((a): a is Anchor => a !== undefined);
  const reached = chain.findIndex((c) => isAnchor(c, trusted));
  if (reached === 0) return verifiedAs(entry);
  const path = reached > 0 ? chain.slice(0, reached) : chain;
  const roots = reached > 0 ? [chain[reached]!] : anchors;
  // The library's path validation fetches the revocation list every certificate names before it checks the chain:
  // for certificates a client made up, a URL of its choosing. Check the signatures locally first, so only a chain
  // that leads to an anchor is ever looked up.
  if (!signedUpTo(path, roots)) return { verified: false };
  try {
    await validateCertificatePath(
      path.map((c) => convertCertBufferToPEM(c)),
      roots.map((c) => convertCertBufferToPEM(c)),
    );
  } catch {
    return { verified: false };
  }
  return verifiedAs(entry);
}

const MAX_CHAIN = 5;

/** Whether each certificate of `path` is signed by the next, and the last by one of `roots`. */
function signedUpTo(path: Buffer[], roots: Buffer[]): boolean {
  try {
    const certs = path.map((d) => new X509Certificate(d));
    for (let i = 0; i + 1 < certs.length; i++) if (!certs[i]!.checkIssued(certs[i + 1]!) || !certs[i]!.verify(certs[i + 1]!.publicKey)) return false;
    const last = certs.at(-1)!;
    return roots.some((r) => {
      const root = new X509Certificate(r);
      return last.checkIssued(root) && last.verify(root.publicKey);
    });
  } catch {
    return false;
  }
}

/**
 * Leave certificate paths to Latchkey (assessAttestation). @simplewebauthn/server validates apple, android-key and
 * android-safetynet statements against roots it bundles, and in doing so fetches the revocation lists named by the
 * certificates a client sent before it checks they chain anywhere. With no roots it verifies each format's statement
 * and skips the path; Latchkey then trusts a chain only as far as the FIDO metadata for its AAGUID. Process-wide
 * (the library's SettingsService): not for the FIDO conformance mode, which sets the roots its tool expects.
 */
export function leaveCertificatePathsToLatchkey(): void {
  for (const identifier of ['apple', 'android-key', 'android-safetynet', 'packed', 'tpm', 'fido-u2f'] as const) SettingsService.setRootCertificates({ identifier, certificates: [] });
}

/** A trust anchor is a name and a public key (RFC 5280 §6.1.1 d), not the bytes of one certificate that carries them. */
interface Anchor {
  der: Buffer;
  subject: string;
  spki: Buffer;
}

function anchorOf(der: Buffer): Anchor | undefined {
  try {
    const cert = new X509Certificate(der);
    return { der, subject: cert.subject, spki: cert.publicKey.export({ type: 'spki', format: 'der' }) };
  } catch {
    return undefined;
  }
}

/**
 * Whether `der` is one of the anchors: the same certificate, or one with the same subject and key (an authenticator
 * that issues its attestation certificate again, re-signed, as Chromium's virtual authenticator does, is still the
 * anchor the metadata names).
 */
function isAnchor(der: Buffer, anchors: Anchor[]): boolean {
  if (anchors.some((a) => a.der.equals(der))) return true;
  const cert = anchorOf(der);
  return cert !== undefined && anchors.some((a) => a.subject === cert.subject && a.spki.equals(cert.spki));
}

function verifiedAs(entry: MetadataEntry): AttestationFacts {
  return { verified: true, model: entry.description, ...(entry.certification ? { certification: entry.certification } : {}) };
}
