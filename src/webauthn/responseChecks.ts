/**
 * The checks WebAuthn L3 asks of a relying party that @simplewebauthn/server
 * leaves out, in one place for every path that accepts a credential: the
 * product's registration (`WebAuthn.finishRegistration`), its sign-in
 * (`verifyAssertion`) and the FIDO conformance API (`src/fido2/service.ts`).
 * An independent conformance client found each gap on some path; having one
 * set of checks means no path can drift from the others again.
 *
 * Each check returns why a response is refused, in words for a log or the
 * conformance tool ("rawId is missing"), or undefined when it passes. Callers
 * choose how to say it to a person, and when (verifyAssertion answers
 * "failed" until a signature holds).
 */
import { X509Certificate } from 'node:crypto';
import { cose, decodeAttestationObject, decodeCredentialPublicKey, parseAuthenticatorData } from '@simplewebauthn/server/helpers';

/** WebAuthn L3 §7.1 step 18 (and §6.5.1's credentialIdLength): longer ids are refused. */
export const MAX_CREDENTIAL_ID_BYTES = 1023;

/** The user-present flag in authenticator data (§6.1). */
export const FLAG_UP = 0x01;

/** What a registration or an assertion response carries, as received (nothing about it trusted yet). */
export interface ReceivedCredential {
  id?: unknown;
  rawId?: unknown;
  response?: unknown;
}

/**
 * §5.1: `rawId` is the credential id's bytes, `id` their base64url; a browser's response carries both, equal. The
 * FIDO conformance profile's ServerPublicKeyCredential defines no `rawId`, so an assertion there may leave it out
 * (`rawIdOptional`); a registration must carry it everywhere.
 */
export function checkCredentialIds(credential: ReceivedCredential, rawIdOptional = false): string | undefined {
  if (typeof credential.id !== 'string' || credential.id === '') return 'id is missing';
  if (credential.rawId === undefined || credential.rawId === null) return rawIdOptional ? undefined : 'rawId is missing';
  if (credential.rawId !== credential.id) return 'rawId does not equal id';
  return undefined;
}

/**
 * §7.1 steps 10–11 and §7.2 steps 13–14: Latchkey's pages can't be framed (frame-ancestors 'none') and no
 * relying party embeds it, so a cross-origin ceremony is never expected; `topOrigin` is set only for one, so any
 * value is refused, a foreign one with its own message.
 */
export function checkClientDataFraming(clientData: Record<string, unknown>, expectedOrigin: string | ReadonlySet<string>): string | undefined {
  const { crossOrigin, topOrigin } = clientData;
  if (crossOrigin !== undefined && typeof crossOrigin !== 'boolean') return 'clientDataJSON.crossOrigin is not a boolean';
  if (crossOrigin === true) return 'clientDataJSON.crossOrigin is true, but this relying party is never embedded in another site';
  // Related origins (§5.11) are top-level pages of their own too: a ceremony framed by one of them is still refused,
  // only with the second, plainer message.
  const ours = typeof expectedOrigin === 'string' ? topOrigin === expectedOrigin : typeof topOrigin === 'string' && expectedOrigin.has(topOrigin);
  if (topOrigin !== undefined && !ours) return `clientDataJSON.topOrigin ${JSON.stringify(String(topOrigin).slice(0, 64))} is not this relying party's origin`;
  if (topOrigin !== undefined) return 'clientDataJSON.topOrigin is set, but the ceremony is not cross-origin';
  return undefined;
}

/** §7.2 step 16 (and §7.1 step 15): the authenticator tested that a person was there. */
export function checkUserPresent(flags: number): string | undefined {
  return flags & FLAG_UP ? undefined : 'the user-present (UP) flag is clear';
}

