/**
 * A software WebAuthn authenticator in Node crypto, for HTTP tests and the
 * benchmark. It answers the JSON options Latchkey sends with the JSON
 * @simplewebauthn/browser would post back, signing like a real authenticator
 * (attestation "none"; ES256, EdDSA or RS256).
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { encodeCbor } from './cbor.js';

export type CoseAlg = -7 | -8 | -257;

export interface SoftCredential {
  id: string;
  privateKey: KeyObject;
  alg: CoseAlg;
  userHandle: string;
  rpId: string;
  counter: number;
}

export interface SoftAuthenticatorOptions {
  origin: string;
  alg?: CoseAlg;
  /** Whether the authenticator verifies the user (sets UV). */
  userVerification?: boolean;
  /** Whether it sets UP. Real authenticators always do; tests turn it off. */
  userPresence?: boolean;
  backupEligible?: boolean;
  backedUp?: boolean;
  aaguid?: string;
  /** 'increment': counter +1 per assertion; 'zero': no counter (synced passkeys). */
  counter?: 'increment' | 'zero';
  transports?: string[];
  /** Bytes in a new credential id (32 by default); WebAuthn allows at most 1,023. */
  credentialIdLength?: number;
  /** Members added to every clientDataJSON, e.g. `{ crossOrigin: true, topOrigin: 'https://evil.example' }` for a framed ceremony. */
  clientDataExtra?: Record<string, unknown>;
  /** What the browser reports: 'platform' (the default) or 'cross-platform' (a security key). */
  attachment?: 'platform' | 'cross-platform';
}

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest();

/** A public key as the COSE_Key a registration carries (and the database stores, base64url). */
export function coseKey(publicKey: KeyObject, alg: CoseAlg): Buffer {
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  if (alg === -7) {
    // SPKI for P-256 ends with the uncompressed point 0x04 || x || y (RFC 5480).
    const point = spki.subarray(spki.length - 65);
    return encodeCbor(new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, point.subarray(1, 33)], [-3, point.subarray(33, 65)]]));
  }
  if (alg === -8) {
    return encodeCbor(new Map<number, number | Uint8Array>([[1, 1], [3, -8], [-1, 6], [-2, spki.subarray(spki.length - 32)]]));
  }
  const jwk = publicKey.export({ format: 'jwk' }) as { n: string; e: string };
  return encodeCbor(new Map<number, number | Uint8Array>([[1, 3], [3, -257], [-1, Buffer.from(jwk.n, 'base64url')], [-2, Buffer.from(jwk.e, 'base64url')]]));
}

function brokenKey(cose: Buffer): Buffer {
  const broken = Buffer.from(cose);
  broken[broken.length - 1]! ^= 0x01;
  return broken;
}

function newKeyPair(alg: CoseAlg) {
  if (alg === -7) return generateKeyPairSync('ec', { namedCurve: 'P-256' });
  if (alg === -8) return generateKeyPairSync('ed25519');
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}

function signWith(alg: CoseAlg, key: KeyObject, data: Buffer): Buffer {
  return alg === -8 ? sign(null, data, key) : sign('sha256', data, key);
}

export class SoftAuthenticator {
  readonly credentials = new Map<string, SoftCredential>();
  readonly options: Required<Omit<SoftAuthenticatorOptions, 'transports'>> & { transports: string[] };

  constructor(options: SoftAuthenticatorOptions) {
    this.options = {
      alg: -7,
      userVerification: true,
      userPresence: true,
      backupEligible: false,
      backedUp: false,
      aaguid: '00000000-0000-0000-0000-000000000000',
      counter: 'increment',
      transports: ['internal', 'hybrid'],
      credentialIdLength: 32,
      clientDataExtra: {},
      attachment: 'platform',
      ...options,
    };
  }

