/**
 * The four conformance ceremonies over @simplewebauthn/server, with the
 * options the FIDO profile lets the client choose (attestation, user
 * verification, authenticator selection, extensions) and every attestation
 * format the library verifies. They live beside, not inside, the one WebAuthn
 * module because that module's policy (UV always required, attestation
 * "none", discoverable credentials) is what the conformance tool must be able
 * to vary. The storage rules are the same: challenges are stored as flows,
 * bound to the browser cookie, consumed once; passkeys go to the
 * authenticators table. And so are the checks: every result first passes the
 * ones the product's registration and sign-in run
 * (src/webauthn/responseChecks.ts), then the library's.
 */
import {
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { Type, type Static } from 'typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit } from '../audit.js';
import { randomToken } from '../crypto.js';
import { normalizeEmail } from '../db/persisters/users.js';
import type { Authenticator, Flow, User } from '../db/schema.js';
import { challengeOf, describeLibraryError, userHandleFor } from '../webauthn/ceremonies.js';
import { checkAssertionResponse, checkRegistrationResponse } from '../webauthn/responseChecks.js';
import { conformanceFailure, OK } from './serverResponse.js';
import { defineFlow } from '../flows/flowMachine.js';
import type {
  AssertionResultSchema,
  AttestationResultSchema,
  CreationOptionsRequestSchema,
  CreationOptionsResponseSchema,
  GetOptionsRequestSchema,
  GetOptionsResponseSchema,
} from './schemas.js';

export const ATTESTATION_FLOW = 'fido2-attestation';
export const ASSERTION_FLOW = 'fido2-assertion';

/**
 * Every COSE algorithm the library verifies, ES256 first (the list
 * SimpleWebAuthn's own conformance setup offers). RS1 (-65535) is weak and is
 * offered only in this test-only mode.
 */
export const CONFORMANCE_ALGORITHMS = [-7, -8, -35, -36, -257, -258, -259, -37, -38, -39, -65535];

const UserVerificationSchema = Type.Union([Type.Literal('required'), Type.Literal('preferred'), Type.Literal('discouraged')]);
type UserVerification = Static<typeof UserVerificationSchema>;

const attestationFlow = defineFlow({ type: ATTESTATION_FLOW, data: Type.Object({ userVerification: UserVerificationSchema, attestation: Type.String() }) });
type AttestationFlowData = Static<typeof attestationFlow.schema>;

const assertionFlow = defineFlow({ type: ASSERTION_FLOW, data: Type.Object({ userVerification: UserVerificationSchema }) });
type AssertionFlowData = Static<typeof assertionFlow.schema>;

type Descriptor = { type: 'public-key'; id: string; transports?: string[] };

const knownTransports = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);
function sanitizeTransports(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string' && knownTransports.has(t)).slice(0, 8) : [];
}

function descriptorOf(a: Pick<Authenticator, 'credential_id' | 'transports'>): Descriptor {
  let transports: string[] = [];
  try {
    transports = sanitizeTransports(JSON.parse(a.transports));
  } catch {
    // a malformed column is treated as "no hint"
  }
  return transports.length ? { type: 'public-key', id: a.credential_id, transports } : { type: 'public-key', id: a.credential_id };
}

function timeoutMs(app: FastifyInstance): number {
  return app.latchkey.config.challengeSeconds * 1000;
}

async function saveChallenge(app: FastifyInstance, type: string, bindingHash: string, userId: string | null, data: object): Promise<string> {
  const { store, now, config } = app.latchkey;
  // 32 random bytes: the profile asks for 16 to 64.
  const challenge = randomToken(32);
  const t = now();
  await store.flows.insert({
    id: randomToken(16),
    type,
    binding_hash: bindingHash,
    user_id: userId,
    lookup: challenge,
    data: JSON.stringify(data),
    created_at: t,
    expires_at: t + config.challengeSeconds * 1000,
  });
  return challenge;
}