function readClientData(b64: unknown): Record<string, unknown> | string {
  if (typeof b64 !== 'string' || b64 === '') return 'clientDataJSON is missing';
  try {
    const parsed: unknown = JSON.parse(Buffer.from(b64, 'base64url').toString('utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // answered below
  }
  return 'clientDataJSON is not base64url-encoded JSON';
}

const responseOf = (credential: ReceivedCredential): Record<string, unknown> =>
  credential.response && typeof credential.response === 'object' ? (credential.response as Record<string, unknown>) : {};

/** What every response must carry, whichever ceremony: an id and rawId that agree, and clientData not framed by another site. */
function checkIdsAndClientData(credential: ReceivedCredential, expectedOrigin: string | ReadonlySet<string>, rawIdOptional = false): string | undefined {
  const ids = checkCredentialIds(credential, rawIdOptional);
  if (ids) return ids;
  const clientData = readClientData(responseOf(credential).clientDataJSON);
  if (typeof clientData === 'string') return clientData;
  return checkClientDataFraming(clientData, expectedOrigin);
}

/**
 * What WebAuthn L3 §7.1 and §8 ask of a registration response beyond @simplewebauthn/server's
 * `verifyRegistrationResponse`, which still runs after this (challenge, origin, RP ID, flags, the statement's
 * signature and chain). Run it before the library, so a response is refused for the same reason on every path.
 */
export function checkRegistrationResponse(credential: ReceivedCredential, expectedOrigin: string | ReadonlySet<string>): string | undefined {
  const problem = checkIdsAndClientData(credential, expectedOrigin);
  if (problem) return problem;
  const response = responseOf(credential);

  // §7.1 step 13 (CBOR decoding), with messages that name the broken member.
  if (typeof response.attestationObject !== 'string' || response.attestationObject === '') return 'attestationObject is missing';
  let decoded: ReturnType<typeof decodeAttestationObject>;
  try {
    decoded = decodeAttestationObject(new Uint8Array(Buffer.from(response.attestationObject, 'base64url')));
  } catch {
    return 'attestationObject is not valid CBOR';
  }
  if (!(decoded instanceof Map)) return 'attestationObject is not a CBOR map';
  const fmt: unknown = decoded.get('fmt');
  const attStmt: unknown = decoded.get('attStmt');
  const authDataBytes: unknown = decoded.get('authData');
  if (typeof fmt !== 'string') return 'attestationObject.fmt is missing or not a text string';
  if (!(attStmt instanceof Map)) return 'attestationObject.attStmt is missing or not a map';
  if (!(authDataBytes instanceof Uint8Array)) return 'attestationObject.authData is missing or not a byte string';
  // rpIdHash (32) + flags (1) + signCount (4) + AAGUID (16) + credentialIdLength (2): the least a registration carries.
  if (authDataBytes.length < 55) return 'attestationObject.authData is too short to hold attested credential data';

  let authData: ReturnType<typeof parseAuthenticatorData>;
  try {
    // The library's parser may patch a byte in place (a Firefox 117 workaround) and restores it; give it a copy anyway.
    authData = parseAuthenticatorData(new Uint8Array(authDataBytes));
  } catch (err) {
    return `authenticatorData could not be read: ${err instanceof Error ? err.message.slice(0, 120) : 'malformed'}`;
  }
  if (!authData.flags.at || !authData.credentialID || !authData.credentialPublicKey) return 'authenticatorData has no attested credential data';
  if (authData.credentialID.length > MAX_CREDENTIAL_ID_BYTES) {
    return `the credential ID is ${authData.credentialID.length} bytes long; at most ${MAX_CREDENTIAL_ID_BYTES} are allowed`;
  }
  // The id the client reported is the one the authenticator created (§5.1: id is the base64url of the credential id).
  if (Buffer.from(authData.credentialID).toString('base64url') !== credential.id) return 'id does not equal the credential ID in authenticatorData';

  let publicKey: Map<number, unknown>;
  try {
    publicKey = decodeCredentialPublicKey(authData.credentialPublicKey) as unknown as Map<number, unknown>;
  } catch {
    return 'the credential public key is not valid CBOR';
  }
  if (!(publicKey instanceof Map)) return 'the credential public key is not a COSE_Key';

  if (fmt === 'packed' && !attStmt.has('x5c')) return checkPackedSelfAttestation(attStmt, publicKey);
  if (fmt === 'fido-u2f') return checkFidoU2f(attStmt, publicKey);
  return undefined;
}

/** §8.2 verification, self attestation: "Validate that alg matches the algorithm of the credentialPublicKey in authenticatorData." */
function checkPackedSelfAttestation(attStmt: Map<unknown, unknown>, publicKey: Map<number, unknown>): string | undefined {
  const statementAlg = attStmt.get('alg');
  const keyAlg = publicKey.get(cose.COSEKEYS.alg);
  if (typeof keyAlg !== 'number') return 'the credential public key has no alg';
  if (statementAlg !== keyAlg) return `packed self attestation: attStmt.alg ${String(statementAlg)} does not match the credential public key's alg ${keyAlg}`;
  return undefined;
}

/** §8.6 verification: the credential key and the attestation certificate's key are both EC P-256. */
function checkFidoU2f(attStmt: Map<unknown, unknown>, publicKey: Map<number, unknown>): string | undefined {
  const x = publicKey.get(cose.COSEKEYS.x);
  const y = publicKey.get(cose.COSEKEYS.y);
  if (publicKey.get(cose.COSEKEYS.kty) !== cose.COSEKTY.EC2 || publicKey.get(cose.COSEKEYS.crv) !== cose.COSECRV.P256) {
    return 'fido-u2f: the credential public key is not an EC P-256 key';
  }
  // Step 4: x and y are 32 bytes each, to make the 65-byte ANSI X9.62 point the statement signs.
  if (!(x instanceof Uint8Array) || x.length !== 32 || !(y instanceof Uint8Array) || y.length !== 32) return 'fido-u2f: the credential public key is not an uncompressed P-256 point';
  // Step 2: exactly one certificate.
  const x5c = attStmt.get('x5c');
  if (!Array.isArray(x5c) || x5c.length !== 1 || !(x5c[0] instanceof Uint8Array)) return 'fido-u2f: attStmt.x5c must hold exactly one certificate';
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(Buffer.from(x5c[0]));
  } catch {
    return 'fido-u2f: attStmt.x5c[0] is not an X.509 certificate';
  }
  const key = certificate.publicKey;
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return "fido-u2f: the attestation certificate's key is not an EC P-256 key";
  return undefined;
}

/**
 * The same checks for an assertion response, for a caller that holds the JSON and verifies with the library
 * (the conformance API). The sign-in path (verifyAssertion) calls the pieces on what it has already parsed.
 */
export function checkAssertionResponse(credential: ReceivedCredential, expectedOrigin: string): string | undefined {
  const problem = checkIdsAndClientData(credential, expectedOrigin, true);
  if (problem) return problem;
  const response = responseOf(credential);
  if (typeof response.authenticatorData !== 'string') return 'authenticatorData is missing';
  const authData = Buffer.from(response.authenticatorData, 'base64url');
  // rpIdHash (32), then the flags byte (§6.1).
  if (authData.length < 37) return 'authenticatorData is too short';
  return checkUserPresent(authData[32]!);
}
