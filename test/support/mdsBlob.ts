/**
 * FIDO metadata BLOBs for tests, signed the way the FIDO Alliance signs MDS3
 * (FIDO Metadata Service v3 §3.1.7): a JWT, ES256 here, whose header carries
 * the signing certificate and its chain in `x5c` (standard base64 DER, as MDS
 * does), rooted at a test root instead of GlobalSign's. Tests point
 * LATCHKEY_FIDO_METADATA_ROOT at {@link writeTestRoot}'s file; nothing here
 * reaches the network (the certificates have no CRL distribution points).
 */
import { sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { AuthenticatorStatus, MDSJWTPayload, MetadataBLOBPayloadEntry, MetadataStatement } from '@simplewebauthn/server';
import { issueCertificate, type IssuedCertificate } from './x509.js';

export interface MdsSigner {
  root: IssuedCertificate;
  /** The certificate whose key signs BLOBs (issued by `root`). */
  signer: IssuedCertificate;
}

/** A test root CA and a BLOB-signing certificate it issued. */
export function createMdsSigner(name = 'Latchkey Test MDS'): MdsSigner {
  const root = issueCertificate({ subject: { C: 'GB', O: 'Latchkey Tests', CN: `${name} Root` }, ca: true });
  // The FIDO Alliance's signing certificate's name, under a test root (config.fidoMetadataSigner).
  const signer = issueCertificate({ subject: { C: 'US', O: 'FIDO ALLIANCE, INC.', CN: 'mds.fidoalliance.org' }, issuer: root });
  return { root, signer };
}

/** The root as PEM, the format of LATCHKEY_FIDO_METADATA_ROOT. */
export function pemOf(cert: IssuedCertificate): string {
  const b64 = cert.der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}

export function writeTestRoot(path: string, ...roots: IssuedCertificate[]): string {
  writeFileSync(path, roots.map(pemOf).join(''));
  return path;
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Sign `payload` as an MDS BLOB (ES256; JWS wants the raw r||s signature, IEEE P1363). */
export function signMdsBlob(signer: MdsSigner, payload: MDSJWTPayload): string {
  const header = { alg: 'ES256', typ: 'JWT', x5c: [signer.signer.der.toString('base64')] };
  const input = `${b64url(header)}.${b64url(payload)}`;
  const signature = sign('sha256', Buffer.from(input), { key: signer.signer.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** A date `days` from now as MDS writes it (YYYY-MM-DD). */
export function dayFromNow(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

export { metadataStatement } from './metadataStatements.js';

/** A BLOB entry for a statement with these status reports (oldest first, as MDS lists them). */
export function blobEntry(statement: MetadataStatement, statuses: AuthenticatorStatus[] = ['FIDO_CERTIFIED_L1']): MetadataBLOBPayloadEntry {
  return {
    aaguid: statement.aaguid,
    metadataStatement: statement,
    statusReports: statuses.map((status) => ({ status, effectiveDate: dayFromNow(-30) })),
    timeOfLastStatusChange: dayFromNow(-30),
  };
}

/** A BLOB payload: serial `no`, the next update in 30 days unless given. */
export function blobPayload(no: number, entries: MetadataBLOBPayloadEntry[], nextUpdate = dayFromNow(30)): MDSJWTPayload {
  return { legalHeader: 'Test metadata: not issued by the FIDO Alliance.', no, nextUpdate, entries };
}
