/**
 * The one WebAuthn module over @simplewebauthn/server. It owns challenges
 * (random, stored server-side as flows, tagged with their ceremony, bound to the
 * browser, expiring, consumed once atomically) and the checks Latchkey adds to
 * the library's: user verification with a clear error, counter regression
 * audited as a possible clone, backup state kept current.
 */
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { Type } from 'typebox';
import type { Config } from '../config/index.js';
import { randomBytesPooled, randomToken } from '../crypto.js';
import type { Authenticator, Flow, NewAuthenticator, User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { isCounterDidNotMove } from '../db/persisters/authenticators.js';
import { AppError, appError } from '../errors.js';
import { flowDataReader } from '../flows/flowMachine.js';
import { signatureWorkers, verifyAssertion } from './verifyAssertion.js';
import { checkRegistrationResponse } from './responseChecks.js';
import { allowedOrigins } from './allowedOrigins.js';
import { standInFor } from './standInKey.js';
import { credentialVerifierFromCose } from './coseKey.js';
import { cleanPasskeyName, defaultPasskeyName } from './passkeyNames.js';
import { createChallengeStore, type ChallengeStore } from './challengeStore.js';
import { assessAttestation } from './attestation.js';
import { checkRegistration, deviceName, policyNeedsAttestation, refusesSignIn, whyNotAal3 } from './authenticatorPolicy.js';
import { Trust } from './trust.js';
import type { AttestationFacts, PasskeyFacts } from './authenticatorPolicy.js';

/** Where the person wants the passkey: drives WebAuthn `hints` and `authenticatorAttachment`. */
export type PasskeyPlacement = 'this-device' | 'another-device' | 'security-key' | 'any';

export interface RequestContext {
  ip: string;
  userAgent: string;
}

/** WebAuthn user handle: the bytes of our user id (no personal data, WebAuthn L3 §14.6.1). */
export function userHandleFor(userId: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(userId, 'utf8'));
}

/** The challenge a client response answers, read from its clientDataJSON; undefined when unreadable. */
export function challengeOf(clientDataJSON: unknown): string | undefined {
  if (typeof clientDataJSON !== 'string' || clientDataJSON.length > 8192) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown };
    return typeof parsed.challenge === 'string' && parsed.challenge.length <= 256 ? parsed.challenge : undefined;
  } catch {
    return undefined;
  }
}

export interface FinishedRegistration {
  flow: Flow;
  authenticator: NewAuthenticator;
  /** The verified clientDataJSON.origin: LATCHKEY_ORIGIN or one of the related origins. */
  origin: string;
  /** The options were for conditional create and the caller accepts it (see finishRegistration's `acceptConditional`). */
  conditional: boolean;
}

export interface FinishedAuthentication {
  flow: Flow;
  user: User;
  authenticator: Authenticator;
  /** The verified clientDataJSON.origin: LATCHKEY_ORIGIN or one of the related origins. */
  origin: string;
}

const placementToType = {
  'this-device': 'localDevice',
  'another-device': 'remoteDevice',
  'security-key': 'securityKey',
} as const;

