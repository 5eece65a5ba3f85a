/**
 * Verifies a WebAuthn assertion (WebAuthn L3 §7.2) for a stored passkey.
 * Returns a result rather than throwing so the caller can audit each failure.
 *
 * The sign-in path verifies by hand, step by step, with the key imported and the signature checked by
 * `node:crypto` (src/webauthn/signatureWorker.ts: on the event loop or worker threads, keeping imported keys if
 * told to): @simplewebauthn/server's `verifyAuthenticationResponse` decodes and
 * imports the key through WebCrypto on every call, about three times the
 * event-loop time (see BENCHMARKS.md). The library path stays as
 * {@link verifyAssertionWithLibrary}; the tests run every case through both
 * and require the same outcome. Deliberately stricter than the library:
 * cross-origin or framed ceremonies (steps 13–14), attested credential data in an
 * assertion, and keys whose curve doesn't fit their algorithm are refused. The
 * checks it shares with registration and the FIDO conformance API (rawId,
 * framing, user presence) are responseChecks.ts's, called on what this has
 * already parsed.
 *
 * Steps 1–6 (options, get(), the response type, allowCredentials and the user
 * that owns the credential) are the caller's: `WebAuthn.finishAuthentication`.
 */
import { createHash } from 'node:crypto';
import { verifyAuthenticationResponse, type AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { Authenticator } from '../db/schema.js';
import type { ErrorCode } from '../errors.js';
import { decodeCborFirst } from './cbor.js';
import { credentialKeyFromCose, type CredentialKey } from './coseKey.js';
import { DEFAULT_PASSKEY_KEY_CACHE, DEFAULT_SIGNATURE_WORKERS, SignatureWorkerPool } from './signatureWorker.js';
import { checkClientDataFraming, checkCredentialIds, checkUserPresent, FLAG_UP } from './responseChecks.js';

export type AssertionResult =
  | {
      ok: true;
      counter: number;
      backedUp: boolean;
      backupEligible: boolean;
      userVerified: true;
      /** clientDataJSON.origin, checked against the allowed origins: where the passkey was used (for the audit record). */
      origin: string;
    }
  | {
      ok: false;
      code: ErrorCode;
      message?: string;
      /**
       * Whether the signature held (the failure came from a later step: presence, user verification, the counter).
       * Only then has the sender shown they hold the key, and only then may a sign-in that names whose passkey it
       * wants tell them more than "failed" (WebAuthn.finishAuthentication).
       */
      signatureValid: boolean;
    };

export interface AssertionInput {
  response: AuthenticationResponseJSON;
  expectedChallenge: string;
  /** The origin, or the set of origins (LATCHKEY_ORIGIN and the related ones: allowedOrigins.ts), the ceremony may come from. */
  expectedOrigin: string | ReadonlySet<string>;
  expectedRpId: string;
  authenticator: Pick<Authenticator, 'credential_id' | 'public_key' | 'counter' | 'transports'>;
  /** What the signature worker caches the imported key under; by default the stored key itself. */
  keyCacheId?: string;
  /** Where the signature is checked; by default the workers with the default key cache. */
  signatures?: SignatureWorkerPool;
}

// Flags byte of authenticator data (WebAuthn L3 §6.1).
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_BS = 0x10;
const FLAG_AT = 0x40;
const FLAG_ED = 0x80;

/** rpIdHash (32) + flags (1) + signCount (4): WebAuthn L3 §6.1. */
const AUTH_DATA_MIN = 37;
// Same bounds as the request schema (src/webauthn/schemas.ts), so direct callers get them too.
const MAX_CLIENT_DATA = 8192;
const MAX_AUTH_DATA = 8192;
const MAX_SIGNATURE = 2048;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

const MESSAGE_UNREADABLE = 'The passkey response could not be read. Try again.';
const MESSAGE_NOT_PRESENT = 'The passkey did not confirm you were present. Try again.';

/** A failure before the signature held. */
const failed = (message?: string): AssertionResult =>
  message ? { ok: false, code: 'ceremony_failed', message, signatureValid: false } : { ok: false, code: 'ceremony_failed', signatureValid: false };

function decodeBase64url(value: unknown, max: number): Buffer | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || !BASE64URL.test(value)) return undefined;
  return Buffer.from(value, 'base64url');
}

/** Signature workers (src/webauthn/signatureWorker.ts) by key cache size and worker count: apps in one process with the same settings share them. */
const pools = new Map<string, SignatureWorkerPool>();

