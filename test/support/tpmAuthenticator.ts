/**
 * The software authenticator with "tpm" attestation (WebAuthn L3 §8.3), as a
 * TPM 2.0 platform authenticator (Windows Hello) sends it: the credential key
 * described as a TPMT_PUBLIC (pubArea), a TPMS_ATTEST of type
 * TPM_ST_ATTEST_CERTIFY over it (certInfo) whose extraData binds the
 * registration, signed by the TPM's attestation identity key (AIK), whose
 * certificate (§8.3.1) chains to a test TPM root.
 *
 * `tpmAttestation()` issues that chain; `TpmAuthenticator` signs with it.
 * Structures after TPM 2.0 Part 2 (TCG TPM2 r1.59): §10.12.8 TPMS_ATTEST,
 * §12.2.4 TPMT_PUBLIC.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { decodeCredentialPublicKey, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import { AttestingAuthenticator, type AttestationKey, type AttStmt } from './packedAuthenticator.js';
import type { SoftAuthenticatorOptions, SoftCredential } from './softAuthenticator.js';
import { issueCertificate, type IssuedCertificate } from './x509.js';

const TPM_GENERATED_VALUE = 0xff544347;
const TPM_ST_ATTEST_CERTIFY = 0x8017;
const TPM_ALG_RSA = 0x0001;
const TPM_ALG_SHA256 = 0x000b;
const TPM_ALG_NULL = 0x0010;
const TPM_ALG_ECC = 0x0023;
const TPM_ECC_NIST_P256 = 0x0003;
// fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | sign (Part 2 §8.3): a signing key made inside
// the TPM that never leaves it.
const OBJECT_ATTRIBUTES = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 10) | (1 << 18);

/** The FIDO conformance tools' TPM manufacturer (TCG vendor registry "id:FFFFF1D0"). */
export const TEST_TPM_MANUFACTURER = 'id:FFFFF1D0';

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
/** A TPM2B_*: a 16-bit size, then the bytes. */
const sized = (b: Uint8Array) => Buffer.concat([u16(b.length), Buffer.from(b)]);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** TPMT_PUBLIC for the credential key, read back from the COSE key in authData so the two can't differ. */
export function tpmPublicArea(cosePublicKey: Uint8Array): Buffer {
  const key = decodeCredentialPublicKey(new Uint8Array(cosePublicKey)) as Map<number, number | Uint8Array>;
  const kty = key.get(1);
  const head = (type: number) => Buffer.concat([u16(type), u16(TPM_ALG_SHA256), u32(OBJECT_ATTRIBUTES), sized(Buffer.alloc(0))]);
  if (kty === 2) {
    if (key.get(-1) !== 1) throw new Error('tpm test authenticator: only P-256 EC keys');
    // TPMS_ECC_PARMS: symmetric, scheme, curveID, kdf; then TPMS_ECC_POINT x, y.
    const params = Buffer.concat([u16(TPM_ALG_NULL), u16(TPM_ALG_NULL), u16(TPM_ECC_NIST_P256), u16(TPM_ALG_NULL)]);
    return Buffer.concat([head(TPM_ALG_ECC), params, sized(key.get(-2) as Uint8Array), sized(key.get(-3) as Uint8Array)]);
  }
  if (kty === 3) {
    const n = key.get(-1) as Uint8Array;
    const e = Buffer.from(key.get(-2) as Uint8Array);
    // TPMS_RSA_PARMS: symmetric, scheme, keyBits, exponent (0 means the default 65537).
    const exponent = e.equals(Buffer.from([1, 0, 1])) ? 0 : e.readUIntBE(0, e.length);
    const params = Buffer.concat([u16(TPM_ALG_NULL), u16(TPM_ALG_NULL), u16(n.length * 8), u32(exponent)]);
    return Buffer.concat([head(TPM_ALG_RSA), params, sized(n)]);
  }
  throw new Error(`tpm test authenticator: no TPM key type for COSE kty ${String(kty)}`);
}

/** TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY: the TPM certifies the key named `attestedName`. */
export function tpmCertInfo(extraData: Uint8Array, attestedName: Uint8Array, signerName: Uint8Array): Buffer {
  const clockInfo = Buffer.concat([Buffer.alloc(8, 0x01), u32(1), u32(1), Buffer.from([1])]); // clock, resetCount, restartCount, safe
  const firmwareVersion = Buffer.from('0001000200030004', 'hex');
  return Buffer.concat([
    u32(TPM_GENERATED_VALUE),
    u16(TPM_ST_ATTEST_CERTIFY),
    sized(signerName),
    sized(extraData),
    clockInfo,
    firmwareVersion,
    // TPMS_CERTIFY_INFO: name, qualifiedName
    sized(attestedName),
    sized(Buffer.concat([u16(TPM_ALG_SHA256), sha256(attestedName)])),
  ]);
}