/** Find the options a result answers, by the challenge in its clientDataJSON, and consume them once. */
async function consumeChallenge(app: FastifyInstance, type: string, clientDataJSON: string, bindingHash: string): Promise<Flow> {
  const { store, now } = app.latchkey;
  const challenge = challengeOf(clientDataJSON);
  if (!challenge) throw conformanceFailure('clientDataJSON is not base64url-encoded JSON with a challenge');
  const flow = await store.flows.findByLookup(challenge);
  const endpoint = type === ATTESTATION_FLOW ? '/attestation/options' : '/assertion/options';
  if (!flow || flow.type !== type) throw conformanceFailure(`clientDataJSON.challenge does not match a challenge issued by ${endpoint}`);
  if (flow.binding_hash !== bindingHash) throw conformanceFailure(`The challenge was issued to another session: send the cookie set by ${endpoint}`);
  if (!(await store.flows.consume(flow.id, now()))) throw conformanceFailure('The challenge has expired or was already used');
  return flow;
}

/**
 * Profile shape to the shape the library reads (`getClientExtensionResults`). `rawId` is passed on as sent: the
 * product's checks (src/webauthn/responseChecks.ts) require it and refuse it when it differs from `id`.
 */
function credentialBase(body: { id: string; rawId?: string; type: string; getClientExtensionResults?: object; clientExtensionResults?: object }) {
  if (body.type !== 'public-key') throw conformanceFailure(`type must be "public-key", got ${JSON.stringify(body.type.slice(0, 32))}`);
  return {
    id: body.id,
    // The checks (responseChecks.ts) have refused a registration without rawId and any rawId other than id; an
    // assertion may leave it out (the profile defines none), and the library reads it.
    rawId: body.rawId ?? body.id,
    type: 'public-key' as const,
    clientExtensionResults: (body.getClientExtensionResults ?? body.clientExtensionResults ?? {}) as AuthenticationResponseJSON['clientExtensionResults'],
  };
}

async function findOrCreateUser(app: FastifyInstance, username: string, displayName: string): Promise<User> {
  const { store, now } = app.latchkey;
  const existing = await store.users.findByEmail(username);
  if (existing) return existing;
  const t = now();
  try {
    // Conformance mode only: the profile's username is an account name, kept in the email column.
    return await store.users.insert({
      id: randomToken(16),
      email: username,
      email_normalized: normalizeEmail(username),
      display_name: displayName.trim() || username,
      status: 'pending',
      created_at: t,
      updated_at: t,
    });
  } catch (err) {
    // Two concurrent requests for one new username: the unique index lets one insert win.
    const winner = await store.users.findByEmail(username);
    if (winner) return winner;
    throw err;
  }
}

async function passkeysOf(app: FastifyInstance, userId: string): Promise<Authenticator[]> {
  return (await app.latchkey.store.authenticators.listForUser(userId)).filter((a) => a.type === 'passkey');
}

/** POST /fido2/attestation/options */
export async function issueCreationOptions(
  app: FastifyInstance,
  request: FastifyRequest,
  body: Static<typeof CreationOptionsRequestSchema>,
): Promise<Static<typeof CreationOptionsResponseSchema>> {
  const { config } = app.latchkey;
  const user = await findOrCreateUser(app, body.username, body.displayName);
  if (user.status === 'suspended') throw conformanceFailure('This user is disabled');
  const existing = await passkeysOf(app, user.id);
  const attestation = body.attestation ?? 'none';
  const selection = body.authenticatorSelection;
  const data: AttestationFlowData = { userVerification: selection?.userVerification ?? 'preferred', attestation };
  const challenge = await saveChallenge(app, ATTESTATION_FLOW, request.bindingHash, user.id, data);
  return {
    ...OK,
    rp: { name: config.rpName, id: config.rpId },
    user: { id: Buffer.from(userHandleFor(user.id)).toString('base64url'), name: body.username, displayName: body.displayName },
    challenge,
    pubKeyCredParams: CONFORMANCE_ALGORITHMS.map((alg) => ({ type: 'public-key' as const, alg })),
    timeout: timeoutMs(app),
    excludeCredentials: existing.map(descriptorOf),
    ...(selection
      ? {
          // Echo the members WebAuthn defines; anything else would be ignored by a client anyway.
          authenticatorSelection: {
            ...(selection.authenticatorAttachment !== undefined ? { authenticatorAttachment: selection.authenticatorAttachment } : {}),
            ...(selection.residentKey !== undefined ? { residentKey: selection.residentKey } : {}),
            ...(selection.requireResidentKey !== undefined ? { requireResidentKey: selection.requireResidentKey } : {}),
            ...(selection.userVerification !== undefined ? { userVerification: selection.userVerification } : {}),
          },
        }
      : {}),
    attestation,
    ...(body.extensions ? { extensions: body.extensions } : {}),
  };
}