/** The process's signature workers for a key cache of `keyCacheSize` (config.passkeyKeyCacheSize), `workers` of them (config.signatureWorkers; 0: the event loop). */
export function signatureWorkers(keyCacheSize = DEFAULT_PASSKEY_KEY_CACHE, workers = DEFAULT_SIGNATURE_WORKERS): SignatureWorkerPool {
  const id = `${keyCacheSize}/${workers}`;
  let pool = pools.get(id);
  if (!pool) pools.set(id, (pool = new SignatureWorkerPool(keyCacheSize, workers)));
  return pool;
}

/** Forget every imported key (tests; after bulk key changes). */
export function clearCredentialKeyCache(): void {
  for (const pool of pools.values()) pool.clear();
}

const rpIdHashes = new Map<string, Buffer>();
function rpIdHashOf(rpId: string): Buffer {
  let hash = rpIdHashes.get(rpId);
  if (!hash) {
    hash = createHash('sha256').update(rpId, 'utf8').digest();
    if (rpIdHashes.size < 16) rpIdHashes.set(rpId, hash);
  }
  return hash;
}

/** WebAuthn L3 §7.2, steps 7–22, for the sign-in path. */
export async function verifyAssertion(input: AssertionInput): Promise<AssertionResult> {
  const credential = input.response;
  const response = credential?.response;
  // Step 3: a public-key credential carrying an assertion response, its id the base64url of its raw id.
  if (!credential || typeof credential !== 'object' || credential.type !== 'public-key' || !response || typeof response !== 'object') return failed(MESSAGE_UNREADABLE);
  if (checkCredentialIds(credential)) return failed(MESSAGE_UNREADABLE);
  if (response.userHandle !== undefined && response.userHandle !== null && typeof response.userHandle !== 'string') return failed(MESSAGE_UNREADABLE);

  // Step 7: cData, authData and sig.
  const cData = decodeBase64url(response.clientDataJSON, MAX_CLIENT_DATA);
  const authData = decodeBase64url(response.authenticatorData, MAX_AUTH_DATA);
  const sig = decodeBase64url(response.signature, MAX_SIGNATURE);
  if (!cData || !authData || !sig) return failed(MESSAGE_UNREADABLE);

  // Steps 8–9: UTF-8 decode, then parse JSON.
  let C: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(cData.toString('utf8'));
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return failed(MESSAGE_UNREADABLE);
    C = parsed as Record<string, unknown>;
  } catch {
    return failed(MESSAGE_UNREADABLE);
  }
  // Step 10: the ceremony type.
  if (C.type !== 'webauthn.get') return failed();
  // Step 11: the challenge this ceremony issued (base64url, as stored).
  if (typeof C.challenge !== 'string' || C.challenge !== input.expectedChallenge) return failed();
  // Step 12: our origin or a related one (§5.11), exactly (§13.4.9); a Set lookup, as this is the sign-in hot path.
  const expected = input.expectedOrigin;
  if (typeof C.origin !== 'string' || (typeof expected === 'string' ? C.origin !== expected : !expected.has(C.origin))) return failed();
  const origin = C.origin;
  // Steps 13–14: Latchkey's pages can't be framed (frame-ancestors 'none'), so a cross-origin or framed ceremony is never expected.
  if (checkClientDataFraming(C, input.expectedOrigin)) return failed();
  // Token Binding (Level 2, dropped in Level 3): when a client still sends it, it must at least be well formed.
  if (C.tokenBinding !== undefined && C.tokenBinding !== null) {
    const status = (C.tokenBinding as { status?: unknown }).status;
    if (typeof C.tokenBinding !== 'object' || (status !== 'present' && status !== 'supported' && status !== 'notSupported')) return failed();
  }

  // Authenticator data (§6.1): rpIdHash, flags, signCount, then optional extensions.
  if (authData.length < AUTH_DATA_MIN) return failed(MESSAGE_UNREADABLE);
  const flags = authData[32]!;
  const signCount = authData.readUInt32BE(33);
  // Attested credential data belongs to registration only (§6.3.3 authenticatorGetAssertion never adds it).
  if (flags & FLAG_AT) return failed(MESSAGE_UNREADABLE);
  if (flags & FLAG_ED) {
    // Step 19: we request no extensions, so outputs are ignored; they must still be one CBOR map that ends the data.
    try {
      const { value, length } = decodeCborFirst(authData.subarray(AUTH_DATA_MIN));
      if (!(value instanceof Map) || AUTH_DATA_MIN + length !== authData.length) return failed(MESSAGE_UNREADABLE);
    } catch {
      return failed(MESSAGE_UNREADABLE);
    }
  } else if (authData.length !== AUTH_DATA_MIN) {
    return failed(MESSAGE_UNREADABLE);
  }

  // Step 14: the RP ID hash.
  if (!rpIdHashOf(input.expectedRpId).equals(authData.subarray(0, 32))) return failed();
  // Step 15: user present; step 16: Latchkey requires user verification for every sign-in.
  // Either failure is reported only once the signature holds (step 21), so an unsigned
  // response learns nothing but "failed", as on the library path.
  const flagFailure: AssertionResult | undefined = checkUserPresent(flags)
    ? { ok: false, code: 'ceremony_failed', message: MESSAGE_NOT_PRESENT, signatureValid: true }
    : !(flags & FLAG_UV)
      ? { ok: false, code: 'user_verification_required', signatureValid: true }
      : undefined;
  // Step 17: backed up (BS) without backup eligible (BE) is impossible for a genuine authenticator.
  if (!(flags & FLAG_BE) && flags & FLAG_BS) return failed();
  // Step 18 (backup eligibility against the record): a credential registered device-bound that now says it may be
  // backed up is recorded as such by the caller (finishAuthentication), so it stops giving AAL3; it still signs in.

  // Steps 20–21: sig over authData || SHA-256(cData) with the stored public key.
  let key: CredentialKey;
  try {
    key = credentialKeyFromCose(Buffer.from(input.authenticator.public_key, 'base64url'));
  } catch {
    return failed();
  }
  const hash = createHash('sha256').update(cData).digest();
  if (!(await (input.signatures ?? signatureWorkers()).verify(input.keyCacheId ?? input.authenticator.public_key, key, Buffer.concat([authData, hash], authData.length + 32), sig))) return failed();
  if (flagFailure) return flagFailure;

  // Step 22: a counter that did not increase (unless both are zero) may mean a cloned authenticator.
  const stored = input.authenticator.counter;
  if ((signCount > 0 || stored > 0) && signCount <= stored) return { ok: false, code: 'counter_regressed', signatureValid: true };
  return { ok: true, counter: signCount, backedUp: (flags & FLAG_BS) !== 0, backupEligible: (flags & FLAG_BE) !== 0, userVerified: true, origin };
}

