/**
 * A passkey record no one holds the key to, checked against in place of a real
 * one when a sign-in that names whose passkey it wants (email first, a decoy
 * for an unknown address, reauth) is answered with a credential that is not
 * that person's, or when there is no such person. The response then goes
 * through the same steps and the same signature check (ES256, the algorithm
 * most passkeys use, on the same worker) as a real account's, so neither the
 * answer nor the work tells whether the address has an account.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { AssertionInput } from './verifyAssertion.js';

/**
 * The stand-in's public key as a COSE_Key (WebAuthn L3 §6.5.1.1): EC2, ES256, P-256. Made at start and kept in
 * memory only; its private key is dropped at once. Exported as SPKI DER, never as a JWK (CONVENTIONS.md: JWK
 * export can deadlock on this machine's Node).
 */
const STAND_IN_PUBLIC_KEY = (() => {
  const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
  // SPKI for P-256 ends with the uncompressed point 0x04 || x || y (RFC 5480).
  const point = spki.subarray(spki.length - 64);
  const cose = Buffer.concat([
    Buffer.from([0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01]), // {1 (kty): 2 (EC2), 3 (alg): -7 (ES256), -1 (crv): 1 (P-256),
    Buffer.from([0x21, 0x58, 0x20]), // -2 (x): 32 bytes
    point.subarray(0, 32),
    Buffer.from([0x22, 0x58, 0x20]), // -3 (y): 32 bytes}
    point.subarray(32),
  ]);
  return cose.toString('base64url');
})();

/**
 * The key cache id the stand-in is checked under: one for every credential id. With a key cache
 * (LATCHKEY_PASSKEY_KEY_CACHE), the stand-in is imported once and then checked as any cached key. An id per credential
 * id would let random ids (free to send) fill that bounded cache (signatureWorker.ts), each pushing a real passkey's
 * key out.
 */
const STAND_IN_CACHE_ID = 'stand-in';

/** The record to check a response naming `credentialId` against, and the key cache id to check it under. */
export function standInFor(credentialId: string): Pick<AssertionInput, 'authenticator' | 'keyCacheId'> {
  return {
    authenticator: { credential_id: credentialId, public_key: STAND_IN_PUBLIC_KEY, counter: 0, transports: '[]' },
    keyCacheId: STAND_IN_CACHE_ID,
  };
}
