/**
 * Credential public keys, stored as COSE_Key (WebAuthn L3 §6.5.1.1), turned
 * into Node `KeyObject`s that verify assertion signatures with `node:crypto`
 * directly: no WebCrypto import per call (CONVENTIONS.md: importKey costs more
 * than the verify itself). Keys are built from JWK members, which Node imports
 * faster than SPKI DER; nothing is ever exported as JWK.
 */
import { createPublicKey, constants, verify, type KeyObject } from 'node:crypto';
import { decodeCbor, type CborValue } from './cbor.js';

/** COSE key parameters (RFC 9052 §7.1, RFC 9053 §7, RFC 8230 §4). */
const KTY = 1;
const ALG = 3;
const CRV = -1; // OKP/EC2 (RFC 9053 §7.1–7.2)
const X = -2;
const Y = -3;
const N = -1; // RSA (RFC 8230 §4)
const E = -2;
const KTY_OKP = 1;
const KTY_EC2 = 2;
const KTY_RSA = 3;

type Hash = 'sha1' | 'sha256' | 'sha384' | 'sha512';

interface AlgorithmSpec {
  kty: number;
  /** Digest for `crypto.verify`; null for EdDSA, which hashes internally. */
  hash: Hash | null;
  /** EC2: the one curve WebAuthn L3 §5.8.5 allows with this algorithm; OKP: the curve. */
  crv?: number;
  pss?: boolean;
}

/**
 * The algorithms a stored passkey can use: the three Latchkey registers
 * (ES256, EdDSA, RS256) and the others the FIDO conformance endpoints accept.
 */
const ALGORITHMS = new Map<number, AlgorithmSpec>([
  [-7, { kty: KTY_EC2, hash: 'sha256', crv: 1 }], // ES256, P-256
  [-35, { kty: KTY_EC2, hash: 'sha384', crv: 2 }], // ES384, P-384
  [-36, { kty: KTY_EC2, hash: 'sha512', crv: 3 }], // ES512, P-521
  [-8, { kty: KTY_OKP, hash: null, crv: 6 }], // EdDSA, Ed25519
  [-257, { kty: KTY_RSA, hash: 'sha256' }], // RS256
  [-258, { kty: KTY_RSA, hash: 'sha384' }], // RS384
  [-259, { kty: KTY_RSA, hash: 'sha512' }], // RS512
  [-65535, { kty: KTY_RSA, hash: 'sha1' }], // RS1 (FIDO legacy)
  [-37, { kty: KTY_RSA, hash: 'sha256', pss: true }], // PS256
  [-38, { kty: KTY_RSA, hash: 'sha384', pss: true }], // PS384
  [-39, { kty: KTY_RSA, hash: 'sha512', pss: true }], // PS512
]);

const EC_CURVES: Record<number, { name: string; size: number }> = {
  1: { name: 'P-256', size: 32 },
  2: { name: 'P-384', size: 48 },
  3: { name: 'P-521', size: 66 },
};

const PSS_SALT_LENGTH: Record<string, number> = { sha256: 32, sha384: 48, sha512: 64 };

export class CoseKeyError extends Error {
  constructor(message: string) {
    super(`COSE key: ${message}`);
    this.name = 'CoseKeyError';
  }
}

/**
 * A COSE_Key read and checked, as plain data: the JWK members Node imports,
 * the digest and the `crypto.verify` options. Plain data so it can cross to
 * the verification worker (src/webauthn/signatureWorker.ts) by message.
 */
export interface CredentialKey {
  /** COSE algorithm identifier. */
  alg: number;
  jwk: { kty: 'EC'; crv: string; x: string; y: string } | { kty: 'OKP'; crv: 'Ed25519'; x: string } | { kty: 'RSA'; n: string; e: string };
  /** Digest for `crypto.verify`; null for EdDSA, which hashes internally. */
  hash: Hash | null;
  /** WebAuthn L3 §6.5.5: ECDSA signatures are ASN.1 DER; RSA and EdDSA signatures are raw. */
  options: { dsaEncoding: 'der' } | { padding: number; saltLength?: number } | Record<string, never>;
}