/** Read flags and signCount from authenticatorData without trusting it: the signature check comes after. */
function peekAuthenticatorData(b64: unknown): { flags: number; counter: number } | undefined {
  if (typeof b64 !== 'string' || b64.length > 4096) return undefined;
  const bytes = Buffer.from(b64, 'base64url');
  if (bytes.length < 37) return undefined;
  return { flags: bytes[32]!, counter: bytes.readUInt32BE(33) };
}

/**
 * The same checks through @simplewebauthn/server. Not on the sign-in path: kept
 * so tests (and the benchmark) can hold the hand-written path to the library's answers.
 */
export async function verifyAssertionWithLibrary(input: AssertionInput): Promise<AssertionResult> {
  const peek = peekAuthenticatorData(input.response?.response?.authenticatorData);
  if (!peek) return failed(MESSAGE_UNREADABLE);
  let verification;
  try {
    verification = await verifyAuthenticationResponse({
      response: input.response,
      expectedChallenge: input.expectedChallenge,
      expectedOrigin: typeof input.expectedOrigin === 'string' ? input.expectedOrigin : [...input.expectedOrigin],
      expectedRPID: input.expectedRpId,
      expectedType: 'webauthn.get',
      requireUserVerification: false,
      // The library would refuse a response without UP before its signature; the flags are checked below, after
      // it, as the hand-written path does, so both can say whether the signature held.
      advancedFIDOConfig: { userVerification: 'preferred' },
      credential: {
        id: input.authenticator.credential_id,
        publicKey: new Uint8Array(Buffer.from(input.authenticator.public_key, 'base64url')),
        counter: 0, // the counter is checked below, after the signature, to report it distinctly
      },
    });
  } catch {
    return failed();
  }
  if (!verification.verified) return failed();
  // §7.2 step 15: user present is always required; step 16: we require user verification.
  if (!(peek.flags & FLAG_UP)) return { ok: false, code: 'ceremony_failed', message: MESSAGE_NOT_PRESENT, signatureValid: true };
  if (!(peek.flags & FLAG_UV)) return { ok: false, code: 'user_verification_required', signatureValid: true };
  // §7.2 step 22: a counter that did not increase (unless both are zero) may mean a cloned authenticator.
  const stored = input.authenticator.counter;
  if ((peek.counter > 0 || stored > 0) && peek.counter <= stored) return { ok: false, code: 'counter_regressed', signatureValid: true };
  return {
    ok: true,
    counter: peek.counter,
    backedUp: verification.authenticationInfo.credentialBackedUp,
    backupEligible: (peek.flags & FLAG_BE) !== 0,
    userVerified: true,
    origin: verification.authenticationInfo.origin,
  };
}