export interface TpmAttestation {
  root: IssuedCertificate;
  intermediate: IssuedCertificate;
  aik: IssuedCertificate;
  /** The AIK's key and x5c [AIK certificate, intermediate], as TpmAuthenticator takes them. */
  key: AttestationKey;
}

/**
 * A TPM attestation chain: a root, an intermediate CA and an AIK certificate meeting §8.3.1 — version 3, empty
 * subject, the TPM's manufacturer, model and version in the subjectAltName (TCG OIDs 2.23.133.2.1–3), extended key
 * usage tcg-kp-AIKCertificate, not a CA, and id-fido-gen-ce-aaguid naming `aaguid`.
 */
export function tpmAttestation(options: {
  aaguid: string;
  /**
   * RSA keys throughout, as Windows Hello's TPMs and Microsoft's AIK CAs have. Throughout, because
   * @simplewebauthn/server 13 takes the AIK key's algorithm from the signature on its certificate (the issuer's), so an
   * RSA AIK under an EC CA fails verification.
   */
  rsa?: boolean;
  manufacturer?: string;
  root?: IssuedCertificate;
}): TpmAttestation {
  const keys = () => (options.rsa ? { keys: generateKeyPairSync('rsa', { modulusLength: 2048 }) } : {});
  const root = options.root ?? issueCertificate({ subject: { C: 'US', O: 'Latchkey Test TPM Vendor', CN: 'Test TPM Root' }, ca: true, ...keys() });
  const intermediate = issueCertificate({ subject: { C: 'US', O: 'Latchkey Test TPM Vendor', CN: 'Test TPM AIK CA' }, issuer: root, ca: true, ...keys() });
  const aik = issueCertificate({
    subject: {},
    issuer: intermediate,
    ...keys(),
    aaguid: Buffer.from(options.aaguid.replace(/-/g, ''), 'hex'),
    subjectAltNameDirectory: [
      { type: '2.23.133.2.1', value: options.manufacturer ?? TEST_TPM_MANUFACTURER },
      { type: '2.23.133.2.2', value: 'LKTEST' },
      { type: '2.23.133.2.3', value: 'id:00020008' },
    ],
    extendedKeyUsage: ['2.23.133.8.3'],
  });
  return { root, intermediate, aik, key: { privateKey: aik.privateKey, x5c: [aik.der, intermediate.der] } };
}

export class TpmAuthenticator extends AttestingAuthenticator {
  protected readonly fmt = 'tpm';

  constructor(
    /** A TPM makes ES256 or RS256 credentials; device-bound (backup eligible clear) unless told otherwise. */
    options: SoftAuthenticatorOptions & { alg?: -7 | -257 },
    private readonly attestationKey: AttestationKey,
  ) {
    super({ transports: ['internal'], ...options });
  }

  protected statement(_credential: SoftCredential, authData: Buffer, clientDataHash: Buffer): AttStmt {
    const pubArea = tpmPublicArea(parseAuthenticatorData(new Uint8Array(authData)).credentialPublicKey!);
    // attStmt.alg is the AIK's signature algorithm; extraData is attToBeSigned hashed with its hash (§8.3.2).
    const alg = this.attestationKey.privateKey.asymmetricKeyType === 'rsa' ? -257 : -7;
    const extraData = sha256(Buffer.concat([authData, clientDataHash]));
    // A TPM object's name is its nameAlg followed by the nameAlg digest of its TPMT_PUBLIC (Part 1 §16).
    const attestedName = Buffer.concat([u16(TPM_ALG_SHA256), sha256(pubArea)]);
    const signerName = Buffer.concat([u16(TPM_ALG_SHA256), sha256(this.attestationKey.x5c[0]!)]);
    const certInfo = tpmCertInfo(extraData, attestedName, signerName);
    return new Map<string, string | number | Uint8Array | Uint8Array[]>([
      ['ver', '2.0'],
      ['alg', alg],
      ['x5c', this.attestationKey.x5c],
      ['sig', sign('sha256', certInfo, this.attestationKey.privateKey)],
      ['certInfo', certInfo],
      ['pubArea', pubArea],
    ]);
  }
}