/** POST /fido2/attestation/result: WebAuthn L3 §7.1 by the library, then store the passkey. */
export async function verifyAttestationResult(app: FastifyInstance, request: FastifyRequest, body: Static<typeof AttestationResultSchema>): Promise<typeof OK> {
  const { config, store, now } = app.latchkey;
  const response: RegistrationResponseJSON = {
    ...credentialBase(body),
    response: { clientDataJSON: body.response.clientDataJSON, attestationObject: body.response.attestationObject },
  };
  const flow = await consumeChallenge(app, ATTESTATION_FLOW, body.response.clientDataJSON, request.bindingHash);
  const data = attestationFlow.read(flow);
  if (!data) throw conformanceFailure('Challenge is not valid');
  // The product's own registration checks (rawId, credential id length, framing, packed self and fido-u2f keys).
  const refused = checkRegistrationResponse(body, config.origin);
  if (refused) throw conformanceFailure(`Attestation refused: ${refused}`);
  let verification;
  try {
    verification = await verifyRegistrationResponse({
      response,
      expectedChallenge: flow.lookup,
      expectedOrigin: config.origin,
      expectedRPID: config.rpId,
      expectedType: 'webauthn.create',
      requireUserPresence: true,
      // §7.1 step 15: UV only when the options asked for it.
      requireUserVerification: data.userVerification === 'required',
      supportedAlgorithmIDs: CONFORMANCE_ALGORITHMS,
    });
  } catch (err) {
    throw conformanceFailure(`Attestation refused: ${describeLibraryError(err)}`);
  }
  if (!verification.verified || !verification.registrationInfo) throw conformanceFailure('Attestation refused: the attestation statement did not verify');
  const info = verification.registrationInfo;
  if (await store.authenticators.findByCredentialId(info.credential.id)) throw conformanceFailure('This credential ID is already registered');
  const userId = flow.user_id!;
  const t = now();
  const authenticator = {
    id: randomToken(12),
    user_id: userId,
    type: 'passkey',
    credential_id: info.credential.id,
    public_key: Buffer.from(info.credential.publicKey).toString('base64url'),
    counter: info.credential.counter,
    transports: JSON.stringify(sanitizeTransports(body.response.transports)),
    aaguid: info.aaguid,
    backup_eligible: info.credentialDeviceType === 'multiDevice' ? 1 : 0,
    backed_up: info.credentialBackedUp ? 1 : 0,
    attestation_format: info.fmt,
    name: `FIDO conformance (${info.fmt})`.slice(0, 64),
    created_at: t,
    last_used_at: null,
  };
  try {
    await store.transaction(async (tx) => {
      await tx.authenticators.insert(authenticator);
      const user = await tx.users.findById(userId);
      if (user?.status === 'pending') await tx.users.setStatus(userId, 'enrolled', t);
      await audit(
        app,
        request,
        { event: 'passkey.added', subjectUserId: userId, actorUserId: userId, authenticatorId: authenticator.id, detail: { name: authenticator.name, fido2: true } },
        tx,
      );
    });
  } catch (err) {
    // The unique index on credential_id settles a race between two results for one credential.
    if (await store.authenticators.findByCredentialId(info.credential.id)) throw conformanceFailure('This credential ID is already registered');
    throw err;
  }
  return OK;
}

/** POST /fido2/assertion/options */
export async function issueRequestOptions(
  app: FastifyInstance,
  request: FastifyRequest,
  body: Static<typeof GetOptionsRequestSchema>,
): Promise<Static<typeof GetOptionsResponseSchema>> {
  const { config, store } = app.latchkey;
  // No username: a usernameless (discoverable) ceremony. Nobody is named, so nothing is offered, and the result
  // finds the credential by its id and its owner by the user handle.
  let user: User | null = null;
  if (body.username) {
    user = (await store.users.findByEmail(body.username)) ?? null;
    if (!user) throw conformanceFailure('User does not exist');
    if (user.status === 'suspended') throw conformanceFailure('This user is disabled');
  }
  const credentials = user ? await passkeysOf(app, user.id) : [];
  const userVerification = body.userVerification ?? 'preferred';
  const data: AssertionFlowData = { userVerification };
  const challenge = await saveChallenge(app, ASSERTION_FLOW, request.bindingHash, user?.id ?? null, data);
  return {
    ...OK,
    challenge,
    timeout: timeoutMs(app),
    rpId: config.rpId,
    allowCredentials: credentials.map(descriptorOf),
    userVerification,
    ...(body.extensions ? { extensions: body.extensions } : {}),
  };
}