export class WebAuthn {
  readonly challenges: ChallengeStore;

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly now: () => number = Date.now,
    challenges?: ChallengeStore,
    /** The metadata and policy registrations are checked against; nothing trusted when not given. */
    private readonly trust: Trust = new Trust(),
  ) {
    this.challenges = challenges ?? createChallengeStore(config, store);
  }

  private async saveChallenge(flowType: string, challenge: string, bindingHash: string, userId: string | null, data: object): Promise<void> {
    const now = this.now();
    await this.challenges.save({
      id: randomToken(16),
      type: flowType,
      binding_hash: bindingHash,
      user_id: userId,
      lookup: challenge,
      data: JSON.stringify(data),
      created_at: now,
      expires_at: now + this.config.challengeSeconds * 1000,
    });
  }

  /**
   * Find and consume the ceremony a response answers. Of concurrent submissions
   * of one response exactly one gets past here.
   */
  private async consumeChallenge(flowType: string, clientDataJSON: unknown, bindingHash: string): Promise<Flow> {
    const flow = await this.challenges.consume(readChallenge(clientDataJSON), flowType, bindingHash, this.now());
    if (!flow) throw appError('challenge_invalid');
    return flow;
  }

  /**
   * consumeChallenge, then the credential with this id and its owner (none for an empty id). Where the challenge
   * store can, both in one step (the database on PostgreSQL: one statement, one round trip).
   */
  private async consumeChallengeWithCredential(
    flowType: string,
    clientDataJSON: unknown,
    bindingHash: string,
    credentialId: string,
  ): Promise<{ flow: Flow; found: { authenticator: Authenticator; user: User } | undefined }> {
    if (!credentialId || !this.challenges.consumeWithCredential) {
      const flow = await this.consumeChallenge(flowType, clientDataJSON, bindingHash);
      return { flow, found: credentialId ? await this.store.authenticators.findByCredentialIdWithUser(credentialId) : undefined };
    }
    const consumed = await this.challenges.consumeWithCredential(readChallenge(clientDataJSON), flowType, bindingHash, this.now(), credentialId);
    if (!consumed) throw appError('challenge_invalid');
    return { flow: consumed.flow, found: consumed.credential };
  }

  /** The active flow a response answers, without consuming it (to read the flow's data first). */
  async peekFlow(flowType: string, clientDataJSON: unknown, bindingHash: string): Promise<Flow> {
    const flow = await this.challenges.peek(readChallenge(clientDataJSON));
    if (!flow || flow.type !== flowType || flow.binding_hash !== bindingHash || flow.state !== 'active' || flow.expires_at <= this.now()) {
      throw appError('challenge_invalid');
    }
    return flow;
  }

  /** Registration options for one more passkey of an existing person: the ones they have are excluded, and the ceremony records them. */
  async startRegistrationFor(
    user: Pick<User, 'id' | 'email' | 'display_name'>,
    args: { flowType: string; bindingHash: string; placement: PasskeyPlacement; data?: object; securityKey?: boolean; conditional?: boolean },
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const existing = await this.store.authenticators.listForUser(user.id);
    return this.startRegistration({ ...args, user: { id: user.id, email: user.email, displayName: user.display_name }, existing, persistUserId: user.id });
  }

  async startRegistration(args: {
    flowType: string;
    bindingHash: string;
    user: { id: string; email: string; displayName: string };
    /** The user's authenticators; only their passkeys are excluded (apps and linked accounts have no credential id). */
    existing: Pick<Authenticator, 'type' | 'credential_id' | 'transports'>[];
    placement: PasskeyPlacement;
    persistUserId?: string | null;
    data?: object;
    /**
     * An AAL3 security key (an agent's "Security key (AAL3)"): a roaming authenticator with a PIN whose make and
     * model attestation confirms; finishRegistration refuses anything that would not give AAL3.
     */
    securityKey?: boolean;
    /**
     * Options for a conditional create (`mediation: "conditional"`, WebAuthn L3 §5.1.3): the browser's password
     * manager may make the passkey without a dialog, so it may come back without UP or UV. The ceremony records it;
     * only a finishRegistration that passes `acceptConditional` relaxes those checks for it.
     */
    conditional?: boolean;
  }): Promise<PublicKeyCredentialCreationOptionsJSON> {
    // Attestation only where it decides something (a policy that names models or a certification, an AAL3 key):
    // asking for it otherwise makes some browsers ask the person whether to share their key's make and model.
    const attestation = args.securityKey || policyNeedsAttestation(this.trust.policy()) ? 'direct' : 'none';
    const options = await generateRegistrationOptions({
      rpName: this.config.rpName,
      rpID: this.config.rpId,
      userID: userHandleFor(args.user.id),
      userName: args.user.email,
      userDisplayName: args.user.displayName,
      challenge: new Uint8Array(randomBytes32()),
      timeout: 300_000,
      attestationType: attestation,
      // The same authenticator can't be registered twice (seed 000): the browser refuses with InvalidStateError.
      excludeCredentials: args.existing.filter((a) => a.type === 'passkey').map((a) => ({
        id: a.credential_id,
        transports: JSON.parse(a.transports) as AuthenticatorTransportFuture[],
      })),
      authenticatorSelection: {
        residentKey: 'required',
        // §5.1.3 step 22: a conditional create that can't collect UV where it is required fails with ConstraintError
        // instead of letting the password manager save the passkey; "preferred" lets it, and UV is asked at sign-in.
        userVerification: args.conditional ? 'preferred' : 'required',
        ...(args.securityKey ? { authenticatorAttachment: 'cross-platform' as const } : {}),
      },
      supportedAlgorithmIDs: [-7, -8, -257],
      ...(args.securityKey ? { preferredAuthenticatorType: 'securityKey' as const } : args.placement !== 'any' ? { preferredAuthenticatorType: placementToType[args.placement] } : {}),
    });
    const data = { ...args.data, ...(args.securityKey ? { [SECURITY_KEY]: true } : {}), ...(args.conditional ? { [CONDITIONAL_CREATE]: true } : {}) };
    await this.saveChallenge(args.flowType, options.challenge, args.bindingHash, args.persistUserId ?? null, data);
    return options;
  }

  /** Verify a registration response and return the authenticator to store (the caller stores it in its transaction). */
  /** Finish a ceremony startRegistrationFor began, with the name the person typed (cleaned) or one made for them. */
  finishRegistrationFor(userId: string, args: { flowType: string; bindingHash: string; response: RegistrationResponseJSON; typedName?: string }): Promise<FinishedRegistration> {
    return this.finishRegistration({ flowType: args.flowType, bindingHash: args.bindingHash, response: args.response, name: cleanPasskeyName(args.typedName), userId });
  }

  async finishRegistration(args: {
    flowType: string;
    bindingHash: string;
    response: RegistrationResponseJSON;
    /** The name the person chose; when absent one is made from the provider or attachment. */
    name?: string;
    userId: string;
    /**
     * The passkey upgrade's flow alone passes true: a ceremony whose options were for conditional create may then
     * come back with UP and UV clear. Every other flow leaves it out and keeps both required, whatever its data says.
     */
    acceptConditional?: boolean;
  }): Promise<FinishedRegistration> {
    const flow = await this.consumeChallenge(args.flowType, args.response?.response?.clientDataJSON, args.bindingHash);
    const conditional = args.acceptConditional === true && readConditionalCreate(flow.data);
    // What WebAuthn asks beyond the library, shared with the conformance API (responseChecks.ts).
    const origins = allowedOrigins(this.config);
    const refused = checkRegistrationResponse(args.response, origins.set);
    if (refused) throw appError('ceremony_failed', `Your passkey could not be registered: ${refused}. Try again, or use another device.`);
    let verification;
    try {
      verification = await verifyRegistrationResponse({
        response: args.response,
        expectedChallenge: flow.lookup,
        // One RP ID, several origins (§5.11): the library accepts any listed origin.
        expectedOrigin: [...origins.list],
        expectedRPID: this.config.rpId,
        // WebAuthn L3 §7.1 step 15: "If options.mediation is not set to conditional, verify that the UP bit of the
        // flags in authData is set." A password manager's conditional create may leave it clear; nothing else may.
        requireUserPresence: !conditional,
        requireUserVerification: false,
        supportedAlgorithmIDs: [-7, -8, -257],
      });
    } catch (err) {
      throw appError('ceremony_failed', `Your passkey could not be registered: ${describeLibraryError(err)}. Try again.`);
    }
    if (!verification.verified || !verification.registrationInfo) throw appError('ceremony_failed');
    const info = verification.registrationInfo;
    // §7.1 step 16: required everywhere but a conditional create, whose options asked for UV only as "preferred".
    if (!info.userVerified && !conditional) throw appError('user_verification_required');
    // Attestation "none" signs nothing with the new key, so check it is a usable key now rather than at every sign-in.
    try {
      credentialVerifierFromCose(info.credential.publicKey);
    } catch {
      throw appError('ceremony_failed', 'Your passkey could not be registered: its public key is not valid. Try again, or use another device.');
    }
    if (await this.store.authenticators.findByCredentialId(info.credential.id)) throw appError('credential_exists');
    const attestation = await this.checkAgainstPolicy(flow, args.userId, info, args.response.authenticatorAttachment);
    const now = this.now();
    return {
      flow,
      authenticator: {
        id: randomToken(12),
        user_id: args.userId,
        type: 'passkey',
        credential_id: info.credential.id,
        public_key: Buffer.from(info.credential.publicKey).toString('base64url'),
        counter: info.credential.counter,
        transports: JSON.stringify(sanitizeTransports(args.response.response?.transports)),
        aaguid: info.aaguid,
        backup_eligible: info.credentialDeviceType === 'multiDevice' ? 1 : 0,
        backed_up: info.credentialBackedUp ? 1 : 0,
        attestation_format: info.fmt,
        config: JSON.stringify({ attestation }),
        name: args.name ?? defaultPasskeyName({ aaguid: info.aaguid, attachment: args.response.authenticatorAttachment, transports: args.response.response?.transports }),
        created_at: now,
        last_used_at: null,
      },
      origin: info.origin,
      conditional,
    };
  }

  /**
   * What the attestation showed, checked against the authenticator policy (and, for a ceremony that asked for an
   * AAL3 security key, against what AAL3 needs). A refusal names the device and says what is allowed.
   */
  private async checkAgainstPolicy(
    flow: Flow,
    userId: string,
    info: NonNullable<Awaited<ReturnType<typeof verifyRegistrationResponse>>['registrationInfo']>,
    attachment: string | undefined,
  ): Promise<AttestationFacts> {
    const policy = this.trust.policy();
    const catalogue = this.trust.metadata();
    const attestation = await assessAttestation(info, catalogue);
    const facts: PasskeyFacts = { aaguid: info.aaguid, deviceBound: info.credentialDeviceType === 'singleDevice', attestation };
    const decision = checkRegistration(policy, catalogue, facts, await this.store.roles.listForUser(userId));
    if (!decision.ok) throw new AuthenticatorNotAllowed(decision.message, decision.reason, deviceName(facts, catalogue), userId);
    if (readSecurityKey(flow.data)) {
      const device = deviceName(facts, catalogue);
      // What the browser says (unsigned) and, once attestation made the model known, what its metadata says.
      const hints = attestation.verified ? catalogue.get(facts.aaguid)?.statement.attachmentHint : undefined;
      if (attachment === 'platform' || (hints && !hints.includes('external'))) {
        throw new AuthenticatorNotAllowed(`${device} is built into this device. Use the security key your registration authority gave you: plug it in or hold it to the device when asked.`, 'not_security_key', device, userId);
      }
      // With no FIDO metadata loaded no key can qualify, and telling the person their key's make and model were not
      // confirmed would send them hunting for another key: say it is on Latchkey's side and who can fix it.
      if (catalogue.size === 0) {
        throw new AuthenticatorNotAllowed(
          `${device === 'This passkey' ? 'Your security key' : device} can’t be registered yet: ${this.config.organisation} can’t confirm any security key’s make and model until its FIDO metadata is loaded. This is not a problem with your key: tell your registration authority.`,
          'no_metadata',
          device,
          userId,
        );
      }
      const why = whyNotAal3(policy, catalogue, facts);
      if (why !== undefined) {
        throw new AuthenticatorNotAllowed(
          `${device} can’t be used as a security key for the highest level of sign-in (AAL3). ${why} Use a FIDO2-certified security key with a PIN, such as the one your registration authority gave you.`,
          'not_aal3',
          device,
          userId,
        );
      }
    }
    return attestation;
  }

  async startAuthentication(args: {
    flowType: string;
    bindingHash: string;
    userId?: string | null;
    allowCredentials?: { id: string; transports?: AuthenticatorTransportFuture[] }[];
    data?: object;
  }): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const options = await generateAuthenticationOptions({
      rpID: this.config.rpId,
      challenge: new Uint8Array(randomBytes32()),
      timeout: 300_000,
      allowCredentials: args.allowCredentials ?? [],
      // "preferred" lets a response without UV reach us, so we can refuse it with a clear message.
      userVerification: 'preferred',
    });
    const offered = args.allowCredentials?.length ? { [OFFERED]: args.allowCredentials.map((c) => c.id) } : {};
    await this.saveChallenge(args.flowType, options.challenge, args.bindingHash, args.userId ?? null, { ...args.data, ...offered });
    return options;
  }

  /**
   * WebAuthn L3 §7.2: consume the challenge, find the credential, check it
   * belongs to the expected user, verify the assertion, then record the use.
   * `onFailure` is told what failed so the caller can audit it.
   *
   * A ceremony that named whose passkeys it wants (allowCredentials: email first, including the decoy an unknown
   * address gets, and reauth) must not tell someone without the key whether that person exists. So it always does
   * one credential lookup and one signature check: against the credential's key when it is one the ceremony offered
   * and belongs to the person expected, otherwise against a stand-in key no one holds (standInKey.ts). Until a
   * signature holds, every failure gets one answer (`ceremony_failed`), its true reason going only to `onFailure`;
   * the specific ones (user verification, a suspended account, a possible clone) are for whoever signed. The
   * signature covers clientDataJSON and authenticatorData, so checking it before the account is looked at skips none
   * of §7.2's checks.
   */
  async finishAuthentication(args: {
    flowType: string;
    bindingHash: string;
    response: AuthenticationResponseJSON;
    onFailure?: (f: { code: string; userId?: string; authenticatorId?: string }) => Promise<void>;
    /**
     * Extra check on the consumed flow (e.g. a decoy flow for an unknown email). A flow it refuses is answered as
     * one that expects no one exists: after the same work, with the same answer as a forged response.
     */
    acceptFlow?: (flow: Flow) => boolean;
    /**
     * Writes that belong with the successful use (a session, an audit record), run in its transaction, which
     * may share its commit with other sign-ins (src/db/groupCommit.ts): database statements only, no other I/O.
     * On PostgreSQL they run before the use is known to be recorded (a lost one fails the transaction at its
     * commit), so anything else they do that must not outlive a failed transaction belongs in `tx.afterCommit`.
     */
    complete?: (tx: Store, finished: FinishedAuthentication) => Promise<void>;
  }): Promise<FinishedAuthentication> {
    const fail = async (code: Parameters<typeof appError>[0], who: { userId?: string; authenticatorId?: string } = {}, message?: string) => {
      await args.onFailure?.({ code, ...who });
      return appError(code, message);
    };
    const credentialId = typeof args.response?.id === 'string' ? args.response.id : '';
    let flow: Flow;
    let found: { authenticator: Authenticator; user: User } | undefined;
    try {
      // One lookup whatever the flow, so a decoy costs what a real account does.
      ({ flow, found } = await this.consumeChallengeWithCredential(args.flowType, args.response?.response?.clientDataJSON, args.bindingHash, credentialId));
    } catch (err) {
      // Replays, expired challenges and responses finished in another browser are failed sign-ins too.
      await args.onFailure?.({ code: err instanceof AppError ? err.code : 'challenge_invalid' });
      throw err;
    }
    const accepted = !args.acceptFlow || args.acceptFlow(flow);
    const offered = offeredCredentialIds(flow);
    const passkey = found?.authenticator.type === 'passkey' ? found : undefined;
    const verify = (input: Pick<Parameters<typeof verifyAssertion>[0], 'authenticator' | 'keyCacheId'>) =>
      verifyAssertion({
        response: args.response,
        expectedChallenge: flow.lookup,
        expectedOrigin: allowedOrigins(this.config).set,
        expectedRpId: this.config.rpId,
        signatures: signatureWorkers(this.config.passkeyKeyCacheSize, this.config.signatureWorkers),
        ...input,
      });
    const userHandle = args.response.response?.userHandle;
    const handleOf = (userId: string) => Buffer.from(userHandleFor(userId)).toString('base64url');

    let owner: { authenticator: Authenticator; user: User };
    let result: Awaited<ReturnType<typeof verifyAssertion>>;
    if (flow.user_id !== null || offered !== undefined || !accepted) {
      // A ceremony for someone named (see above). §7.2 step 5: the credential is one the options offered; step 6:
      // its owner is the user expected (none for a decoy, or a flow `acceptFlow` refused).
      const expected = accepted ? flow.user_id : null;
      const mine =
        passkey && expected !== null && passkey.authenticator.user_id === expected && (offered === undefined || offered.includes(credentialId)) ? passkey : undefined;
      result = await verify(mine ? { authenticator: mine.authenticator } : standInFor(credentialId));
      if (!mine || (!result.ok && !result.signatureValid)) {
        await args.onFailure?.({
          code: mine && !result.ok ? result.code : 'credential_unknown',
          ...(expected !== null ? { userId: expected } : {}),
          ...(mine ? { authenticatorId: mine.authenticator.id } : {}),
        });
        throw appError('ceremony_failed');
      }
      owner = mine;
      // Step 6: a user handle, when returned, must be the owner's.
      if (userHandle && userHandle !== handleOf(owner.authenticator.user_id)) throw await fail('credential_unknown', whoOf(owner));
    } else {
      // Discoverable (the button, autofill): no one named, so nothing to give away about an address, and a passkey
      // removed from its account is worth saying so. Step 6: the user handle is required and must be the owner's.
      // It is checked before the signature: without the owner's handle (their user id, never shown) a credential id
      // someone saw in an email-first answer gets the answer an unknown one gets, so it cannot tell a real account's
      // credential from a decoy's.
      if (!passkey) throw await fail('credential_unknown');
      owner = passkey;
      if (userHandle !== handleOf(owner.authenticator.user_id)) throw await fail('credential_unknown', whoOf(owner));
      result = await verify({ authenticator: owner.authenticator });
      if (!result.ok && !result.signatureValid) throw await fail(result.code, whoOf(owner), result.message);
    }

    // The signature held: whoever sent this holds the passkey, and may be told what else is wrong.
    const { authenticator, user } = owner;
    const who = whoOf(owner);
    if (user.status === 'suspended') throw await fail('account_disabled', who);
    // A model the FIDO metadata has since marked compromised, when the policy says it may no longer sign in.
    if (refusesSignIn(this.trust.policy(), this.trust.metadata(), authenticator.aaguid)) throw await fail('authenticator_compromised', who);
    if (!result.ok) throw await fail(result.code, who, result.message);

    const now = this.now();
    // WebAuthn L3 §7.2 step 18: backup eligibility is fixed when a credential is made, so one that says it may now be
    // backed up is taken at its word from here on (it no longer counts as device-bound, so no longer gives AAL3).
    const backupEligible = authenticator.backup_eligible === 1 || result.backupEligible;
    const finished = { flow, user, origin: result.origin, authenticator: { ...authenticator, counter: result.counter, backed_up: result.backedUp ? 1 : 0, backup_eligible: backupEligible ? 1 : 0, last_used_at: now } };
    // The use is recorded and the caller's writes (session, audit) land in one transaction: all or nothing. On
    // SQLite it may share its commit with other sign-ins finishing in the same turn of the event loop.
    try {
      await this.store.transaction(async (tx) => {
        // The conditional update loses to a concurrent use with a higher counter, which is the same clone signal;
        // then the transaction fails and none of its writes land. On PostgreSQL it fails at the commit, so the
        // update, the caller's writes and the commit go out together (one round trip).
        await tx.authenticators.recordUseOrFail(authenticator.id, { counter: result.counter, backedUp: result.backedUp, backupEligible, at: now });
        await args.complete?.(tx, finished);
      }, { groupCommit: true });
    } catch (err) {
      if (!isCounterDidNotMove(err)) throw err;
      throw await fail('counter_regressed', who);
    }
    return finished;
  }
}

