/**
 * Verifies a WebAuthn assertion (WebAuthn L3 §7.2) for a stored passkey.
 * Returns a result rather than throwing so the caller can audit each failure.
 */
import { verifyAuthenticationResponse, type AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { Authenticator } from '../db/schema.js';
import type { ErrorCode } from '../errors.js';

export type AssertionResult =
  | { ok: true; counter: number; backedUp: boolean; userVerified: true }
  | { ok: false; code: ErrorCode; message?: string };

export interface AssertionInput {
  response: AuthenticationResponseJSON;
  expectedChallenge: string;
  expectedOrigin: string;
  expectedRpId: string;
  authenticator: Pick<Authenticator, 'credential_id' | 'public_key' | 'counter' | 'transports'>;
}

// Flags byte of authenticator data (WebAuthn L3 §6.1): UP bit 0, UV bit 2.
const FLAG_UP = 0x01;
const FLAG_UV = 0x04;

/** Read flags and signCount from authenticatorData without trusting it: the signature check comes after. */
function peekAuthenticatorData(b64: unknown): { flags: number; counter: number } | undefined {
  if (typeof b64 !== 'string' || b64.length > 4096) return undefined;
  const bytes = Buffer.from(b64, 'base64url');
  if (bytes.length < 37) return undefined;
  return { flags: bytes[32]!, counter: bytes.readUInt32BE(33) };
}

export async function verifyAssertion(input: AssertionInput): Promise<AssertionResult> {
  const peek = peekAuthenticatorData(input.response?.response?.authenticatorData);
  if (!peek) return { ok: false, code: 'ceremony_failed', message: 'The passkey response could not be read. Try again.' };
  let verification;
  try {
    verification = await verifyAuthenticationResponse({
      response: input.response,
      expectedChallenge: input.expectedChallenge,
      expectedOrigin: input.expectedOrigin,
      expectedRPID: input.expectedRpId,
      expectedType: 'webauthn.get',
      requireUserVerification: false,
      credential: {
        id: input.authenticator.credential_id,
        publicKey: new Uint8Array(Buffer.from(input.authenticator.public_key, 'base64url')),
        counter: 0, // the counter is checked below, after the signature, to report it distinctly
      },
    });
  } catch {
    return { ok: false, code: 'ceremony_failed' };
  }
  if (!verification.verified) return { ok: false, code: 'ceremony_failed' };
  // §7.2 step 15: user present is always required; step 16: we require user verification.
  if (!(peek.flags & FLAG_UP)) return { ok: false, code: 'ceremony_failed', message: 'The passkey did not confirm you were present. Try again.' };
  if (!(peek.flags & FLAG_UV)) return { ok: false, code: 'user_verification_required' };
  // §7.2 step 22: a counter that did not increase (unless both are zero) may mean a cloned authenticator.
  const stored = input.authenticator.counter;
  if ((peek.counter > 0 || stored > 0) && peek.counter <= stored) return { ok: false, code: 'counter_regressed' };
  return { ok: true, counter: peek.counter, backedUp: verification.authenticationInfo.credentialBackedUp, userVerified: true };
}