/** POST /fido2/assertion/result: WebAuthn L3 §7.2 by the library, then record the use. */
export async function verifyAssertionResult(app: FastifyInstance, request: FastifyRequest, body: Static<typeof AssertionResultSchema>): Promise<typeof OK> {
  const { config, store, now } = app.latchkey;
  const userHandle = body.response.userHandle || undefined;
  const response: AuthenticationResponseJSON = {
    ...credentialBase(body),
    response: {
      clientDataJSON: body.response.clientDataJSON,
      authenticatorData: body.response.authenticatorData,
      signature: body.response.signature,
      ...(userHandle ? { userHandle } : {}),
    },
  };
  const flow = await consumeChallenge(app, ASSERTION_FLOW, body.response.clientDataJSON, request.bindingHash);
  const data = assertionFlow.read(flow);
  if (!data) throw conformanceFailure('Challenge is not valid');
  // The product's own assertion checks (rawId, framing, user presence), as the sign-in path runs them.
  const refused = checkAssertionResponse(body, config.origin);
  if (refused) throw conformanceFailure(`Assertion refused: ${refused}`);
  const found = await store.authenticators.findByCredentialId(body.id);
  const authenticator = found?.type === 'passkey' ? found : undefined;
  const ownersHandle = authenticator ? Buffer.from(userHandleFor(authenticator.user_id)).toString('base64url') : undefined;
  if (flow.user_id !== null) {
    // §7.2 step 6, a user named in the options: the credential must be one of theirs, and a user handle, when
    // returned, theirs.
    if (!authenticator || authenticator.user_id !== flow.user_id) throw conformanceFailure('Unknown credential: id is not a credential of this user');
    if (userHandle && userHandle !== ownersHandle) throw conformanceFailure("userHandle does not match the credential's user");
  } else {
    // §7.2 step 6, usernameless: the credential is found by its id, and the user handle is required and must be
    // its owner's.
    if (!authenticator) throw conformanceFailure('Unknown credential: id is not a registered credential');
    if (!userHandle) throw conformanceFailure('userHandle is required when the options named no user');
    if (userHandle !== ownersHandle) throw conformanceFailure("userHandle does not match the credential's user");
    if ((await store.users.findById(authenticator.user_id))?.status === 'suspended') throw conformanceFailure('This user is disabled');
  }
  let verification;
  try {
    verification = await verifyAuthenticationResponse({
      response,
      expectedChallenge: flow.lookup,
      expectedOrigin: config.origin,
      expectedRPID: config.rpId,
      expectedType: 'webauthn.get',
      credential: {
        id: authenticator.credential_id,
        publicKey: new Uint8Array(Buffer.from(authenticator.public_key, 'base64url')),
        counter: authenticator.counter,
      },
      // The FIDO conformance rules for UV: demanded only when the options said "required". With this option the
      // library ignores UP too; checkAssertionResponse above requires it, as the product does (§7.2 step 16).
      requireUserVerification: false,
      advancedFIDOConfig: { userVerification: data.userVerification },
    });
  } catch (err) {
    const message = describeLibraryError(err);
    if (/counter/i.test(message)) {
      await audit(app, request, { event: 'passkey.counter_regressed', outcome: 'failure', subjectUserId: authenticator.user_id, actorUserId: null, authenticatorId: authenticator.id });
    }
    throw conformanceFailure(`Assertion refused: ${message}`);
  }
  if (!verification.verified) throw conformanceFailure('Assertion refused: the signature is not valid');
  const info = verification.authenticationInfo;
  // The conditional update loses to a concurrent use with a higher counter (§7.2 step 22).
  if (!(await store.authenticators.recordUse(authenticator.id, { counter: info.newCounter, backedUp: info.credentialBackedUp, backupEligible: authenticator.backup_eligible === 1 || info.credentialDeviceType === 'multiDevice', at: now() }))) {
    throw conformanceFailure('Assertion refused: the signature counter did not increase');
  }
  return OK;
}
