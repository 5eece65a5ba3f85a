/**
 * The software authenticator with real attestation statements:
 *
 * - `PackedAuthenticator`: "packed" (WebAuthn L3 §8.2). Self attestation by
 *   default (signed by the new credential's own key, no x5c); full (basic)
 *   attestation when given an attestation certificate chain
 *   (`packedAttestation()` issues one). A security key: `backupEligible: false`
 *   (the default), `attachment: 'cross-platform'`, its `aaguid`; a synced
 *   passkey: `backupEligible: true, backedUp: true`.
 * - `FidoU2fAuthenticator`: "fido-u2f" (§8.6), ES256 unless told otherwise.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import type { PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { convertCOSEtoPKCS, decodeAttestationObject, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import { encodeCbor } from './cbor.js';
import { SoftAuthenticator, type SoftAuthenticatorOptions, type SoftCredential } from './softAuthenticator.js';
import { attestationSubject, issueCertificate, type IssuedCertificate } from './x509.js';

export interface AttestationKey {
  privateKey: KeyObject;
  /** DER certificates, leaf first (the leaf holds the attestation public key). */
  x5c: Buffer[];
}

export type AttStmt = Map<string, string | number | Uint8Array | Uint8Array[]>;

/** A software authenticator whose registrations carry an attestation statement of one format. */
export abstract class AttestingAuthenticator extends SoftAuthenticator {
  protected abstract readonly fmt: string;
  protected abstract statement(credential: SoftCredential, authData: Buffer, clientDataHash: Buffer): AttStmt;

  override createCredential(options: PublicKeyCredentialCreationOptionsJSON, overrides: { origin?: string; rpId?: string } = {}): RegistrationResponseJSON {
    const created = super.createCredential(options, overrides);
    const credential = this.credentials.get(created.id)!;
    const authData = Buffer.from(decodeAttestationObject(new Uint8Array(Buffer.from(created.response.attestationObject, 'base64url'))).get('authData'));
    const clientDataHash = createHash('sha256').update(Buffer.from(created.response.clientDataJSON, 'base64url')).digest();
    const attestationObject = encodeCbor(
      new Map<string, string | Uint8Array | AttStmt>([
        ['fmt', this.fmt],
        ['attStmt', this.statement(credential, authData, clientDataHash)],
        ['authData', authData],
      ]) as Parameters<typeof encodeCbor>[0],
    );
    return { ...created, response: { ...created.response, attestationObject: attestationObject.toString('base64url') } };
  }
}

export interface PackedAttestation {
  root: IssuedCertificate;
  leaf: IssuedCertificate;
  /** The leaf's key and x5c [leaf], as PackedAuthenticator takes them for full attestation. */
  key: AttestationKey;
}

/**
 * A "packed" full attestation chain: a root (given, or a new test root) and a leaf meeting WebAuthn L3 §8.2.1 —
 * version 3; subject C, O, OU "Authenticator Attestation" and CN `model`; not a CA; id-fido-gen-ce-aaguid naming
 * `aaguid`. Put `root.der` in the model's metadata statement to have it verify.
 */
export function packedAttestation(options: { aaguid: string; model: string; root?: IssuedCertificate }): PackedAttestation {
  const root = options.root ?? issueCertificate({ subject: { C: 'US', O: 'Latchkey Test Authenticators', CN: 'Test Attestation Root' }, ca: true });
  const leaf = issueCertificate({ subject: attestationSubject(options.model), issuer: root, aaguid: Buffer.from(options.aaguid.replace(/-/g, ''), 'hex') });
  return { root, leaf, key: { privateKey: leaf.privateKey, x5c: [leaf.der] } };
}

export class PackedAuthenticator extends AttestingAuthenticator {
  protected readonly fmt = 'packed';

  constructor(
    options: SoftAuthenticatorOptions,
    private readonly attestationKey?: AttestationKey,
    /** Self attestation: the `alg` the statement claims, when it should not be the credential's (a malformed statement). */
    private readonly statementAlg?: number,
  ) {
    super(options);
  }

  protected statement(credential: SoftCredential, authData: Buffer, clientDataHash: Buffer): AttStmt {
    const signed = Buffer.concat([authData, clientDataHash]);
    if (this.attestationKey) {
      // Full attestation: ES256 by the attestation key, whatever the credential's algorithm.
      return new Map<string, number | Uint8Array | Uint8Array[]>([
        ['alg', -7],
        ['sig', sign('sha256', signed, this.attestationKey.privateKey)],
        ['x5c', this.attestationKey.x5c],
      ]);
    }
    const sig = credential.alg === -8 ? sign(null, signed, credential.privateKey) : sign('sha256', signed, credential.privateKey);
    return new Map<string, number | Uint8Array>([
      ['alg', this.statementAlg ?? credential.alg],
      ['sig', sig],
    ]);
  }
}

export class FidoU2fAuthenticator extends AttestingAuthenticator {
  protected readonly fmt = 'fido-u2f';

  constructor(
    options: Omit<SoftAuthenticatorOptions, 'aaguid'>,
    private readonly attestationKey: AttestationKey,
  ) {
    // U2F authenticators have no AAGUID and only P-256 keys; `alg` makes one that breaks that rule (§8.6).
    super({ alg: -7, ...options, aaguid: '00000000-0000-0000-0000-000000000000' });
  }

  protected statement(_credential: SoftCredential, authData: Buffer, clientDataHash: Buffer): AttStmt {
    const parsed = parseAuthenticatorData(new Uint8Array(authData));
    const signed = Buffer.concat([
      Buffer.from([0x00]),
      Buffer.from(parsed.rpIdHash),
      clientDataHash,
      Buffer.from(parsed.credentialID!),
      Buffer.from(convertCOSEtoPKCS(parsed.credentialPublicKey!)),
    ]);
    return new Map<string, Uint8Array | Uint8Array[]>([
      ['sig', sign('sha256', signed, this.attestationKey.privateKey)],
      ['x5c', this.attestationKey.x5c],
    ]);
  }
}