  private flags(attested: boolean): number {
    const o = this.options;
    return (o.userPresence ? 0x01 : 0) | (o.userVerification ? 0x04 : 0) | (o.backupEligible ? 0x08 : 0) | (o.backedUp ? 0x10 : 0) | (attested ? 0x40 : 0);
  }

  private clientData(type: string, challenge: string, origin = this.options.origin): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false, ...this.options.clientDataExtra }));
  }

  /** navigator.credentials.create() */
  createCredential(
    options: PublicKeyCredentialCreationOptionsJSON,
    /** `brokenPublicKey`: an ES256 key whose point is not on the curve (its last byte changed). */
    overrides: { origin?: string; rpId?: string; brokenPublicKey?: boolean } = {},
  ): RegistrationResponseJSON {
    const rpId = overrides.rpId ?? options.rp.id!;
    for (const excluded of options.excludeCredentials ?? []) {
      if (this.credentials.has(excluded.id)) throw Object.assign(new Error('credential already registered'), { name: 'InvalidStateError' });
    }
    const { publicKey, privateKey } = newKeyPair(this.options.alg);
    const credentialId = randomBytes(this.options.credentialIdLength);
    const id = b64u(credentialId);
    const counter = this.options.counter === 'increment' ? 1 : 0;
    this.credentials.set(id, { id, privateKey, alg: this.options.alg, userHandle: options.user.id, rpId, counter });
    const countBytes = Buffer.alloc(4);
    countBytes.writeUInt32BE(counter);
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(credentialId.length);
    const authData = Buffer.concat([
      sha256(rpId),
      Buffer.from([this.flags(true)]),
      countBytes,
      Buffer.from(this.options.aaguid.replace(/-/g, ''), 'hex'),
      idLength,
      credentialId,
      overrides.brokenPublicKey ? brokenKey(coseKey(publicKey, this.options.alg)) : coseKey(publicKey, this.options.alg),
    ]);
    const attestation = new Map<string, string | Uint8Array | Map<string, number>>();
    attestation.set('fmt', 'none').set('attStmt', new Map()).set('authData', authData);
    const attestationObject = encodeCbor(attestation);
    return {
      id,
      rawId: id,
      type: 'public-key',
      response: {
        clientDataJSON: b64u(this.clientData('webauthn.create', options.challenge, overrides.origin)),
        attestationObject: b64u(attestationObject),
        transports: this.options.transports as RegistrationResponseJSON['response']['transports'],
      },
      clientExtensionResults: {},
      authenticatorAttachment: this.options.attachment,
    };
  }

  /** navigator.credentials.get(): uses the allowed credential it holds, or any for a discoverable request. */
  getAssertion(options: PublicKeyCredentialRequestOptionsJSON, overrides: { origin?: string; credentialId?: string; counter?: number } = {}): AuthenticationResponseJSON {
    const allowed = (options.allowCredentials ?? []).map((c) => c.id);
    const candidates = [...this.credentials.values()].filter((c) => c.rpId === options.rpId && (allowed.length === 0 || allowed.includes(c.id)));
    const credential = overrides.credentialId ? this.credentials.get(overrides.credentialId) : candidates[0];
    if (!credential) throw Object.assign(new Error('no credential for this request'), { name: 'NotAllowedError' });
    if (overrides.counter !== undefined) credential.counter = overrides.counter;
    else if (this.options.counter === 'increment') credential.counter += 1;
    const countBytes = Buffer.alloc(4);
    countBytes.writeUInt32BE(credential.counter);
    const authData = Buffer.concat([sha256(credential.rpId), Buffer.from([this.flags(false)]), countBytes]);
    const clientDataJSON = this.clientData('webauthn.get', options.challenge, overrides.origin);
    const signature = signWith(credential.alg, credential.privateKey, Buffer.concat([authData, sha256(clientDataJSON)]));
    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      response: {
        clientDataJSON: b64u(clientDataJSON),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        userHandle: credential.userHandle,
      },
      clientExtensionResults: {},
      authenticatorAttachment: this.options.attachment,
    };
  }
}