/** A registration the authenticator policy refused: why (a stable reason for the audit log) and the device in words. */
export class AuthenticatorNotAllowed extends AppError {
  constructor(
    message: string,
    readonly reason: string,
    readonly device: string,
    readonly userId: string,
  ) {
    super('authenticator_not_allowed', message);
  }
}

/** The challenge a response's clientDataJSON answers; a response that can't be read fails the ceremony. */
function readChallenge(clientDataJSON: unknown): string {
  const challenge = challengeOf(clientDataJSON);
  if (!challenge) throw appError('ceremony_failed', 'The passkey response could not be read. Try again.');
  return challenge;
}

const whoOf = (owner: { authenticator: Authenticator }) => ({ userId: owner.authenticator.user_id, authenticatorId: owner.authenticator.id });

/** Where a registration ceremony notes that it asked for an AAL3 security key, beside the caller's own data. */
const SECURITY_KEY = 'securityKey';
const readSecurityKeyData = flowDataReader(Type.Object({ [SECURITY_KEY]: Type.Optional(Type.Boolean()) }));
function readSecurityKey(data: string): boolean {
  return readSecurityKeyData(data)?.[SECURITY_KEY] === true;
}

/** Where a registration ceremony notes that its options were for conditional create, beside the caller's own data. */
const CONDITIONAL_CREATE = 'conditionalCreate';
const readConditionalCreateData = flowDataReader(Type.Object({ [CONDITIONAL_CREATE]: Type.Optional(Type.Boolean()) }));
function readConditionalCreate(data: string): boolean {
  return readConditionalCreateData(data)?.[CONDITIONAL_CREATE] === true;
}

/** Where a ceremony keeps the credential ids its options offered (§7.2 step 5), beside the caller's own data. */
const OFFERED = 'allowCredentialIds';

const readOffered = flowDataReader(Type.Object({ [OFFERED]: Type.Optional(Type.Array(Type.String())) }));

/**
 * The credential ids a ceremony's options offered; undefined when they offered none (discoverable). Data that can't
 * be read offered nothing that can be used.
 */
function offeredCredentialIds(flow: Flow): string[] | undefined {
  const data = readOffered(flow.data);
  return data ? data[OFFERED] : [];
}

function randomBytes32(): Buffer {
  return randomBytesPooled(32);
}

const knownTransports = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);
function sanitizeTransports(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string' && knownTransports.has(t)).slice(0, 8) : [];
}

/** Library errors are written for developers; keep them short and free of internals. */
export function describeLibraryError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, ' ').slice(0, 200).replace(/\.$/, '');
}
