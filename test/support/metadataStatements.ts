/**
 * FIDO metadata for tests: a FIDO2 metadata statement (FIDO Metadata Statement
 * v3.0 §4) for a test authenticator, and a MetadataCatalogue of such entries
 * with their status reports, as a verified BLOB would give it. Signed BLOBs are
 * another helper's; this is the catalogue without the JWT.
 */
import type { AuthenticatorStatus, MetadataStatement } from '@simplewebauthn/server';
import { MetadataCatalogue } from '../../src/webauthn/metadata/catalogue.js';

export interface StatementOptions {
  aaguid: string;
  /** The model's name ("Test Security Key"). */
  description: string;
  /** DER certificates the model's attestation chains to (none: a statement no attestation can verify to). */
  attestationRootCertificates?: Buffer[];
  /** Default ['basic_full']; a TPM's is ['attca']. */
  attestationTypes?: MetadataStatement['attestationTypes'];
  /** Default ES256 (secp256r1_ecdsa_sha256_raw); RS256 keys are 'rsassa_pkcsv15_sha256_raw'. */
  authenticationAlgorithms?: MetadataStatement['authenticationAlgorithms'];
  authenticatorGetInfo?: MetadataStatement['authenticatorGetInfo'];
}

/** A valid FIDO2 metadata statement: a roaming hardware key with a PIN or fingerprint. */
export function metadataStatement(options: StatementOptions): MetadataStatement {
  const algorithms = options.authenticationAlgorithms ?? ['secp256r1_ecdsa_sha256_raw'];
  return {
    legalHeader: 'Test metadata: not issued by the FIDO Alliance.',
    aaguid: options.aaguid,
    description: options.description,
    authenticatorVersion: 1,
    protocolFamily: 'fido2',
    schema: 3,
    upv: [{ major: 1, minor: 1 }, { major: 1, minor: 0 }],
    authenticationAlgorithms: algorithms,
    publicKeyAlgAndEncodings: algorithms.map((a) => (a.startsWith('rsa') ? 'rsa_2048_raw' : 'cose')),
    attestationTypes: options.attestationTypes ?? ['basic_full'],
    userVerificationDetails: [[{ userVerificationMethod: 'passcode_external' }], [{ userVerificationMethod: 'fingerprint_internal' }]],
    keyProtection: ['hardware', 'secure_element'],
    matcherProtection: ['on_chip'],
    attachmentHint: ['external', 'wired'],
    tcDisplay: [],
    // Standard base64 of the DER, as the BLOB carries them (not base64url, not PEM).
    attestationRootCertificates: (options.attestationRootCertificates ?? []).map((der) => der.toString('base64')),
    ...(options.authenticatorGetInfo ? { authenticatorGetInfo: options.authenticatorGetInfo } : {}),
  };
}

export interface CatalogueEntry {
  statement: MetadataStatement;
  statusReports?: { status: AuthenticatorStatus; effectiveDate?: string }[];
}

/** A catalogue of these entries, through MetadataCatalogue.fromPayload as a verified BLOB's would be built. */
export function catalogueWith(entries: CatalogueEntry[], blob: { no?: number; nextUpdate?: string } = {}): MetadataCatalogue {
  return MetadataCatalogue.fromPayload({
    no: blob.no ?? 1,
    nextUpdate: blob.nextUpdate ?? '2099-01-01',
    entries: entries.map((e) => ({
      aaguid: e.statement.aaguid!,
      metadataStatement: e.statement,
      statusReports: e.statusReports ?? [],
      timeOfLastStatusChange: '2024-01-01',
    })),
  });
}
