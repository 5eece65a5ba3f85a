/**
 * Verify a FIDO metadata BLOB (MDS3: the JWT the FIDO Alliance publishes at
 * https://mds3.fidoalliance.org/) before anything in it is trusted. The chain
 * and signature are checked by @simplewebauthn/server's own `verifyMDSBlob`
 * (its path validation against the 'mds' roots, then the JWT signature with
 * the leaf certificate); here we only choose the roots, check the shape first
 * so a wrong file gets a plain message, and apply FIDO MDS3 §3.1.8's rules on
 * dates and serial numbers. A refused BLOB changes nothing: the caller keeps
 * the previous one.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SettingsService, type MDSJWTPayload } from '@simplewebauthn/server';
import { verifyMDSBlob } from '@simplewebauthn/server/helpers';
import { MetadataCatalogue } from './catalogue.js';

/** A BLOB Latchkey will not use; the message says why, for the operator. */
export class MetadataBlobRefused extends Error {
  constructor(
    message: string,
    /** Another instance kept this very BLOB (or a newer one) first: nothing is wrong with it. */
    readonly alreadyKept = false,
  ) {
    super(message);
    this.name = 'MetadataBlobRefused';
  }
}

/** The PEM certificates in a file (LATCHKEY_FIDO_METADATA_ROOT); throws naming the file when there is none or one is unreadable. */
export function readMetadataRoots(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new Error(`${path} holds no PEM certificate`);
  for (const pem of pems) {
    try {
      new X509Certificate(pem);
    } catch {
      throw new Error(`${path} holds a certificate that cannot be read`);
    }
  }
  return pems.map((p) => `${p}\n`);
}

export interface VerifiedBlob {
  catalogue: MetadataCatalogue;
  payload: MDSJWTPayload;
}

export interface VerifyOptions {
  /** PEM roots the BLOB must chain to (readMetadataRoots). */
  roots: string[];
  /** The common name its signing certificate must have (config.fidoMetadataSigner). */
  signer: string;
  /** The serial of the BLOB in use (0: none); a BLOB must be newer. */
  keptSerial: number;
  /** For the staleness check. */
  now: number;
}

function decodePart(part: string | undefined): unknown {
  if (!part || !/^[A-Za-z0-9_-]+$/.test(part)) return undefined;
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

const NOT_A_BLOB = 'this is not a FIDO metadata BLOB: expected a JWT (three base64url parts separated by dots) as downloaded from the FIDO Metadata Service';

/** Verify `blob`; throws {@link MetadataBlobRefused} with the reason when it must not be used. */
export async function verifyMetadataBlob(blob: string, options: VerifyOptions): Promise<VerifiedBlob> {
  const jwt = blob.trim();
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new MetadataBlobRefused(NOT_A_BLOB);
  const header = decodePart(parts[0]) as { x5c?: unknown } | undefined;
  const payload = decodePart(parts[1]) as Partial<MDSJWTPayload> | undefined;
  if (!header || !payload || !parts[2]) throw new MetadataBlobRefused(NOT_A_BLOB);
  if (!Array.isArray(header.x5c) || header.x5c.length === 0 || !header.x5c.every((c) => typeof c === 'string')) {
    throw new MetadataBlobRefused('the BLOB carries no signing certificate (its header has no x5c chain), so its origin cannot be checked');
  }
  if (!Number.isSafeInteger(payload.no) || typeof payload.nextUpdate !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(payload.nextUpdate) || !Array.isArray(payload.entries)) {
    throw new MetadataBlobRefused('the BLOB\'s payload is not FIDO metadata: it needs a serial number (no), a nextUpdate date (YYYY-MM-DD) and entries');
  }
  // The root is a public CA's: only the FIDO Alliance's own signing certificate may sign the metadata it trusts.
  const signedBy = commonNameOf(header.x5c[0] as string);
  if (signedBy !== options.signer) {
    throw new MetadataBlobRefused(`the BLOB is signed by ${signedBy ? `"${signedBy}"` : 'a certificate without a common name'}, not by "${options.signer}" (LATCHKEY_FIDO_METADATA_SIGNER)`);
  }
  // With no roots the library skips path validation altogether: never let that happen.
  if (options.roots.length === 0) throw new MetadataBlobRefused('no FIDO metadata root is configured (LATCHKEY_FIDO_METADATA_ROOT)');

  // SettingsService is process-wide; verifyMDSBlob reads the roots synchronously, before its first await, so
  // setting them immediately before the call is what this verification uses, even with others in flight.
  SettingsService.setRootCertificates({ identifier: 'mds', certificates: options.roots });
  try {
    await verifyMDSBlob(jwt);
  } catch (err) {
    throw new MetadataBlobRefused(refusalOf(err as Error));
  }

  // FIDO MDS3 §3.1.8 step 7 asks to download again when nextUpdate has passed: a BLOB past it is stale.
  const today = new Date(options.now).toISOString().slice(0, 10);
  if (payload.nextUpdate < today) {
    throw new MetadataBlobRefused(`the BLOB is stale: its nextUpdate (${payload.nextUpdate}) has passed; download the current one`);
  }
  // §3.1.8 step 6: a BLOB whose number is not greater than the last one's is ignored.
  if (payload.no! <= options.keptSerial) {
    throw new MetadataBlobRefused(`the BLOB is not newer than the one in use: its serial number is ${payload.no}, the one in use is ${options.keptSerial}`);
  }
  const verified = payload as MDSJWTPayload;
  return { catalogue: MetadataCatalogue.fromPayload(verified), payload: verified };
}

/** The CN of a base64 DER certificate (x5c), or undefined when it has none or can't be read. */
function commonNameOf(b64: string): string | undefined {
  try {
    const subject = new X509Certificate(Buffer.from(b64, 'base64')).subject;
    return subject.split('\n').find((line) => line.startsWith('CN='))?.slice(3);
  } catch {
    return undefined;
  }
}

/** The library's errors, in words for an operator (its causes can carry whole PEM certificates: not repeated). */
function refusalOf(err: Error): string {
  if (err.message === 'BLOB signature could not be verified') return 'the BLOB\'s signature is not valid: it was changed after it was signed, or not signed by its certificate';
  if (err.message === 'BLOB certificate path could not be validated') {
    const cause = (err.cause as Error | undefined)?.message ?? '';
    if (cause.startsWith('Found revoked certificate')) return 'a certificate in the BLOB\'s signing chain has been revoked';
    if (cause.startsWith('Found certificate out of validity period')) return 'a certificate in the BLOB\'s signing chain has expired or is not yet valid';
    if (cause.startsWith('No specified trust anchor was valid')) return 'the FIDO metadata root (LATCHKEY_FIDO_METADATA_ROOT) has expired or is not yet valid';
    return 'the BLOB\'s signing certificate does not chain to the FIDO metadata root (LATCHKEY_FIDO_METADATA_ROOT)';
  }
  return `the BLOB's signature could not be checked (${err.message.split('\n')[0]})`;
}