/** A credential public key ready to verify signatures. */
export interface CredentialVerifier {
  /** COSE algorithm identifier. */
  alg: number;
  key: KeyObject;
  /** True when `signature` is this key's signature over `data`; never throws. */
  verify(data: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

function bytesParam(key: Map<CborValue, CborValue>, label: number, name: string): Uint8Array {
  const value = key.get(label);
  if (!(value instanceof Uint8Array) || value.length === 0) throw new CoseKeyError(`${name} is missing`);
  return value;
}

/** Bits in a big-endian unsigned integer, leading zero bytes and bits left out. */
function bitLength(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  return i === bytes.length ? 0 : (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}

const b64u = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');

/**
 * Read a COSE_Key into a {@link CredentialKey} without importing it; throws
 * {@link CoseKeyError} (or a CborError) for a key Latchkey can't use. Whether
 * an EC point is on its curve is only known once Node imports it.
 */
export function credentialKeyFromCose(coseKey: Uint8Array): CredentialKey {
  const decoded = decodeCbor(coseKey);
  if (!(decoded instanceof Map)) throw new CoseKeyError('not a map');
  const kty = decoded.get(KTY);
  const alg = decoded.get(ALG);
  if (typeof alg !== 'number') throw new CoseKeyError('alg is missing');
  const spec = ALGORITHMS.get(alg);
  if (!spec) throw new CoseKeyError(`unsupported alg ${alg}`);
  if (kty !== spec.kty) throw new CoseKeyError(`kty ${String(kty)} does not fit alg ${alg}`);
  const { hash } = spec;
  if (spec.kty === KTY_EC2) {
    const crv = decoded.get(CRV);
    if (crv !== spec.crv) throw new CoseKeyError(`crv ${String(crv)} does not fit alg ${alg}`);
    const curve = EC_CURVES[spec.crv!]!;
    const x = bytesParam(decoded, X, 'x');
    const y = bytesParam(decoded, Y, 'y');
    if (x.length !== curve.size || y.length !== curve.size) throw new CoseKeyError('x or y has the wrong length');
    return { alg, hash, jwk: { kty: 'EC', crv: curve.name, x: b64u(x), y: b64u(y) }, options: { dsaEncoding: 'der' } };
  }
  if (spec.kty === KTY_OKP) {
    if (decoded.get(CRV) !== spec.crv) throw new CoseKeyError(`crv ${String(decoded.get(CRV))} does not fit alg ${alg}`);
    const x = bytesParam(decoded, X, 'x');
    if (x.length !== 32) throw new CoseKeyError('x has the wrong length');
    return { alg, hash, jwk: { kty: 'OKP', crv: 'Ed25519', x: b64u(x) }, options: {} };
  }
  const n = bytesParam(decoded, N, 'n');
  const e = bytesParam(decoded, E, 'e');
  // RSA keys as authenticators make them (2048 to 4096 bits, exponent 65537): a huge exponent or modulus would make
  // each signature check cost milliseconds, on the event loop where sign-in checks them (signatureWorker.ts).
  const modulusBits = bitLength(n);
  if (modulusBits < 2048 || modulusBits > 4096) throw new CoseKeyError(`an RSA modulus of ${modulusBits} bits (2048 to 4096 allowed)`);
  if (Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString('hex').replace(/^0+/, '') !== '10001') throw new CoseKeyError('an RSA exponent other than 65537');
  return {
    alg,
    hash,
    jwk: { kty: 'RSA', n: b64u(n), e: b64u(e) },
    options: spec.pss ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH[hash!]! } : { padding: constants.RSA_PKCS1_PADDING },
  };
}

/** Import a {@link CredentialKey} (Node checks that an EC point is on the curve); throws {@link CoseKeyError}. */
export function importCredentialKey(credentialKey: CredentialKey): KeyObject {
  try {
    return createPublicKey({ key: credentialKey.jwk, format: 'jwk' });
  } catch (err) {
    throw new CoseKeyError(`not a valid public key (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Build a verifier from a COSE_Key; throws {@link CoseKeyError} (or a CborError) for anything it can't use. */
export function credentialVerifierFromCose(coseKey: Uint8Array): CredentialVerifier {
  const credentialKey = credentialKeyFromCose(coseKey);
  const key = importCredentialKey(credentialKey);
  const keyInput = { key, ...credentialKey.options };
  return {
    alg: credentialKey.alg,
    key,
    verify(data, signature) {
      return new Promise((resolve) => {
        try {
          // With a callback the check runs on libuv's thread pool, off the event loop (as WebCrypto's does).
          verify(credentialKey.hash, data, keyInput, signature, (err, ok) => resolve(!err && ok));
        } catch {
          // OpenSSL refuses some malformed signatures (e.g. bad DER) by throwing instead of returning false.
          resolve(false);
        }
      });
    },
  };
}
